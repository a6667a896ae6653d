"""Atomic content publishing as rendered: the content step run on a temporary docroot writes each
version into releases/<digest>, switches the `html` symlink with one rename, for the
containers, and prunes old releases only past the kept count and the grace time."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.render.backend import BACKEND_CONTENT_STEP
from webcluster.render.content import CONTENT_DIR


class Publisher:
    """The Docker host's rendered content step, pointed at a temporary docroot and content dir."""

    def __init__(self, tmp: Path):
        plan = render_cluster(StackConfig())
        topo_docroot = "/gluster/gfs-r/www"
        self.step = plan.nodes["cluster2"].step(BACKEND_CONTENT_STEP)
        self.pages = sorted(p for p in self.step.files)
        assert topo_docroot in self.step.script, self.step.script
        self.docroot, self.content = tmp / "www", tmp / "content"
        self.content.mkdir()
        self.script = self.step.script.replace(topo_docroot, str(self.docroot)).replace(CONTENT_DIR, str(self.content))

    def publish(self, version: str) -> subprocess.CompletedProcess:
        for path in self.pages:
            (self.content / Path(path).name).write_text(f"{Path(path).name} {version}\n")
        r = subprocess.run(["bash", "-s"], input=self.script, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r

    def releases(self) -> list[str]:
        return sorted(os.listdir(self.docroot / "releases"))

    def age_all(self, minutes: int) -> None:
        then = time.time() - minutes * 60
        for name in self.releases():
            os.utime(self.docroot / "releases" / name, (then, then))


def test_a_version_is_a_release_and_html_switches_by_one_rename(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    first = pub.publish("v1")
    assert "html -> releases/" in first.stdout
    (release,) = pub.releases()
    assert os.readlink(pub.docroot / "html") == f"releases/{release}", "the containers' /var/www/html: one symlink (FUSE caches none)"
    assert (pub.docroot / "html" / "index.php").read_text() == "index.php v1\n"
    again = pub.publish("v1")
    assert "html ->" not in again.stdout and pub.releases() == [release], "the same content is the same release"
    pub.publish("v2")
    assert (pub.docroot / "html" / "index.php").read_text() == "index.php v2\n"
    assert len(pub.releases()) == 2, "the previous release is kept"
    assert not [n for n in os.listdir(pub.docroot) if n.startswith(".")], "no temporary link left"
    assert "mv -T" in pub.script and "ln -sfn" in pub.script


def test_old_releases_are_pruned_past_the_kept_count_and_the_grace_time_only(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    keep = StackConfig().cluster.docker.keep_releases
    for n in range(keep + 3):
        pub.publish(f"v{n}")
    assert len(pub.releases()) == keep + 3, "none removed within the grace time (PHP's realpath cache)"
    pub.age_all(10)
    r = pub.publish("v-last")
    assert len(pub.releases()) == 1 + keep, r.stdout
    current = os.readlink(pub.docroot / "html").removeprefix("releases/")
    assert current in pub.releases() and r.stdout.count("removed") == 3


def test_the_two_symlink_layout_before_is_switched_to_one(tmp_path: Path) -> None:
    """A docroot published before (html -> current -> releases/x) ends with html -> the release and
    no `current`: each symlink on the path is a READLINK round trip through a Gluster mount."""
    pub = Publisher(tmp_path)
    pub.publish("v1")
    (release,) = pub.releases()
    (pub.docroot / "html").unlink()
    os.symlink(f"releases/{release}", pub.docroot / "current")
    os.symlink("current", pub.docroot / "html")
    pub.publish("v2")
    assert not (pub.docroot / "current").is_symlink()
    assert os.readlink(pub.docroot / "html").startswith("releases/")
    assert (pub.docroot / "html" / "index.php").read_text() == "index.php v2\n"
