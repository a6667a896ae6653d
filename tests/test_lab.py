"""The namespace lab on the dev stack: real daemons on the rendered files, the seed's scenarios.

Needs root, iproute2 and the Debian daemons (.ci/run installs them). Everything the lab
creates is removed at the end, also when a test fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import running_lab
from webcluster import netns
from webcluster.lab import lifecycle, scenarios
from webcluster.lab.state import LINK_PREFIX, NETNS_PREFIX, LabState, faults_in_force
from webcluster.stackfile import load_stack_file

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "Pulumi.dev.yaml"


def _lab_leftovers() -> list[str]:
    return [n for n in netns.list_netns() if n.startswith(NETNS_PREFIX)] + netns.links_with_prefix(LINK_PREFIX)


@pytest.fixture(scope="module")
def lab():
    with running_lab(DEV) as context:
        yield context


def test_status_json_names_nodes_vips_and_client(lab):
    out = subprocess.run([sys.executable, "-m", "webcluster", "lab", "status", "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)
    topo = lab.topo
    assert set(s["nodes"]) == {n.name for n in topo.nodes}
    for node in topo.nodes:
        entry = s["nodes"][node.name]
        assert entry["netns"] == f"{NETNS_PREFIX}{node.name}"
        # DHCP nodes got exactly their reservation from the master's dnsmasq.
        assert f"{node.internal_address}/24" in entry["addresses"]
    master = topo.directors[0].name
    assert s["vips"] == {str(topo.cluster.vips.external): master, str(topo.cluster.vips.internal): master, str(topo.cluster.vips.heartbeat): master}
    assert s["client_netns"] == f"{NETNS_PREFIX}client"
    assert all(s["daemons"].values())
    servers = [state for backend in s["haproxy_servers"].values() for state in backend.values()]
    assert len(servers) == sum(len(lab.topo.service_members(x)) for x in topo.cluster.haproxy.services) and set(servers) == {"UP"}


def test_up_again_is_harmless(lab):
    before = {(p.node, p.role, p.pid) for p in LabState.load().processes}
    lifecycle.up(load_stack_file(DEV), str(DEV), progress=lambda _m: None)
    after = {(p.node, p.role, p.pid) for p in LabState.load().processes}
    assert before == after


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_scenario(lab, name):
    notes = scenarios.SCENARIOS[name](lab)
    assert notes
    assert faults_in_force() == {}, "the scenario left a fault in force (its faults go through webcluster.lab.faults and are undone)"


def test_down_after_a_half_finished_up_removes_everything(lab, monkeypatch):
    """Runs last in this module: break `up` midway, then `down` twice leaves nothing behind."""
    lifecycle.down(progress=lambda _m: None)

    def broken(*_args, **_kwargs):
        raise lifecycle.LabError("injected failure before the directors start")

    monkeypatch.setattr(lifecycle, "_dhcp_clients", broken)
    with pytest.raises(lifecycle.LabError):
        lifecycle.up(load_stack_file(DEV), str(DEV), progress=lambda _m: None)
    assert _lab_leftovers(), "the half-finished up should have left namespaces to clean"
    lifecycle.down(progress=lambda _m: None)
    lifecycle.down(progress=lambda _m: None)
    assert _lab_leftovers() == []
    assert LabState.load() is None
