"""Issue #15 with haStack: pacemaker, in the lab: the directors' hawc_vip_held, written by the rendered
Pacemaker alert agent (run by the real Pacemaker, as hacluster), scraped from each director's
node-exporter: 1 on the holder and 0 elsewhere for each VIP resource, summing to 1; it follows a
standby and a fencing, and a director fenced while it held the VIPs comes back with 0. `lab status`
counts the two VIPs Pacemaker moves. Needs root (the lab)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

from test_lab_pacemaker import lab, stack  # noqa: F401 - the Pacemaker lab (dev with haStack: pacemaker), module-scoped
from webcluster.lab import faults, node_metrics, pacemaker, power
from webcluster.lab.context import LabContext
from webcluster.lab.state import sandbox
from webcluster.render import pacemaker as rpm
from webcluster.render.node_metrics import TEXTFILE_DIR, VIP_METRIC
from webcluster.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = pacemaker.FAILOVER_TIMEOUT


def vips(lab: LabContext) -> list[str]:
    return [lab.vip, lab.internal_vip]


def scrape(lab: LabContext, director: str) -> Optional[dict[str, int]]:
    """The director's hawc_vip_held as a Prometheus on the hypervisor host scrapes it; None: no answer (off)."""
    d = next(x for x in lab.directors if x.name == director)
    body = node_metrics.scrape(str(d.internal), lab.topo.cluster.node_metrics.port, timeout=2)
    return None if body is None or "node_exporter_build_info" not in body else node_metrics.held(body)


def expect(lab: LabContext, holder: str, off: tuple[str, ...] = (), timeout: float = TIMEOUT) -> dict[str, Optional[dict[str, int]]]:
    """Wait until every VIP's hawc_vip_held is 1 on `holder` alone, the directors in `off` answering no scrape."""
    seen: dict[str, Optional[dict[str, int]]] = {}

    def right() -> bool:
        seen.update({d.name: scrape(lab, d.name) for d in lab.directors})
        want = {d.name: (None if d.name in off else {v: int(d.name == holder) for v in vips(lab)}) for d in lab.directors}
        return seen == want

    try:
        wait_until(f"hawc_vip_held 1 on {holder} alone", right, timeout, interval=0.5)
    except Exception as exc:
        raise AssertionError(f"{exc}; last scrape: {seen}") from exc
    return seen


def files(director: str) -> dict[str, str]:
    """The director's metric files as they are on its disk (also while it is off)."""
    directory = sandbox(director).path(TEXTFILE_DIR)
    return {p.name: p.read_text() for p in sorted(directory.glob(f"{VIP_METRIC}_*.prom"))}


