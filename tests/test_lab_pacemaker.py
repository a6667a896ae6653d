"""haStack: pacemaker in the namespace lab: real corosync-qnetd, corosync, corosync-qdevice and
Pacemaker per director, fencing on (the lab's fence agent powers a node off for real), and the
seed's test 4.1.1 on the dev stack switched to haStack: pacemaker.

Needs root and the Debian packages scripts/bootstrap.sh installs. Everything the lab creates
is removed at the end, also when a test fails.
"""

from __future__ import annotations

import io
import json
import re
import socket
import threading
from contextlib import redirect_stdout
from pathlib import Path
from typing import Iterator

import pytest

from webcluster import netns
from webcluster.lab import fence_lab, lifecycle, network, pacemaker, power, processes, scenarios
from webcluster.lab.bench import AddressWatch
from webcluster.lab.holders import HolderWatch
from webcluster.lab.context import LabContext
from webcluster.waiting import wait_until
from webcluster.lab.state import LINK_PREFIX, NETNS_PREFIX, LabState, exclusive, netns_name, sandbox
from webcluster.render import pacemaker as rpm
from webcluster.render import render_cluster
from webcluster.stackfile import load_stack_file
from webcluster.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "Pulumi.dev.yaml"
CLUSTER_ROLES = ("corosync", "corosync-qdevice", "pacemaker")


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pacemaker.stack_variant(DEV, tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def lab(stack: Path) -> Iterator[LabContext]:
    with exclusive():  # a lab command running elsewhere on this machine finishes first
        lifecycle.down(progress=quiet)
        try:
            lifecycle.up(load_stack_file(stack), str(stack), progress=quiet)
            yield LabContext.current()
        finally:
            lifecycle.down(progress=quiet)


def dsh(node: str, *argv: str) -> str:
    """A command inside a lab node (its namespaces, as with nsenter)."""
    return sandbox(node).run(list(argv), check=False, timeout=60).stdout


def fenced(lab: LabContext, node: str) -> dict:
    """The node is off (cables out, nothing running in it, no VIP); returns its last fencing."""
    entries = [e for e in power.journal() if e["node"] == node]
    assert entries, f"{node} was never fenced"
    assert not power.cables_in(lab.state, node), f"{node}'s cables are still in"
    # (a sampler's `ip -n` enters the namespace for a few milliseconds: wait for it, briefly)
    wait_until(f"no process in {node}", lambda: not netns.pids_in(netns_name(node)), 2, 0.02)
    assert not any(processes.alive(lab.state, node, role) for role in CLUSTER_ROLES)
    assert not any(network.holds(node, v) for v in (lab.vip, lab.internal_vip))
    return entries[-1]


def wait_holder(lab: LabContext, director: str, timeout: float = pacemaker.FAILOVER_TIMEOUT) -> float:
    return wait_until(f"{director} holds both VIPs alone", lambda: lab.vips_on(director) and lab.sole_holder(lab.vip) == director and lab.sole_holder(lab.internal_vip) == director, timeout, 0.02)


# --------------------------------------------------------------------------- without a lab


def test_lab_cib_replaces_only_haproxy_and_the_fence_devices(stack: Path) -> None:
    config = load_stack_file(stack).config
    rendered = str(render_cluster(config).nodes["cluster1"].files[rpm.CIB_CRM].content)
    lab_text = pacemaker.lab_cib(rendered, Topology(config))
    changed = sorted(set(lab_text.splitlines()) ^ set(rendered.splitlines()))
    assert all(line.lstrip().startswith(("primitive haproxy ", "primitive fence-", "params ")) for line in changed), changed
    assert "primitive haproxy ocf:heartbeat:anything \\" in lab_text and "systemd:" not in lab_text
    assert lab_text.count("stonith:fence_lab") == 3 and "fence_virsh" not in lab_text and "password" not in lab_text
    assert 'params plug="standby1" pcmk_host_list="standby1" pcmk_reboot_action="off" \\' in lab_text
    kept = [line for line in rendered.splitlines() if not line.startswith(("primitive haproxy", "primitive fence-")) and "params ip=\"" not in line]
    assert all(line in lab_text.splitlines() for line in kept)  # group, order, locations, colocation, properties
    with pytest.raises(pacemaker.PacemakerLabError):
        pacemaker.lab_cib(rendered.replace("primitive haproxy systemd:haproxy", "primitive haproxy ocf:x:y"), Topology(config))


class FakeSwitch:
    """Answers one request on a unix socket the way webcluster.lab.power does; remembers it."""

    def __init__(self, path: Path, reply: dict):
        self.path, self.reply = path, reply
        self.request: dict = {}
        self.srv = power._listen(path)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.srv.accept()
        with conn:
            self.request = json.loads(conn.makefile("rb").readline())
            conn.sendall(json.dumps(self.reply).encode() + b"\n")
        self.srv.close()


def run_agent(path: Path, argv: list[str], stdin: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = fence_lab.agent_main(path, argv, stdin)
    return code, out.getvalue()


def test_fence_agent_speaks_the_fence_agent_protocol(tmp_path: Path) -> None:
    code, meta = run_agent(tmp_path / "none.sock", [], "action=metadata\n")
    assert code == 0 and '<resource-agent name="fence_lab"' in meta and '<action name="off" />' in meta
    switch = FakeSwitch(tmp_path / "a.sock", {"ok": True})
    code, _ = run_agent(switch.path, [], "action=reboot\nport=standby2\nnodename=standby2\n")  # as pacemaker-fenced passes it
    switch.thread.join(5)
    assert code == 0 and switch.request == {"action": "off", "node": "standby2"}
    switch = FakeSwitch(tmp_path / "b.sock", {"ok": True, "power": "off"})
    assert run_agent(switch.path, ["-o", "status", "-n", "cluster1"], "")[0] == fence_lab.EXIT_OFF
    switch = FakeSwitch(tmp_path / "c.sock", {"ok": False, "error": "boom"})
    assert run_agent(switch.path, ["-o", "off", "-n", "cluster1"], "")[0] == fence_lab.EXIT_ERROR
    assert run_agent(tmp_path / "nobody.sock", ["-o", "off", "-n", "cluster1"], "")[0] == fence_lab.EXIT_ERROR


def test_the_installed_agent_is_this_module_bound_to_the_labs_switch(tmp_path: Path) -> None:
    program = fence_lab.agent_program(tmp_path / "s.sock")
    assert program.startswith("#!/usr/bin/python3\n") and f"DEFAULT_SOCKET: Optional[str] = {str(tmp_path / 's.sock')!r}" in program
    assert "import webcluster" not in program  # stdlib only: it runs as hacluster too


# --------------------------------------------------------------------------- the running lab


def test_real_cluster_stack_on_the_rendered_files(lab: LabContext) -> None:
    directors = [d.name for d in lab.directors]
    for d in directors:
        assert dsh(d, "hostname").strip() == d
        quorum = dsh(d, "corosync-quorumtool", "-s")
        assert "Quorate:          Yes" in quorum and "Qdevice" in quorum and "Nodes:            3" in quorum, quorum
        assert re.search(r"State:\s+Connected", dsh(d, "corosync-qdevice-tool", "-s"))
        assert sandbox(d).run(["test", "-x", fence_lab.AGENT_PATH], check=False).returncode == 0
    assert not Path(fence_lab.AGENT_PATH).exists(), "the lab must not install its agent on the host"
    assert 'Cluster "cluster_tfm"' in dsh("nas", "corosync-qnetd-tool", "-l")
    status = dsh(directors[1], "crm_mon", "-1")
    assert f"Online: [ {' '.join(sorted(directors))} ]" in status, status
    for d in directors:
        assert f"fence-{d}\t(stonith:fence_lab):\t Started" in status, status
    cib = dsh(directors[1], "cibadmin", "-Q")
    assert 'name="stonith-enabled" value="true"' in cib and 'name="no-quorum-policy" value="stop"' in cib
    assert lab.holders(lab.vip) == [directors[0]] and lab.holders(lab.internal_vip) == [directors[0]]


def test_all_up(lab: LabContext) -> None:
    assert scenarios.SCENARIOS["all_up"](lab)


def test_seed_4_1_1_failover_chain_with_real_fencing(lab: LabContext) -> None:
    """Master cut -> fenced, standby1 holds both VIPs; standby1 cut -> fenced, standby2 holds them;
    master back -> master holds them. Each survivor takes the VIPs only after the fencing completed,
    and no sampled moment has two holders of a VIP."""
    master, standby1, standby2 = (d.name for d in lab.directors)
    try:
        with HolderWatch(lab):
            for lost, survivor in ((master, standby1), (standby1, standby2)):
                watch = AddressWatch(netns_name(survivor), lab.vip)
                lab.cut(lost)
                wait_holder(lab, survivor)
                seen = watch.wait(1)
                fencing = fenced(lab, lost)
                assert seen is not None and fencing["done"] < seen, f"{survivor} took {lab.vip} before {lost} was fenced: {fencing}"
                assert f"of {lost} successful" in dsh(survivor, "stonith_admin", "--history", lost)
            lab.restore(master)
            wait_holder(lab, master)
            assert processes.alive(lab.state, master, "pacemaker") and not processes.alive(lab.state, standby1, "pacemaker")
            lab.restore(standby1)
            wait_until("standby1 back in the cluster", lambda: "Online: [ " + " ".join(sorted((master, standby1, standby2))) + " ]" in dsh(master, "crm_mon", "-1"), pacemaker.FAILOVER_TIMEOUT, 0.5)
            assert lab.holders(lab.vip) == [master]
    finally:
        for d in (master, standby1, standby2):
            lab.restore(d)
    wait_holder(lab, master)


def test_haproxy_killed_on_the_active_director_moves_the_vips(lab: LabContext) -> None:
    """Pacemaker's monitor sees HAProxy gone; the VIPs follow a running HAProxy. Nobody is fenced."""
    before = len(power.journal())
    with HolderWatch(lab):
        notes = scenarios.SCENARIOS["haproxy_dies"](lab)
    assert notes and len(power.journal()) == before


@pytest.mark.parametrize("name", [n for n in scenarios.SCENARIOS if n.startswith("serving_")])
def test_a_director_that_cannot_serve_gives_up_the_vips(lab: LabContext, name: str) -> None:
    """Issue #17 with Pacemaker: link loss (ethmonitor) and backends out of reach (backends-up) move
    the VIPs, all containers stopped or one Docker host cut move nothing; nobody is fenced."""
    before = len(power.journal())
    assert scenarios.SCENARIOS[name](lab)
    assert len(power.journal()) == before


def test_down_leaves_nothing_running(lab: LabContext) -> None:
    """Runs last: `lab down` stops the power switch and every daemon, removes namespaces, links and the socket."""
    state = LabState.load()
    pids = [p.pid for p in state.processes]
    lifecycle.down(progress=quiet)
    assert not [n for n in netns.list_netns() if n.startswith(NETNS_PREFIX)] and not netns.links_with_prefix(LINK_PREFIX)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists() and not processes.is_zombie(pid)]
    assert not power.SOCKET.exists() and LabState.load() is None
    with pytest.raises(OSError):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(power.SOCKET))
