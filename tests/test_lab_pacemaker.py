"""haStack: pacemaker in the namespace lab: real corosync-qnetd, corosync, corosync-qdevice and
Pacemaker per director, fencing on (the lab's fence agent powers a node off for real), and the
seed's test 4.1.1 on the dev stack switched to haStack: pacemaker.

Needs root and the Debian packages scripts/bootstrap.sh installs. Everything the lab creates
is removed at the end, also when a test fails.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import socket
import threading
import time
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Iterator

import pytest

from conftest import running_lab
from webcluster import netns
from webcluster.lab import faults, fence_lab, latency, lifecycle, network, pacemaker, power, processes, scenarios
from webcluster.lab.bench import AddressWatch
from webcluster.lab.holders import HolderWatch
from webcluster.lab.context import LabContext
from webcluster.waiting import wait_until
from webcluster.lab.state import LINK_PREFIX, NETNS_PREFIX, LabState, faults_in_force, netns_name, sandbox
from webcluster.render import pacemaker as rpm
from webcluster.render import render_cluster
from webcluster.sandbox import proc_stat
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
    with running_lab(stack) as context:
        yield context


@pytest.fixture(autouse=True)
def leaves_no_fault_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves a director fenced or a fault in force fails on its own assertions; the
    tests after it start from a healed lab (every director on, the VIPs on the master), not from
    its leftovers (one unexpected fencing once failed the seven tests that followed it)."""
    yield
    if "lab" not in request.fixturenames or LabState.load() is None:
        return
    if power.powered_off() or faults_in_force():
        lab = request.getfixturevalue("lab")
        print(f"healing after {request.node.name}: {faults.heal(lab)}")
        lab.state = LabContext.current().state
        wait_holder(lab, lab.directors[0].name)


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
    kept = [line for line in rendered.splitlines() if not line.startswith(("primitive haproxy", "primitive fence-")) and " ip=\"" not in line]  # the fence devices' parameters
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
        # the fence key as 52-pacemaker installed it: root only, and no fence password file
        assert dsh(d, "stat", "-c", "%a %U", rpm.FENCE_KEY).split() == ["600", "root"]
        assert "PRIVATE KEY" in dsh(d, "head", "-c", "60", rpm.FENCE_KEY) and not dsh(d, "ls", rpm.FENCE_PASSWORD).strip()
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


# --------------------------------------------------------------------------- no false fencing
# The timers are short (docs/pacemaker.md): a director that is slow, not dead, must keep its place.

LOAD_SECONDS = 60


def ring_id(node: str) -> str:
    """corosync's current membership (a new one is formed whenever a director is thought lost)."""
    m = re.search(r"Ring ID:\s+(\S+)", dsh(node, "corosync-quorumtool", "-s"))
    assert m, f"no ring id from {node}"
    return m.group(1)


def steady(lab: LabContext, holder: str, seconds: float) -> int:
    """For `seconds`, every half second: `holder` alone holds both VIPs and nobody was fenced. Returns the samples."""
    fencings = len(power.journal())
    deadline = time.monotonic() + seconds
    samples = 0
    while time.monotonic() < deadline:
        assert lab.holders(lab.vip) == [holder] and lab.holders(lab.internal_vip) == [holder], (lab.holders(lab.vip), lab.holders(lab.internal_vip))
        assert len(power.journal()) == fencings, power.journal()[fencings:]
        samples += 1
        time.sleep(0.5)
    return samples


@contextmanager
def busy_cpu(node: str, seconds: float) -> Iterator[list[int]]:
    """One process per CPU of the machine spinning inside the node's namespaces (fenced with it, were it
    fenced): bounded by its own clock to `seconds` + 5, stopped by PID when the block ends."""
    spin = f"import time\nend = time.monotonic() + {seconds + 5}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [sandbox(node).spawn([sys.executable, "-c", spin], processes.log_path(node, f"busy{i}")) for i in range(os.cpu_count() or 2)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            processes.signal_group(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def membership_log(node: str, lines: int = 12) -> str:
    """corosync's own account of a membership change on a director (token lost, link down, new ring)."""
    log = sandbox(node).private("/var/log/corosync") / "corosync.log"
    if not log.exists():
        return f"(no {log})"
    said = [l for l in log.read_text(errors="replace").splitlines() if re.search(r"token|link: host|membership|Retransmit|consensus", l, re.I)]
    return "\n".join(said[-lines:])