def status() -> dict:
    out = subprocess.run([sys.executable, "-m", "webcluster", "lab", "status", "--json"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_one_holder_per_vip_written_by_pacemakers_alert_agent(lab: LabContext) -> None:
    master = lab.directors[0].name
    held = expect(lab, master)
    assert {v: sum(m[v] for m in held.values() if m) for v in vips(lab)} == {v: 1 for v in vips(lab)}
    written = files(master)
    assert sorted(written) == [f"{VIP_METRIC}_IPVirtual_1.prom", f"{VIP_METRIC}_IPVirtual_2.prom"], written
    assert all("# sequence " in t for t in written.values()), written  # an alert wrote it, not only the reset at start
    owners = sandbox(master).run(["stat", "-c", "%U %a", *(f"{TEXTFILE_DIR}/{name}" for name in written)]).stdout.split("\n")
    assert [o for o in owners if o] == ["hacluster 644"] * 2, owners  # Pacemaker ran the agent as hacluster
    s = status()
    assert {v: (h["holders"], h["count"], h["metric_sum"]) for v, h in s["vip_holders"].items()} == {v: ([master], 1, 1) for v in vips(lab)}
    out = subprocess.run([sys.executable, "-m", "webcluster", "lab", "status"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout
    assert f"VIP {lab.vip:<15} held by {master} (1 holder; hawc_vip_held sum 1)" in out and "!!" not in out, out


def crm_standby(lab: LabContext, node: str, on: bool) -> None:
    argv = ["crm_standby", "--node", node] + (["--update", "on"] if on else ["--delete"])
    sandbox(lab.directors[1].name).run(argv, timeout=60)


def test_the_metric_follows_a_standby(lab: LabContext) -> None:
    """The holder put in standby: its stop alerts write 0, standby1's start alerts 1; and back."""
    master, standby1 = lab.directors[0].name, lab.directors[1].name
    expect(lab, master)
    crm_standby(lab, master, True)
    try:
        wait_until(f"{standby1} holds both VIPs", lambda: lab.vips_on(standby1) and lab.sole_holder(lab.vip) == standby1, TIMEOUT)
        expect(lab, standby1)
    finally:
        crm_standby(lab, master, False)
    wait_until(f"{master} holds both VIPs again", lambda: lab.vips_on(master) and lab.sole_holder(lab.vip) == master, TIMEOUT)
    expect(lab, master)


def stale_ones(lab: LabContext, director: str) -> None:
    """What a director that lost power while holding the VIPs has on its disk: 1 for each VIP, with a
    sequence no alert of its next Pacemaker reaches, so only the reset before pacemakerd clears it.
    (Fenced here, it may have stopped a VIP before the power went: its quorum went first.)"""
    directory = sandbox(director).path(TEXTFILE_DIR)
    for v in rpm.vip_resources(lab.topo):
        line = f'{VIP_METRIC}{{vip="{v.ip}",instance_name="{v.name}"}} 1'
        (directory / f"{VIP_METRIC}_{v.name}.prom").write_text(f"# TYPE {VIP_METRIC} gauge\n{line}\n# sequence 999999\n")


def test_fenced_holders_come_back_with_0(lab: LabContext) -> None:
    """The seed's chain with real fencing: master cut (fenced), standby1 takes over, is cut (fenced),
    standby2 takes over; the master is powered on and takes the VIPs back; standby1, powered on with a
    stale 1 on its disk for each VIP, does not, and says 0."""
    master, standby1, standby2 = (d.name for d in lab.directors)
    expect(lab, master)
    try:
        lab.cut(master)
        wait_until(f"{master} fenced", lambda: master in power.powered_off(), TIMEOUT, 0.2)
        expect(lab, standby1, off=(master,))
        assert all(h["metric_sum"] == 1 and h["holders"] == [standby1] for h in status()["vip_holders"].values())
        lab.cut(standby1)
        wait_until(f"{standby1} fenced", lambda: standby1 in power.powered_off(), TIMEOUT, 0.2)
        expect(lab, standby2, off=(master, standby1))
        lab.restore(master)
        expect(lab, master, off=(standby1,))
        stale_ones(lab, standby1)
        assert node_metrics.held_files(standby1) == {v: 1 for v in vips(lab)}
        assert all(h["metric_sum"] == 1 for h in status()["vip_holders"].values())  # an off director does not count
        lab.restore(standby1)
        expect(lab, master)  # standby1 back: 0, not its stale 1
        assert all("# sequence 999999" not in t for t in files(standby1).values())
    finally:
        for d in (master, standby1, standby2):
            lab.restore(d)
    expect(lab, master)


def test_a_restarted_pacemakerd_starts_from_the_reset(lab: LabContext) -> None:
    """The lab starts pacemakerd behind the rendered drop-in's ExecStartPre, as systemd does."""
    for d in lab.directors:
        argv = next(p.argv for p in lab.state.processes if p.node == d.name and p.role == "pacemaker")
        assert argv[-1].endswith("/etc/ha-web-cluster/hawc-vip-alert sync; exec pacemakerd"), argv
    assert faults.node_states(lab)[lab.directors[0].name] == "up"
