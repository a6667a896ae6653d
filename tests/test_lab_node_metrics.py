"""Issue #15, node-level metrics in the lab: node-exporter runs on every node's rendered
/etc/default file, answers on the node's internal address to the scrapers the model names (the
hypervisor host, the directors) and to nobody else (the client on the external network, another
internal node); the directors' hawc_vip_held, written by keepalived's notify hook, is 1 on the
holder and 0 elsewhere, sums to 1 per VIP, and follows a failover. Needs root (the lab)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import running_lab
from webcluster.lab import faults, node_metrics
from webcluster.lab.security import routes_via_vip
from webcluster.lab.state import CLIENT, netns_name, sandbox
from webcluster.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "Pulumi.dev.yaml"


@pytest.fixture(scope="module")
def lab():
    with running_lab(DEV) as context:
        yield context


def port(lab) -> int:
    return lab.topo.cluster.node_metrics.port


def from_node(node: str, url: str) -> int:
    """curl's exit code for url inside a node (0: answered; 7 refused, 28 timed out)."""
    return sandbox(node).run(["curl", "-sS", "-o", "/dev/null", "--max-time", "3", "--noproxy", "*", url], check=False, timeout=10).returncode


def test_every_node_exporter_answers_the_hypervisor_host_and_the_directors(lab):
    for node in lab.topo.nodes:
        body = wait_scrape(lab, str(node.internal_address))
        assert "node_exporter_build_info" in body and 'node_network_up{device="' in body, node.name
        assert "node_hwmon" not in body and "node_rapl" not in body, f"{node.name}: a disabled collector answered"
    director = lab.directors[1].name  # a standby: it scrapes from its own internal address, not a VIP
    for node in lab.topo.nodes:
        assert from_node(director, f"http://{node.internal_address}:{port(lab)}/metrics") == 0, f"{director} cannot scrape {node.name}"


def test_nobody_else_reaches_node_exporter(lab):
    backend = lab.topo.cluster.backends[0]
    nas = next(n for n in lab.topo.nodes if n.role == "nas")
    assert from_node(backend.name, f"http://{nas.internal_address}:{port(lab)}/metrics") == 28, "a Docker host (not a scraper) reached the NAS's node-exporter"
    master = lab.directors[0]
    with routes_via_vip(lab):  # the worst-case client: it routes the internal network through the VIP
        for address in (str(master.internal), str(lab.vip), str(nas.internal_address)):
            assert node_metrics.scrape(address, port(lab), ns=CLIENT, timeout=3) is None, f"the client scraped {address}"
    lines = sandbox(master.name).run(["ss", "-Htln", f"sport = :{port(lab)}"]).stdout.splitlines()
    assert [line.split()[3] for line in lines] == [f"{master.internal}:{port(lab)}"], lines  # the internal address alone


def wait_scrape(lab, address: str) -> str:
    """A whole scrape (node-exporter's own build_info in it) from the hypervisor host's namespace."""
    out: list[str] = []
    wait_until(f"node-exporter on {address}", lambda: "node_exporter_build_info" in (out.append(node_metrics.scrape(address, port(lab)) or "") or out[-1]), 30, interval=0.5)
    return out[-1]


def held_by_scrape(lab) -> dict[str, dict[str, int]]:
    """director -> vip -> hawc_vip_held, as a Prometheus on the hypervisor host scrapes it."""
    return {d.name: node_metrics.held(wait_scrape(lab, str(d.internal))) for d in lab.directors}


def expect_holder(lab, vip: str, holder: str, timeout: float = 20) -> None:
    def right() -> bool:
        held = held_by_scrape(lab)
        return all(vip in m for m in held.values()) and {d: m[vip] for d, m in held.items()} == {d.name: int(d.name == holder) for d in lab.directors}

    wait_until(f"hawc_vip_held of {vip}: 1 on {holder} alone", right, timeout, interval=0.5)


def status() -> dict:
    out = subprocess.run([sys.executable, "-m", "webcluster", "lab", "status", "--json"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_vip_held_is_one_on_the_holder_and_follows_a_failover(lab):
    c = lab.topo.cluster
    master, standby = lab.directors[0].name, lab.directors[1].name
    vips = [str(c.vips.external), str(c.vips.internal), str(c.vips.heartbeat)]
    for vip in vips:
        expect_holder(lab, vip, master)
    held = held_by_scrape(lab)
    assert {vip: sum(m[vip] for m in held.values()) for vip in vips} == {vip: 1 for vip in vips}
    s = status()
    assert {vip: (h["holders"], h["count"], h["metric_sum"]) for vip, h in s["vip_holders"].items()} == {vip: ([master], 1, 1) for vip in vips}

    faults.cut(lab, master, "external")
    try:
        wait_until(f"{standby} holds {lab.vip}", lambda: lab.sole_holder(lab.vip) == standby, 20)
        expect_holder(lab, str(c.vips.external), standby)
        expect_holder(lab, str(c.vips.internal), standby)  # the sync group moves both
        expect_holder(lab, str(c.vips.heartbeat), master)  # its cable is still in
        s = status()
        assert s["vip_holders"][str(c.vips.external)]["holders"] == [standby] and s["vip_holders"][str(c.vips.external)]["metric_sum"] == 1
    finally:
        faults.heal(lab)
    wait_until(f"{master} holds {lab.vip} again", lambda: lab.sole_holder(lab.vip) == master, 30)
    expect_holder(lab, str(c.vips.external), master)


def test_status_flags_a_vip_without_exactly_one_holder():
    from webcluster.lab.status import format_vip, vip_count

    two = format_vip("192.168.1.200", vip_count(["cluster1", "standby1"], {"cluster1": 1, "standby1": 1, "standby2": 0}))
    assert "2 holders" in two and "must be exactly 1" in two and "hawc_vip_held sum 2 !!" in two
    one = format_vip("192.168.1.200", vip_count(["cluster1"], {"cluster1": 1, "standby1": 0}))
    assert "!!" not in one and "(1 holder; hawc_vip_held sum 1)" in one
    assert "held by nobody (0 holders" in format_vip("10.0.0.1", vip_count([], {}))


def runtime(director: str, command: str) -> str:
    """One command on the director's HAProxy runtime API (its admin socket, inside the node)."""
    script = "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); s.sendall(sys.argv[1].encode()+b'\\n'); print(s.makefile().read())"
    return sandbox(director).run([sys.executable, "-c", script, command]).stdout


def test_status_shows_each_directors_drained_and_maintenance_servers(lab):
    """Each director's HAProxy keeps its own runtime state: a server drained on one director and put
    in maintenance on another shows so per director, and UP on the third."""
    first, second, third = (d.name for d in lab.directors)
    backend, server = "http-servers", lab.topo.cluster.backends[0].containers[0].name
    runtime(first, f"set server {backend}/{server} state drain")
    runtime(second, f"set server {backend}/{server} state maint")
    try:
        by = status()["haproxy_servers_by_director"]
        assert (by[first][backend][server], by[second][backend][server], by[third][backend][server]) == ("DRAIN", "MAINT", "UP")
        out = subprocess.run([sys.executable, "-m", "webcluster", "lab", "status"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120).stdout
        assert f"{first}'s HAProxy: 1 DRAIN, " in out and f"{server}:DRAIN" in out and f"{server}:MAINT" in out and f"{third}'s HAProxy: 24 UP" in out, out
    finally:
        for director in (first, second):
            runtime(director, f"set server {backend}/{server} state ready")
