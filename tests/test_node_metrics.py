"""Issue #15, node-level metrics as rendered: node-exporter on every node bound to its internal
address, its port opened by the model's firewall to nodeMetrics.scrapers only, the directors'
keepalived notify hook writing hawc_vip_held atomically, and nothing of it when turned off."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from webcluster.metrics import vip_held
from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.render.firewall import allowed, client_exposure
from webcluster.render.node_metrics import NODE_EXPORTER_DEFAULTS, NODE_EXPORTER_STEP, TEXTFILE_DIR, VIP_NOTIFY, VIP_NOTIFY_SETTLE_S
from webcluster.topology import Topology
from webcluster.validation import check as validate
from webcluster.waiting import wait_until


def config(**node_metrics: object) -> StackConfig:
    return StackConfig.model_validate({"cluster": {"nodeMetrics": node_metrics}} if node_metrics else {})


def test_every_node_installs_node_exporter_on_its_internal_address_alone() -> None:
    plan = render_cluster(config())
    topo = Topology(config())
    for node in topo.nodes:
        files = plan.nodes[node.name].files
        args = str(files[NODE_EXPORTER_DEFAULTS].content)
        assert f'ARGS="--web.listen-address={node.internal_address}:9100 ' in args, node.name
        assert "--no-collector.hwmon" in args and "--no-collector.mdadm" not in args and f"--collector.textfile.directory={TEXTFILE_DIR}" in args
        assert "--no-collector.systemd" in args, "Debian 12's exporter enables it, and it crashed the exporter on an e2e director"
        step = plan.nodes[node.name].step(NODE_EXPORTER_STEP)
        assert "apt_install prometheus-node-exporter\n" in step.script and NODE_EXPORTER_DEFAULTS in step.files


def test_the_firewall_opens_the_port_to_the_scrapers_only() -> None:
    topo = Topology(config())
    scrapers = {"10.0.100.1", "10.0.100.50", "10.0.100.51", "10.0.100.254", "192.168.1.1"}  # directors, host (libvirt address, gateway)
    for node in topo.nodes:
        rules = [r for r in allowed(topo, node) if "9100" in r.ports]
        assert len(rules) == 1 and set(rules[0].sources) == scrapers and rules[0].dests == (str(node.internal_address),), node.name
    client = ipaddress.IPv4Address("192.168.1.254")
    assert not any(9100 in ports for ports in client_exposure(topo, client).values())
    exposed = client_exposure(Topology(config(scrapers=["external"])), client)
    assert 9100 in exposed["10.0.100.1"], "the matrix must show what a wider scraper list opens"


def test_turned_off_nothing_is_rendered_or_opened() -> None:
    off = config(enabled=False)
    plan = render_cluster(off)
    topo = Topology(off)
    for node in topo.nodes:
        assert NODE_EXPORTER_DEFAULTS not in plan.nodes[node.name].files
        assert NODE_EXPORTER_STEP not in {s.name for s in plan.nodes[node.name].steps}
        assert not any("9100" in r.ports for r in allowed(topo, node))
    assert "notify" not in str(plan.nodes["cluster1"].files["/etc/keepalived/keepalived.conf"].content)
    assert VIP_NOTIFY not in plan.nodes["cluster1"].files


def test_scrapers_and_port_are_validated() -> None:
    problems = [str(p) for p in validate(config(scrapers=["nowhere"], port=7000))]
    assert any("nodeMetrics.scrapers[0]" in p and "nowhere" in p for p in problems), problems
    assert any("nodeMetrics.port" in p and "stats listener" in p for p in problems), problems
    assert not [p for p in validate(config(scrapers=["host", "directors", "10.0.100.60", "192.168.7.0/24"])) if "nodeMetrics" in str(p)]


def test_every_vrrp_instance_notifies_the_hook() -> None:
    conf = str(render_cluster(config()).nodes["standby1"].files["/etc/keepalived/keepalived.conf"].content)
    assert conf.count(f'\tnotify "{VIP_NOTIFY}"\n') == conf.count("vrrp_instance ") == 3


def notify_hook(tmp_path: Path, holds_vip: bool) -> tuple[Path, dict[str, str]]:
    """The rendered hook, its directory moved to tmp_path, with an `ip` on PATH that shows this node
    holding 192.168.1.200 or not (as `ip -o -4 addr show` prints it)."""
    script = str(render_cluster(config()).nodes["cluster1"].files[VIP_NOTIFY].content).replace(TEXTFILE_DIR, str(tmp_path / "tf"))
    hook = tmp_path / "hook.sh"
    hook.write_text(script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    addr = "3: enp0s8    inet 192.168.1.200/24 scope global secondary enp0s8\\       valid_lft forever preferred_lft forever" if holds_vip else ""
    (bin_dir / "ip").write_text(f"#!/bin/sh\necho '2: enp0s8    inet 192.168.1.1/24 brd 192.168.1.255 scope global enp0s8'\necho '{addr}'\n")
    (bin_dir / "ip").chmod(0o755)
    return hook, {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("state, holds_vip", [("MASTER", True), ("BACKUP", False), ("FAULT", False), ("STOP", False)])
def test_the_notify_hook_writes_the_metric_atomically(tmp_path: Path, state: str, holds_vip: bool) -> None:
    """Run as keepalived runs it (TYPE NAME STATE PRIORITY): 1 on the holder, 0 elsewhere."""
    hook, env = notify_hook(tmp_path, holds_vip)
    for args in (["INSTANCE", "VI_1", state, "150"], ["GROUP", "VG1", "MASTER"], ["INSTANCE", "VI_9", "MASTER", "1"]):
        subprocess.run(["bash", str(hook), *args], check=True, timeout=10, env=env)
    files = sorted(p.name for p in (tmp_path / "tf").iterdir() if not p.name.endswith((".lock", ".latest")))  # the copies' lock and mark stay
    assert files == ["hawc_vip_held_VI_1.prom"], files  # no temporary file left, groups and unknown instances ignored
    text = (tmp_path / "tf" / files[0]).read_text()
    assert vip_held(text) == {"192.168.1.200": int(holds_vip)} and "# TYPE hawc_vip_held gauge" in text


@pytest.mark.parametrize("told, holds_vip", [("BACKUP", True), ("MASTER", False)])
def test_a_late_notify_writes_what_the_node_holds_not_what_it_was_told(tmp_path: Path, told: str, holds_vip: bool) -> None:
    """keepalived runs notify copies asynchronously: a BACKUP copy that finishes after the MASTER one
    (the node holds the VIP again) must not leave 0 behind, nor a stale MASTER copy a 1. It waits
    for the address to match what it was told, at most VIP_NOTIFY_SETTLE_S, then writes the truth."""
    hook, env = notify_hook(tmp_path, holds_vip)
    started = time.monotonic()
    subprocess.run(["bash", str(hook), "INSTANCE", "VI_1", told, "150"], check=True, timeout=VIP_NOTIFY_SETTLE_S + 10, env=env)
    assert VIP_NOTIFY_SETTLE_S - 0.5 <= time.monotonic() - started, "it gives keepalived the time to change the address"
    assert vip_held((tmp_path / "tf" / "hawc_vip_held_VI_1.prom").read_text()) == {"192.168.1.200": int(holds_vip)}


def test_superseded_notify_copies_exit_without_waiting(tmp_path: Path) -> None:
    """Copies queued behind the lock while the VIP flaps: only the latest writes, the others exit
    as soon as they get the lock, without their settle wait (on a flapping emulated director
    dozens queued for ten minutes, each waiting its turn)."""
    hook, env = notify_hook(tmp_path, holds_vip=True)
    (tmp_path / "tf").mkdir()
    latest = tmp_path / "tf" / ".hawc_vip_held_VI_1.latest"
    copies = []
    with open(tmp_path / "tf" / ".hawc_vip_held_VI_1.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a copy still at work
        for told in ("BACKUP", "FAULT", "BACKUP", "MASTER"):  # the stale ones would each wait VIP_NOTIFY_SETTLE_S
            copies.append(subprocess.Popen(["bash", str(hook), "INSTANCE", "VI_1", told, "150"], env=env))
            wait_until("the copy marks itself the latest", lambda: latest.exists() and latest.read_text().strip() == str(copies[-1].pid), 10, 0.05)
        released = time.monotonic()
    codes = [c.wait(timeout=VIP_NOTIFY_SETTLE_S * 4) for c in copies]
    assert codes == [0, 0, 0, 0]
    assert time.monotonic() - released < VIP_NOTIFY_SETTLE_S - 1, "a superseded copy waited its settle time"
    assert vip_held((tmp_path / "tf" / "hawc_vip_held_VI_1.prom").read_text()) == {"192.168.1.200": 1}


def test_rendering_is_deterministic() -> None:
    a, b = render_cluster(config()), render_cluster(config())
    for name in a.nodes:
        assert {p: f.data for p, f in a.nodes[name].files.items()} == {p: f.data for p, f in b.nodes[name].files.items()}


def test_the_installed_exporter_accepts_every_disabled_collector() -> None:
    """Each `--no-collector.NAME` the nodes get is a flag of the installed exporter (Debian 12's
    1.5.0, as on the nodes): an unknown one would stop it from starting at all."""
    args = [f"--no-collector.{name}" for name in StackConfig().cluster.node_metrics.disabled_collectors]
    out = subprocess.run(["prometheus-node-exporter", "--help"], capture_output=True, text=True, timeout=30)
    known = set(re.findall(r"--collector\.([a-z_]+)\s+Enable the", out.stdout + out.stderr))
    assert "systemd" in known and all(a.removeprefix("--no-collector.") in known for a in args), sorted(set(a.removeprefix("--no-collector.") for a in args) - known)
