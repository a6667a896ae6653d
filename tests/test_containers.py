"""The web containers' image and least privilege, as rendered: every definition carries the
`cluster.docker` hardening, the rendered hawc-containers passes it to `docker run` (run here
against a fake `docker` that records its calls), pulls an absent image before it replaces a
container, and keeps the old one when the pull fails."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.render.backend import CONTAINERS_DIR, RECONCILE

HOST = "cluster2"
DEFAULT_RUN_OPTIONS = [
    "--cap-drop=ALL", "--cap-add=KILL", "--cap-add=SETGID", "--cap-add=SETUID", "--security-opt=no-new-privileges",
    "--memory=256m", "--memory-swap=256m", "--cpus=1", "--pids-limit=256", "--read-only",
    "--tmpfs=/var/run/apache2:rw,nosuid,nodev,noexec,size=16m", "--tmpfs=/var/lock/apache2:rw,nosuid,nodev,noexec,size=16m",
    "--tmpfs=/tmp:rw,nosuid,nodev,noexec,size=16m",
]

# A docker that keeps its containers as files (name -> definition hash) and logs every call, one per line, args tab-separated.
FAKE_DOCKER = r"""#!/bin/bash
set -u
printf '%s\t' "$@" >> "$FAKE/log"; echo >> "$FAKE/log"
case "$1" in
image) [[ " ${FAKE_IMAGES:-} " == *" $3 "* ]] ;;
pull) [ "${FAKE_PULL_RC:-0}" = 0 ] && FAKE_IMAGES="${FAKE_IMAGES:-} $3"; exit "${FAKE_PULL_RC:-0}" ;;
rm) rm -f "$FAKE/c/$3" ;;
run) name='' hash=''; prev=''
	for a in "$@"; do [ "$prev" = --name ] && name=$a; [[ "$a" == ha-web-cluster.hash=* ]] && hash=${a#*=}; prev=$a; done
	echo "$hash" > "$FAKE/c/$name"; echo 0123456789ab ;;
ps) for c in "$FAKE"/c/*; do [ -e "$c" ] && echo "${c##*/} running $(cat "$c")"; done; true ;;
esac
"""


def plan_files(config: StackConfig) -> dict[str, str]:
    node = render_cluster(config).nodes[HOST]
    return {p: f.content for p, f in node.files.items() if p == RECONCILE or p.startswith(CONTAINERS_DIR + "/")}


class Host:
    """A Docker host in a temporary directory: the rendered definitions and script, a fake docker."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        (tmp / "c").mkdir(parents=True)
        (tmp / "bin").mkdir()
        (tmp / "defs").mkdir()
        docker = tmp / "bin/docker"
        docker.write_text(FAKE_DOCKER)
        docker.chmod(0o755)

    def install(self, config: StackConfig) -> None:
        for old in (self.tmp / "defs").iterdir():
            old.unlink()
        for path, content in plan_files(config).items():
            if path == RECONCILE:
                (self.tmp / "hawc-containers").write_text(content.replace(CONTAINERS_DIR, str(self.tmp / "defs")))
            else:
                (self.tmp / "defs" / Path(path).name).write_text(content)

    def reconcile(self, images: str = "", pull_rc: int = 0, *args: str) -> subprocess.CompletedProcess:
        (self.tmp / "log").write_text("")
        env = {**os.environ, "PATH": f"{self.tmp / 'bin'}:{os.environ['PATH']}", "FAKE": str(self.tmp), "FAKE_IMAGES": images, "FAKE_PULL_RC": str(pull_rc)}
        return subprocess.run(["bash", str(self.tmp / "hawc-containers"), *args], env=env, capture_output=True, text=True, timeout=60)

    def calls(self) -> list[list[str]]:
        return [line.rstrip("\t").split("\t") for line in (self.tmp / "log").read_text().splitlines() if line]

    def runs(self) -> dict[str, list[str]]:
        """Container name -> its `docker run` argv."""
        return {c[c.index("--name") + 1]: c for c in self.calls() if c[0] == "run"}