def cluster_intact(lab: LabContext, ring: str, context: str = "") -> None:
    names = sorted(d.name for d in lab.directors)
    for d in names:
        assert ring_id(d) == ring, f"{d} saw a membership change; corosync said:\n{membership_log(d)}\n{context}"
        assert all(processes.alive(lab.state, d, role) for role in CLUSTER_ROLES)
    assert f"Online: [ {' '.join(names)} ]" in dsh(names[0], "crm_mon", "-1")


def test_a_standby_with_its_cpu_fully_busy_for_a_minute_is_not_fenced(lab: LabContext) -> None:
    """Every CPU of the machine spinning in standby1 for a minute: no fencing, no VIP move, not even a
    new corosync membership (corosync runs with real-time priority; Pacemaker's own timeouts are long)."""
    master, standby1 = lab.directors[0].name, lab.directors[1].name
    wait_holder(lab, master)
    ring = ring_id(master)
    with HolderWatch(lab):
        with busy_cpu(standby1, LOAD_SECONDS) as spinners:
            assert set(spinners) <= set(netns.pids_in(netns_name(standby1)))
            assert steady(lab, master, LOAD_SECONDS) > LOAD_SECONDS
            used = sum(cpu_seconds(pid) for pid in spinners)
    assert used > 0.25 * LOAD_SECONDS * len(spinners), f"the spinners used only {used:.0f} s of CPU"
    cluster_intact(lab, ring)


def test_100_ms_added_on_the_masters_heartbeat_link_is_not_a_failure(lab: LabContext) -> None:
    """Every packet through the master's heartbeat NIC delayed 100 ms, both ways, for a minute: no
    fencing, no VIP move, no new membership: the token (600 ms) goes round in ~250 ms, and the link,
    which corosync would declare down after token / 2 (300 ms) without a pong, has 1320 ms (the
    step from 0 to 200 ms more round trip is what took it down in the lab at 300 ms)."""
    master, standby1 = lab.directors[0], lab.directors[1]
    nic = next(n.name for n in lab.topo.node(master.name).nics if n.network == "heartbeat")
    wait_holder(lab, master.name)
    ring = ring_id(master.name)
    with HolderWatch(lab):
        with latency.added_latency(master.name, nic, 0.1, LOAD_SECONDS + 15):
            out = dsh(standby1.name, "ping", "-n", "-c", "3", "-i", "0.3", "-W", "3", str(master.heartbeat))
            rtts = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
            assert len(rtts) == 3 and min(rtts) >= 195, out  # the latency is there
            assert steady(lab, master.name, LOAD_SECONDS) > LOAD_SECONDS
    assert not processes.alive(LabState.load(), master.name, latency.ROLE)  # the delayer was stopped
    delayer = processes.log_path(master.name, latency.ROLE).read_text().strip()  # how late it was, at worst
    cluster_intact(lab, ring, f"the delayer: {delayer}")


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


def test_heal_powers_on_a_director_pacemaker_fenced(lab: LabContext) -> None:
    """`lab cut` the master: Pacemaker fences it (powered off for real); `lab heal` plugs it in and
    powers it on, and it takes the VIPs back."""
    master, standby1 = lab.directors[0].name, lab.directors[1].name
    faults.cut(lab, master)
    wait_holder(lab, standby1)
    wait_until(f"{master} fenced", lambda: master in power.powered_off(), pacemaker.FAILOVER_TIMEOUT, 0.1)
    assert faults.node_states(lab)[master] == "off"
    done = faults.heal(lab)
    assert done[0] == f"power on {master}" and faults_in_force() == {}, done
    wait_holder(lab, master)
    assert faults.node_states(lab)[master] == "up" and master not in power.powered_off()


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
