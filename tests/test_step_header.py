"""The helpers every step script starts with (templates/steps/_header.sh.j2), run under bash with a
systemctl that logs what it is asked: systemd is reloaded only when a unit file the step carries
changed, and a unit is enabled only when it is not (each is a reload of every unit, which timed out
on a CPU-starved emulated director and failed a step that changed nothing for systemd)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import fake_programs
from webcluster.render.builder import STEP_STAMPS
from webcluster.render.templating import render

SYSTEMCTL = 'echo "$*" >> "$LOG"\ncase "$1" in is-enabled) [ -e "$STATE/enabled-$3" ];; *) true;; esac'


class Node:
    """A temporary directory standing for one node: its stamps, a unit drop-in, a logging systemctl."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        fake_programs(tmp / "bin", {"systemctl": SYSTEMCTL})
        self.dropin = tmp / "haproxy.service.conf"
        self.dropin.write_text("[Service]\nExecReload=/a\n")
        self.log = tmp / "log"
        self.header = render("steps/_header.sh.j2", step="40-test", node="n1", description="test", stamps=STEP_STAMPS).replace(STEP_STAMPS, str(tmp / "stamps"))
        assert "/var/lib/ha-web-cluster" not in self.header

    def run(self, commands: str) -> list[str]:
        """`commands` after the header; the systemctl calls they made."""
        self.log.write_text("")
        env = {"PATH": f"{self.tmp / 'bin'}:/usr/bin:/bin", "LOG": str(self.log), "STATE": str(self.tmp)}
        out = subprocess.run(["bash", "-c", self.header + commands], capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        return self.log.read_text().splitlines()


def test_systemd_is_reloaded_only_when_a_carried_unit_file_changed(tmp_path: Path) -> None:
    node = Node(tmp_path)
    reload = f"daemon_reload {node.dropin}\n"
    assert node.run(reload) == ["daemon-reload"], "the first run reads the new drop-in"
    assert node.run(reload) == [], "nothing changed: no reload"
    node.dropin.write_text("[Service]\nExecReload=/b\n")
    assert node.run(reload) == ["daemon-reload"], "a changed drop-in is read again"
    assert node.run(reload) == []
    assert node.run("daemon_reload\n") == ["daemon-reload"], "no file named: always"


def test_a_unit_is_enabled_only_when_it_is_not(tmp_path: Path) -> None:
    node = Node(tmp_path)
    assert node.run("enable_unit haproxy\n") == ["is-enabled --quiet haproxy", "enable --quiet haproxy"]
    (tmp_path / "enabled-haproxy").touch()
    assert node.run("enable_unit haproxy\n") == ["is-enabled --quiet haproxy"]