def with_docker(**docker) -> StackConfig:
    return StackConfig.model_validate({"cluster": {"docker": docker}})


def test_every_definition_carries_the_image_and_the_hardening() -> None:
    files = plan_files(StackConfig())
    envs = {p: c for p, c in files.items() if p.endswith(".env")}
    assert len(envs) == 4
    for content in envs.values():
        assert "IMAGE=php:8.2.29-apache-bookworm\n" in content
        block = content.split("OPTIONS=(\n", 1)[1].split("\n)\n", 1)[0]
        assert [line.strip() for line in block.splitlines()] == DEFAULT_RUN_OPTIONS


def test_docker_run_gets_the_hardening_and_the_image_last(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.install(StackConfig())
    r = host.reconcile(images="php:8.2.29-apache-bookworm")
    assert r.returncode == 0, r.stderr
    runs = host.runs()
    assert sorted(runs) == ["cluster21p", "cluster22p", "cluster23p", "cluster24p"]
    for argv in runs.values():
        assert argv[-1] == "php:8.2.29-apache-bookworm"
        i = argv.index("--cap-drop=ALL")
        assert argv[i:i + len(DEFAULT_RUN_OPTIONS)] == DEFAULT_RUN_OPTIONS
    assert not [c for c in host.calls() if c[0] == "pull"], "a present image is never pulled (the e2e guests cannot reach Docker Hub)"
    again = host.reconcile(images="php:8.2.29-apache-bookworm")
    assert again.returncode == 0 and not host.runs() and again.stdout.count(": unchanged") == 4


def test_a_new_image_reference_is_pulled_then_replaces_every_container(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.install(StackConfig())
    assert host.reconcile(images="php:8.2.29-apache-bookworm").returncode == 0
    host.install(with_docker(image="php:8.2.30-apache-bookworm"))
    r = host.reconcile(images="php:8.2.29-apache-bookworm")
    assert r.returncode == 0, r.stderr
    calls = [c[:3] for c in host.calls() if c[0] in ("pull", "rm", "run")]
    assert calls[:3] == [["pull", "-q", "php:8.2.30-apache-bookworm"], ["rm", "-f", "cluster21p"], ["run", "-d", "--name"]]
    assert {argv[-1] for argv in host.runs().values()} == {"php:8.2.30-apache-bookworm"} and len(host.runs()) == 4
    assert [c[0] for c in host.calls()].count("pull") == 1, "the image is looked up and pulled once, not per container"


def test_a_container_no_longer_defined_is_removed(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.install(StackConfig())
    assert host.reconcile(images="php:8.2.29-apache-bookworm").returncode == 0
    (tmp_path / "c" / "cluster29p").write_text("0123\n")
    assert host.reconcile("php:8.2.29-apache-bookworm", 0, "--pending").stdout.split() == ["cluster29p"]
    r = host.reconcile(images="php:8.2.29-apache-bookworm")
    assert "cluster29p: removed" in r.stdout and not (tmp_path / "c" / "cluster29p").exists()
    assert [c for c in host.calls() if c[0] in ("run", "pull")] == []


def test_pending_names_what_would_change_and_changes_nothing(tmp_path: Path) -> None:
    """The containers step rolls (drains the host) only when `--pending` names a container."""
    host = Host(tmp_path)
    host.install(StackConfig())
    assert host.reconcile("php:8.2.29-apache-bookworm", 0, "--pending").stdout.split() == ["cluster21p", "cluster22p", "cluster23p", "cluster24p"]
    assert not [c for c in host.calls() if c[0] in ("pull", "rm", "run")]
    assert host.reconcile(images="php:8.2.29-apache-bookworm").returncode == 0
    assert host.reconcile("php:8.2.29-apache-bookworm", 0, "--pending").stdout == ""
    assert [c[0] for c in host.calls()] == ["ps"], "nothing to roll costs one docker call (seconds each on an emulated host)"
    host.install(with_docker(image="php:8.2.30-apache-bookworm"))
    r = host.reconcile("php:8.2.29-apache-bookworm", 0, "--pending")
    assert r.stdout.split() == ["cluster21p", "cluster22p", "cluster23p", "cluster24p"]
    assert not [c for c in host.calls() if c[0] in ("pull", "rm", "run")]


def test_a_failed_pull_leaves_the_old_containers_serving(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.install(StackConfig())
    assert host.reconcile(images="php:8.2.29-apache-bookworm").returncode == 0
    before = {p.name: p.read_text() for p in (tmp_path / "c").iterdir()}
    host.install(with_docker(image="php:8.2.30-apache-bookworm"))
    r = host.reconcile(images="php:8.2.29-apache-bookworm", pull_rc=1)
    assert r.returncode != 0
    assert not [c for c in host.calls() if c[0] in ("rm", "run")]
    assert {p.name: p.read_text() for p in (tmp_path / "c").iterdir()} == before


@pytest.mark.parametrize("change", [
    {"capAdd": ["KILL", "SETGID", "SETUID", "NET_BIND_SERVICE"]}, {"noNewPrivileges": False}, {"memoryMib": 512},
    {"cpus": 0.5}, {"pidsLimit": 128}, {"readOnly": False}, {"tmpfs": ["/tmp"]}, {"tmpfsMib": 32}, {"image": "php:8.2.30-apache-bookworm"},
], ids=lambda c: next(iter(c)))
def test_each_setting_changes_the_definitions_so_containers_are_replaced(change: dict) -> None:
    """The reconcile replaces a container whose definition file's hash changed."""
    default = plan_files(StackConfig())
    changed = plan_files(with_docker(**change))
    defs = [p for p in default if p.endswith(".env")]
    assert all(default[p] != changed[p] for p in defs)
    assert plan_files(with_docker(**change)) == changed  # deterministic


def test_options_off_are_absent_from_docker_run() -> None:
    env = next(c for p, c in plan_files(with_docker(noNewPrivileges=False, readOnly=False, tmpfs=[], cpus=1.5)).items() if p.endswith(".env"))
    assert "no-new-privileges" not in env and "--read-only" not in env and "--tmpfs" not in env and "--cpus=1.5\n" in env


def test_rendered_script_and_definitions_pass_shellcheck_and_bash(tmp_path: Path) -> None:
    host = Host(tmp_path)
    host.install(StackConfig())
    script = tmp_path / "hawc-containers"
    r = subprocess.run(["shellcheck", "--severity=style", str(script)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    for env in (tmp_path / "defs").iterdir():
        r = subprocess.run(["bash", "-c", f". {shlex.quote(str(env))} && printf '%s\\n' \"${{OPTIONS[@]}}\""], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.splitlines() == DEFAULT_RUN_OPTIONS, r.stderr


@pytest.mark.parametrize(("docker", "path", "fragment"), [
    ({"image": "php"}, "cluster.docker.image", "floating `:latest`"),
    ({"image": "php:apache; rm -rf /"}, "cluster.docker.image", "not a Docker image reference"),
    ({"capAdd": ["CAP_KILL"]}, "cluster.docker.capAdd[0]", "not a Linux capability"),
    ({"cpus": 0.333}, "cluster.docker.cpus", "two decimals"),
    ({"cpus": 4}, "cluster.docker.cpus", "Docker host cluster2 has 2"),
    ({"tmpfs": ["/tmp x"]}, "cluster.docker.tmpfs[0]", "pattern"),
    ({"memoryMib": 8}, "cluster.docker.memoryMib", "greater than or equal"),
    ({"pidsLimit": 0}, "cluster.docker.pidsLimit", "greater than or equal"),
])
def test_bad_docker_settings_are_clear_errors_naming_the_key(docker: dict, path: str, fragment: str) -> None:
    from webcluster.validation import ConfigError, parse

    with pytest.raises(ConfigError) as caught:
        parse({"cluster": {"docker": docker}})
    problems = caught.value.problems
    assert any(p.path == path and fragment in p.message for p in problems), [str(p) for p in problems]
