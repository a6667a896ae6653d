"""The lab as a playground: every `lab` verb on the running dev lab (the effect seen from the client
or in `lab status --json`, then undone), `lab heal`, and `lab watch` driven in a real terminal (tmux).

Needs root and the Debian packages scripts/bootstrap.sh installs (tmux among them). Everything the
lab creates is removed at the end, also when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from conftest import running_lab
from webcluster import netns
from webcluster.lab import apache, faults, power, probe, processes, watch
from webcluster.lab.context import LabContext
from webcluster.lab.state import CLIENT, LabState, faults_in_force, netns_name
from webcluster.sandbox import proc_stat
from webcluster.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "Pulumi.dev.yaml"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabContext]:
    with running_lab(DEV) as context:
        yield context


@pytest.fixture
def healed(lab: LabContext) -> Iterator[LabContext]:
    """Each test starts and ends with no fault in force (and the context's view of the PIDs fresh)."""
    yield lab
    faults.heal(lab)
    lab.state = LabContext.current().state
    assert faults_in_force() == {}


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m webcluster lab ARGS` as a user types it (the module's lab lock is ours: it runs on)."""
    return subprocess.run([sys.executable, "-m", "webcluster", "lab", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def status() -> dict:
    out = cli("status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def log_tail(node: str, role: str, lines: int = 15) -> str:
    """The end of a lab daemon's log, for a failure message."""
    log = processes.log_path(node, role)
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else f"(no {log})"


def http_services(lab: LabContext):
    return [s for s in lab.topo.cluster.haproxy.services if s.mode.value == "http"]


def wait_server(lab: LabContext, server: str, state: str, timeout: float = 15) -> None:
    wait_until(f"{server} {state}", lambda: lab.server_states(server) == {state}, timeout, 0.2)


def wait_holder(lab: LabContext, director: str, timeout: float = 15) -> None:
    wait_until(f"{director} holds the VIPs alone", lambda: lab.sole_holder(lab.vip) == director and lab.sole_holder(lab.internal_vip) == director, timeout, 0.05)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("args, known", [
    (("stop", "php1"), "cluster21p"),
    (("start", "nope"), "cluster44p"),
    (("kill", "pacemaker", "cluster1"), "haproxy, keepalived"),
    (("kill", "haproxy", "cluster9"), "standby1"),
    (("cut", "nowhere"), "gluster3"),
    (("plug", "cluster1", "--link", "storage"), "external, internal, heartbeat"),
    (("power", "off", "vm7"), "nas"),
    (("degrade", "wan", "--delay", "10"), "external, internal, heartbeat"),
])
def test_an_unknown_name_lists_the_known_ones(lab: LabContext, args: tuple[str, ...], known: str) -> None:
    out = cli(*args)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith("error: unknown ") and known in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert faults_in_force() == {}


# --------------------------------------------------------------------------- one test per verb


def test_stop_and_start_a_container(healed: LabContext) -> None:
    lab = healed
    svc = http_services(lab)[0]
    victim = lab.topo.service_members(svc)[0][1].name
    out = cli("stop", victim)
    assert out.returncode == 0, out.stderr
    lab.state = LabContext.current().state
    wait_server(lab, victim, "DOWN")
    s = status()
    assert s["faults"] == {f"stop {victim}": {"kind": "process", "node": lab.topo.service_members(svc)[0][0].name, "role": apache.role(victim), "signal": "SIGWINCH"}}
    result = lab.load(lab.url(svc.port, "/index.php"), 200)
    assert result["failed"] == 0 and victim not in result["served_by"], result
    out = cli("start", victim)
    assert out.returncode == 0, out.stderr
    wait_server(lab, victim, "UP")
    assert status()["faults"] == {}


def test_kill_haproxy_and_start_it_again(healed: LabContext) -> None:
    lab = healed
    master, standby = lab.directors[0].name, lab.directors[1].name
    faults.kill(lab, "haproxy", master)
    wait_holder(lab, standby)
    assert status()["faults"] == {f"kill haproxy {master}": {"kind": "process", "node": master, "role": "haproxy", "signal": "SIGKILL"}}
    assert probe.get(lab.url(http_services(lab)[0].port)).ok
    _, desc = lab.stats()
    assert desc == lab.description(standby)
    faults.start_daemon(lab, "haproxy", master)
    wait_holder(lab, master)
    assert processes.alive(lab.state, master, "haproxy") and faults_in_force() == {}


def test_a_killed_keepalived_starts_again_though_its_pid_file_names_a_live_process(healed: LabContext) -> None:
    """A SIGKILLed keepalived leaves its pid file; once its PID is reused (pid_max 32768 here), keepalived
    would refuse to start ("daemon is already running"). `lab start` removes it, as systemd does."""
    lab = healed
    master, standby = lab.directors[0].name, lab.directors[1].name
    faults.kill(lab, "keepalived", master)  # (its VIPs stay on its NICs, as after a real SIGKILL)
    wait_until(f"{standby} holds {lab.vip}", lambda: standby in lab.holders(lab.vip), 15, 0.05)
    stale = processes.pid_file(master, processes.PID_FILES["keepalived"][0])
    assert stale.exists()  # left by the killed daemon
    stale.write_text(f"{os.getpid()}\n")  # a live process, as a reused PID would be
    faults.start_daemon(lab, "keepalived", master)
    wait_holder(lab, master)
    assert processes.alive(lab.state, master, "keepalived") and faults_in_force() == {}


def test_a_killed_container_starts_again_though_its_pid_file_names_a_live_process(healed: LabContext) -> None:
    """A SIGKILLed Apache leaves its pid file, and until PID 1 reaps it (it was started by another lab
    command) its PID is alive: Apache would refuse to start ("httpd (pid N) already running", exit 0),
    which stalled `lab bench` at "all servers UP". Starting it again removes the stale file."""
    lab = healed
    svc = http_services(lab)[0]
    host, victim = (m.name for m in lab.topo.service_members(svc)[0])
    role = apache.role(victim)
    lab.kill(host, role)  # SIGKILL: a crash, as `lab bench` does
    stale = processes.pid_file(host, apache.pid_path(victim))
    assert stale.exists()  # left by the killed Apache
    stale.write_text(f"{os.getpid()}\n")  # a live process, as the unreaped zombie is
    lab.restart(host, role)
    started = lab.state.find(host, role).pid
    # Apache writes its own PID there once it runs; one that refused exits, the file unchanged.
    wait_until("Apache runs and owns its pid file", lambda: stale.exists() and stale.read_text().strip() == str(started), 15, 0.1)
    assert processes.alive(lab.state, host, role), log_tail(host, role)
    wait_server(lab, victim, "UP")
    assert faults_in_force() == {}


def test_cut_one_link_and_plug_it(healed: LabContext) -> None:
    """The master's external cable out: keepalived sees no carrier, the standby serves the client."""
    lab = healed
    master, standby = lab.directors[0].name, lab.directors[1].name
    faults.cut(lab, master, "external")
    wait_until(f"{standby} holds {lab.vip}", lambda: lab.holders(lab.vip) == [standby], 15, 0.05)
    s = status()
    assert s["nodes"][master]["state"] == "cut external" and list(s["faults"]) == [f"cut {master} external"]
    assert s["stats_description"] == lab.description(standby)
    faults.plug(lab, master, "external")
    wait_holder(lab, master)
    assert status()["nodes"][master]["state"] == "up" and faults_in_force() == {}


def test_cut_every_link_of_a_docker_host(healed: LabContext) -> None:
    lab = healed
    host = lab.topo.cluster.backends[0].name
    mine = lab.containers_of(host)
    assert cli("cut", host).returncode == 0
    for c in mine:
        wait_server(lab, c, "DOWN")
    assert status()["nodes"][host]["state"] == "cut"
    assert cli("plug", host).returncode == 0
    for c in mine:
        wait_server(lab, c, "UP")
    assert status()["nodes"][host]["state"] == "up" and faults_in_force() == {}


def _prefork_setting(name: str) -> int:
    """A directive of Debian's prefork file (the one php:apache's Apache reads)."""
    text = Path(apache.PREFORK_CONF).read_text()
    return int(re.search(rf"^\s*{name}\s+(\d+)", text, re.M).group(1))


def _children(lab: LabContext, host: str, container: str) -> int:
    """How many Apache workers the container's parent process has."""
    parent = lab.state.find(host, apache.role(container)).pid
    ppids = []
    for pid in netns.pids_in(netns_name(host)):
        try:
            ppids.append(int(proc_stat(pid)[1]))
        except OSError:
            pass
    return ppids.count(parent)


def test_a_container_keeps_php_apache_spare_workers(healed: LabContext) -> None:
    """The stand-in's Apache keeps the image's spare workers at rest (Debian's MinSpareServers), so a
    burst is answered by waiting workers; with 2-4 spares it waited for Apache to spawn more (one
    cycle a second), and once a request after a power-off ran into HAProxy's 3 s timeout server."""
    lab = healed
    least = _prefork_setting("MinSpareServers")
    assert least >= 5
    svc = http_services(lab)[0]
    assert lab.load(lab.url(svc.port, "/index.php"), 200, concurrency=20)["failed"] == 0
    for backend in lab.topo.cluster.backends:
        for container in lab.containers_of(backend.name):
            wait_until(f"{least} workers in {container}", lambda: _children(lab, backend.name, container) >= least, 15, 0.5)


def test_power_a_docker_host_off_and_on(healed: LabContext) -> None:
    """Off: nothing of it runs, its containers DOWN, no HTTP request lost. On: every container back, the Gluster one too."""
    lab = healed
    host = lab.topo.cluster.backends[-1].name
    mine = lab.containers_of(host)
    out = cli("power", "off", host)
    assert out.returncode == 0, out.stderr
    assert not any(processes.alive(lab.state, host, apache.role(c)) for c in mine)
    assert power.journal()[-1]["node"] == host and power.journal()[-1]["cause"] == "lab power off"
    for c in mine:
        wait_server(lab, c, "DOWN")
    s = status()
    assert s["nodes"][host]["state"] == "off" and list(s["faults"]) == [f"power off {host}"]
    for svc in http_services(lab):
        result = lab.load(lab.url(svc.port, "/index.php"), 100)
        assert result["failed"] == 0, (svc.name, result)
    out = cli("power", "on", host)
    assert out.returncode == 0, out.stderr
    lab.state = LabContext.current().state
    for c in mine:
        wait_server(lab, c, "UP", timeout=30)
    s = status()
    assert s["nodes"][host]["state"] == "up" and s["faults"] == {} and all(s["daemons"].values())


def _round_trip(lab: LabContext, port: int, tries: int = 5) -> float:
    """The fastest of a few requests through the VIP (s), as the client sees it."""
    best = 99.0
    for _ in range(tries):
        start = time.monotonic()
        assert probe.get(lab.url(port)).ok
        best = min(best, time.monotonic() - start)
    return best


def _degrade_left_over(lab: LabContext) -> list[str]:
    """Chains or delayers of `lab degrade` still in the lab (netfilter, on a kernel without netem)."""
    left = []
    for node in [n.name for n in lab.topo.nodes] + [CLIENT]:
        rules = subprocess.run(processes.inside(node, ["iptables", "-t", "mangle", "-S"]), capture_output=True, text=True, timeout=30).stdout
        left += [f"{node}: {line}" for line in rules.splitlines() if "hwl-degrade" in line]
    state = LabState.load()
    left += [f"{p.node}: {p.role}" for p in state.processes if p.role.startswith("latency:")]
    return left


def test_degrade_a_network(healed: LabContext) -> None:
    """200 ms on the external network: every request from the client takes at least two of them
    (there and back); 100 % loss: nothing answers; --clear: back to normal, nothing left over.
    tc netem where the kernel has it, else netfilter (this machine's kernel has no sch_netem)."""
    lab = healed
    port = http_services(lab)[0].port
    out = cli("degrade", "external", "--delay", "200")
    assert out.returncode == 0, out.stderr
    fault = status()["faults"]["degrade external"]
    assert fault == {"kind": "degrade", "network": "external", "delay_ms": 200.0, "loss_pct": 0.0, "how": fault["how"]} and fault["how"] in ("netem", "netfilter")
    assert _round_trip(lab, port) >= 0.4
    assert cli("degrade", "external", "--loss", "100").returncode == 0
    assert status()["faults"]["degrade external"]["loss_pct"] == 100.0
    assert not probe.get(lab.url(port), timeout=2).ok, "100 % loss on the external network: the client must get no answer"
    assert cli("degrade", "external", "--clear").returncode == 0
    assert _round_trip(lab, port) < 0.2 and faults_in_force() == {}
    assert _degrade_left_over(lab) == []


def test_heal_undoes_every_fault_at_once(healed: LabContext) -> None:
    lab = healed
    master, standby1, standby2 = (d.name for d in lab.directors)
    container = lab.topo.cluster.backends[0].containers[0].name
    powered = lab.topo.cluster.backends[1].name
    faults.stop(lab, container)
    faults.kill(lab, "haproxy", standby1)
    faults.cut(lab, standby2, "heartbeat")
    faults.power_off(lab, powered)
    faults.cut(lab, powered, "internal")  # a cable pulled from a node that is off
    faults.kill(lab, "keepalived", master)
    assert len(status()["faults"]) == 6
    out = cli("heal")
    assert out.returncode == 0 and out.stdout.startswith("healed: power on "), out.stdout + out.stderr
    lab.state = LabContext.current().state
    s = status()
    dead = [d for d, up in s["daemons"].items() if not up]
    assert not dead, "\n".join(f"{d} is not running; its log ends:\n{log_tail(*d.split('/', 1))}" for d in dead)
    assert s["faults"] == {} and set(n["state"] for n in s["nodes"].values()) == {"up"}
    wait_holder(lab, master)
    wait_until("every server UP", lambda: set(lab.stats()[0].values()) == {"UP"}, 30, 0.5)


# --------------------------------------------------------------------------- lab watch


def test_watch_screen_fits_the_terminal() -> None:
    snap = {"time": "12:00:00", "stack": "dev", "ha_stack": "keepalived", "vips": {"192.168.1.200": ["cluster1"], "10.0.100.200": []},
            "nodes": {f"node{i}": "up" for i in range(12)} | {"standby2": "cut heartbeat"}, "faults": ["cut standby2 heartbeat"],
            "stats": {"description": "Nodo cluster1", "servers": [("http-servers", f"c{i}p", "UP") for i in range(9)]},
            "services": [("haproxy-http", 8000, "http")], "probe": {"haproxy-http": {"requests": 10, "ok": 8, "failed": 1, "moved": 1, "last_error": "12:00:00 timeout", "rate": 4.0}}}
    assert all(len(line) <= 60 for line in watch.frame(snap, width=60))
    text = "\n".join(watch.frame(snap, width=100))
    assert "192.168.1.200 -> cluster1" in text and "10.0.100.200 -> nobody" in text and "standby2 cut heartbeat" in text
    assert re.search(r"haproxy-http\s+8000 http\s+4.0\s+10\s+1\s+1\s+80.00%", text), text


def _probe_row(screen: str, service: str) -> tuple[int, int, int]:
    """(requests, failed, reset by a VIP move) of a service in a `lab watch` screen."""
    m = re.search(rf"^\s+{re.escape(service)}\s+\d+\s+\w+\s+[\d.]+\s+(\d+)\s+(\d+)\s+(\d+)\s", screen, re.M)
    return (int(m[1]), int(m[2]), int(m[3])) if m else (0, 0, 0)


def test_watch_counts_a_failure_at_a_vip_move_apart_once_a_move() -> None:
    moves = watch.VipMoves()
    moves.observe(["cluster1"], 100.0)
    moves.observe([], 110.0)  # nobody for a moment: not a move
    moves.observe(["standby1"], 110.5)
    moves.observe(["standby1"], 111.0)
    assert moves.times == [110.5]
    totals = {"requests": 50, "ok": 47, "failed": 3, "last_error": "x",
              "failures": [[20.0, 20.1, "RemoteDisconnected"], [109.8, 109.9, "ConnectionResetError"], [110.2, 110.3, "ConnectionResetError"]]}
    split = watch.split_probe(totals, moves)
    # The one in flight at the move is the move's; a second one at the same move and one long before are failures.
    assert (split["failed"], split["moved"]) == (2, 1)
    assert watch.split_probe({**totals, "failures": totals["failures"][:1], "failed": 1}, moves)["moved"] == 0


def test_watch_in_a_terminal_sees_the_vip_move_and_no_http_failure(healed: LabContext) -> None:
    """`lab watch` in tmux: the master's external cable out, the screen shows the VIPs on standby1 and the
    probes of the HTTP services going on without a failure; plugged back, the VIPs return, still without
    a failure; Ctrl-C gives the terminal back. A request in flight at the instant the VIP changes hands
    is reset (the new holder has no socket for it): the screen counts it apart, at most one per
    service a move (the probe sends one request at a time), and never as a failure.

    (Only the external cable: a master cut off entirely comes back with every server DOWN in its
    HAProxy and takes the VIPs at once, so its first requests get 503 until its checks pass; the
    scenarios' failover_chain covers that path.)"""
    lab = healed
    master, standby = lab.directors[0].name, lab.directors[1].name
    http = [s.name for s in http_services(lab)]
    server = f"hawc-watch-{os.getpid()}"  # a tmux server of this test's own

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True, timeout=10, check=True).stdout

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "watch")

    def requests_at_least(n: int) -> bool:
        return all(_probe_row(screen(), s)[0] >= n for s in http)

    tmux("new-session", "-d", "-s", "watch", "-x", "110", "-y", "45", "-c", str(ROOT), "bash --norc --noprofile")
    try:
        tmux("send-keys", "-t", "watch", f"{sys.executable} -m webcluster lab watch --duration 300", "Enter")
        wait_until("the watch shows probe totals", lambda: requests_at_least(4), 40, 0.3)
        assert f"{lab.vip} -> {master}" in screen() and tmux("display", "-p", "-t", "watch", "#{alternate_on}").strip() == "1"
        faults.cut(lab, master, "external")
        wait_until(f"the screen shows {standby} holding {lab.vip}", lambda: f"{lab.vip} -> {standby}" in screen(), 20, 0.2)
        shown = screen()
        assert f"{master} cut external" in shown and f"cut {master} external" in shown and f"({lab.description(standby)})" in shown, shown
        moved = min(_probe_row(shown, s)[0] for s in http)
        wait_until("probes go on through the standby", lambda: requests_at_least(moved + 8), 20, 0.3)
        shown = screen()
        assert all(_probe_row(shown, s)[1] == 0 and _probe_row(shown, s)[2] <= 1 for s in http), shown
        faults.plug(lab, master, "external")
        wait_until(f"the screen shows {master} holding {lab.vip} again", lambda: f"{lab.vip} -> {master}" in screen(), 20, 0.2)
        back = min(_probe_row(screen(), s)[0] for s in http)
        wait_until("probes go on through the master", lambda: requests_at_least(back + 4), 20, 0.3)
        final = screen()
        assert all(_probe_row(final, s)[1] == 0 and _probe_row(final, s)[2] <= 2 for s in http), final
        tmux("send-keys", "-t", "watch", "C-c")
        wait_until("the watch printed its totals", lambda: all(f"{s}: " in screen() for s in http), 15, 0.2)
        after = screen()
        assert tmux("display", "-p", "-t", "watch", "#{alternate_on} #{cursor_flag}").split() == ["0", "1"]  # the terminal given back
        for s in http:
            assert re.search(rf"^{re.escape(s)}: \d+ requests in \d+ s, 0 failed(, [12] reset by a VIP move \(last: .*\))?$", after, re.M), after
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True, timeout=10)
        faults.plug(lab, master)
