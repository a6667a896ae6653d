"""The HAProxy reload script (templates/director/haproxy-reload.sh.j2), run as rendered under bash.

haproxy (-c) and socat are small fakes (and, in two tests, socat is the real one talking to a
stand-in for HAProxy's admin socket); the master is a real process that notes its SIGUSR2. A
`python3` on PATH records being started: on a CPU-starved emulated director each python3 start
cost seconds and the reload outlived systemd's 90 s, so the script must start none.
The real-HAProxy reload (drain and maintenance kept, no request lost) is tests/test_lab_reloads.py,
which needs the namespace lab.
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from webcluster.render import ClusterPlan
from webcluster.render.director import (
    HAPROXY_ADMIN_SOCKET,
    HAPROXY_CFG,
    HAPROXY_CLI_TIMEOUT_S,
    HAPROXY_DROPIN,
    HAPROXY_PIDFILE,
    HAPROXY_RELOAD,
    HAPROXY_RELOAD_TIMEOUT_S,
    HAPROXY_STATE,
    HAPROXY_UNIT_TIMEOUT_S,
)
from webcluster.render.templating import render

TEMPLATE = "director/haproxy-reload.sh.j2"
OLD_PID, NEW_PID = "1001", "2002"

FAKES = {
    "haproxy": 'echo "haproxy $*" >> "$LOG"\n[ ! -e "$STATE/refuse" ]',
    # HAProxy's admin socket: one command on stdin, its answer; a new worker's Pid once the master had its SIGUSR2
    "socat": 'read -r cmd || true\necho "socat $* <$cmd>" >> "$LOG"\n'
             'case "$cmd" in\n'
             '"show info")\n'
             '\t[ -e "$STATE/usr2" ] && [ ! -e "$STATE/stuck" ] && pid=' + NEW_PID + ' || pid=' + OLD_PID + '\n'
             '\tprintf "Name: HAProxy\\nVersion: 2.6.12\\nPid: %s\\nProcess_num: 1\\n\\n" "$pid";;\n'
             '"show servers state") [ ! -e "$STATE/no-state" ] && cat "$STATE/servers-state";;\n'
             '*) exit 1;;\n'
             'esac',
    "python3": 'echo "python3 $*" >> "$STATE/interpreters"; exit 1',
    "python": 'echo "python $*" >> "$STATE/interpreters"; exit 1',
}
MASTER = 'trap \'touch "$STATE/usr2"; exit 0\' USR2\ntouch "$STATE/master-ready"\nwhile :; do sleep 0.05; done\n'

CONFIG = """global
	master-worker
	stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
	server-state-file /var/lib/haproxy/server-state
defaults
	mode http
	load-server-state-from-file global
	default-server inter 500
frontend web
	bind :80
	default_backend app
backend app
	server moved 10.0.0.1:9081 check
	server same 10.0.0.2:8082 check
	server readdressed 10.0.0.9:8083 check
	server byname localhost:8084 check
backend other
	server same 10.0.0.7:8082 check
listen stats
	bind :7000
	stats enable
"""
HEADER = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"


def state_line(be_id: int, backend: str, srv_id: int, server: str, addr: str, port: int, admin: int = 0) -> str:
    """One `show servers state` data line (25 fields; srv_addr the 5th, srv_port the 19th)."""
    return f"{be_id} {backend} {srv_id} {server} {addr} 2 {admin} 1 1 42 6 3 4 6 0 0 0 - {port} - 0 0 - - 0"


KEPT = [
    state_line(3, "app", 2, "same", "10.0.0.2", 8082, admin=1),  # drained: must stay so
    state_line(3, "app", 4, "byname", "127.0.0.1", 8084, admin=1),  # the config names it: resolved
]
DROPPED = [
    state_line(3, "app", 1, "moved", "10.0.0.1", 8081, admin=1),  # the config moves it to port 9081
    state_line(3, "app", 3, "readdressed", "10.0.0.3", 8083),  # the config gives it 10.0.0.9
    state_line(3, "app", 5, "removed", "10.0.0.5", 8085),  # no longer in the config
    state_line(4, "other", 1, "same", "10.0.0.2", 8082),  # `other`'s `same` is 10.0.0.7 (the backend counts)
]
STATE = ["1", HEADER, KEPT[0], DROPPED[0], DROPPED[1], KEPT[1], DROPPED[2], DROPPED[3], ""]


def reference_same_servers(config: str, state: list[str]) -> list[str]:
    """What the script's earlier python3 same_servers kept: the semantics the shell version keeps."""
    servers = {}
    section = None
    for line in config.splitlines():
        words = line.split()
        if words and words[0] in ("global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers"):
            section = words[1] if len(words) > 1 and words[0] in ("backend", "listen") else None
        elif section and len(words) >= 3 and words[0] == "server":
            host, _, port = words[2].rpartition(":")
            try:
                servers[(section, words[1])] = (socket.gethostbyname(host), port)
            except OSError:
                pass
    out = []
    for line in state:
        f = line.split()
        if len(f) < 19 or line.startswith("#") or servers.get((f[1], f[3])) == (f[4], f[18]):
            out.append(line)
    return out


def awks() -> list[str]:
    """Debian's default awk is mawk; the script must not depend on gawk's extensions."""
    return [a for a in ("mawk", "gawk") if shutil.which(a)] or ["awk"]


class Director:
    """A director's reload in a temporary directory: the rendered script, fakes on PATH, a master process."""

    def __init__(self, tmp: Path, awk: str, reload_timeout_s: int = HAPROXY_RELOAD_TIMEOUT_S, cli_timeout_s: int = HAPROXY_CLI_TIMEOUT_S,
                 real_socat: bool = False):
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        for name, body in FAKES.items():
            if name == "socat" and real_socat:
                continue
            (self.bin / name).write_text(f"#!/bin/bash\n{body}\n")
            (self.bin / name).chmod(0o755)
        (self.bin / "awk").symlink_to(shutil.which(awk) or awk)
        self.log = tmp / "log"
        self.state = tmp / "server-state"
        self.socket = tmp / "admin.sock"
        (tmp / "haproxy.cfg").write_text(CONFIG)
        (tmp / "servers-state").write_text("\n".join(STATE) + "\n")
        self.state.write_text("an earlier reload's state\n")
        self.script = tmp / "hawc-reload.sh"
        self.script.write_text(render(
            TEMPLATE, dropin=HAPROXY_DROPIN, config=tmp / "haproxy.cfg", admin_socket=self.socket, server_state_file=self.state,
            pid_file=tmp / "haproxy.pid", reload_timeout_s=reload_timeout_s, cli_timeout_s=cli_timeout_s,
        ))
        self.script.chmod(0o755)
        self.env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LOG": str(self.log), "STATE": str(tmp)}
        self.master: subprocess.Popen | None = None

    def start_master(self) -> int:
        self.master = subprocess.Popen(["bash", "-c", MASTER], env=self.env)
        deadline = time.monotonic() + 30
        while not (self.tmp / "master-ready").exists():
            assert time.monotonic() < deadline and self.master.poll() is None, "the stand-in master did not start"
            time.sleep(0.02)
        return self.master.pid

    def stop_master(self) -> None:
        if self.master is not None and self.master.poll() is None:
            self.master.kill()
        if self.master is not None:
            self.master.wait(timeout=10)

    def reload(self, timeout: float = 120) -> tuple[int, str, str, float]:
        self.log.write_text("")
        pid = self.start_master()
        t0 = time.monotonic()
        out = subprocess.run([str(self.script), str(pid)], capture_output=True, text=True, env=self.env, timeout=timeout)
        return out.returncode, out.stdout, out.stderr, time.monotonic() - t0

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()

    def signalled(self) -> bool:
        return (self.tmp / "usr2").exists()

    def interpreters(self) -> str:
        f = self.tmp / "interpreters"
        return f.read_text() if f.exists() else ""


@pytest.fixture(params=awks())
def director(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Director]:
    d = Director(tmp_path, request.param)
    yield d
    d.stop_master()


def test_the_deployed_script_is_the_template_and_the_unit_covers_its_bounds(dev_plan: ClusterPlan) -> None:
    """The tests below run the template; the directors get it with the production bounds, and
    systemd's bound on ExecReload (TimeoutStartSec) covers them with room for `haproxy -c`."""
    expected = render(TEMPLATE, dropin=HAPROXY_DROPIN, config=HAPROXY_CFG, admin_socket=HAPROXY_ADMIN_SOCKET, server_state_file=HAPROXY_STATE,
                      pid_file=HAPROXY_PIDFILE, reload_timeout_s=HAPROXY_RELOAD_TIMEOUT_S, cli_timeout_s=HAPROXY_CLI_TIMEOUT_S)
    script_bound = HAPROXY_RELOAD_TIMEOUT_S + 3 * HAPROXY_CLI_TIMEOUT_S + 1  # the wait (and its last poll), `before`, the state
    assert HAPROXY_UNIT_TIMEOUT_S >= script_bound + 120
    for name in ("cluster1", "standby1", "standby2"):
        files = dev_plan.nodes[name].files
        assert files[HAPROXY_RELOAD].content == expected and files[HAPROXY_RELOAD].mode == 0o755
        dropin = str(files[HAPROXY_DROPIN].content)
        assert f"\nTimeoutStartSec={HAPROXY_UNIT_TIMEOUT_S}\n" in dropin and f"\nExecReload={HAPROXY_RELOAD} $MAINPID\n" in dropin
        assert "apt_install haproxy socat" in dev_plan.nodes[name].step("40-haproxy").script
    assert not [line for line in expected.splitlines() if "python" in line and not line.lstrip().startswith("#")]


def test_a_reload_keeps_the_state_of_exactly_the_servers_whose_address_and_port_are_unchanged(director: Director) -> None:
    code, out, err, _ = director.reload()
    assert code == 0, out + err
    assert f"worker {OLD_PID} -> {NEW_PID}" in out and director.signalled()
    assert director.state.read_text().splitlines() == ["1", HEADER, KEPT[0], KEPT[1], ""]
    assert director.state.read_text().splitlines() == reference_same_servers(CONFIG, STATE)
    assert not (director.tmp / "server-state.new").exists()
    calls = director.calls()
    assert calls[0] == f"haproxy -c -q -f {director.tmp / 'haproxy.cfg'}"
    assert f"socat -t {HAPROXY_CLI_TIMEOUT_S} - UNIX-CONNECT:{director.socket} <show servers state>" in calls
    assert director.interpreters() == ""


def test_the_reload_fails_within_its_bound_when_no_new_worker_answers(tmp_path: Path) -> None:
    director = Director(tmp_path, awks()[0], reload_timeout_s=2)
    (tmp_path / "stuck").touch()
    try:
        code, out, err, took = director.reload()
    finally:
        director.stop_master()
    assert code == 1 and "no new worker answered" in err and "within 2 s" in err, out + err
    assert director.signalled()
    # SECONDS counts whole seconds: the wait lasts between 1 and 2 s, plus a poll (0.5 s sleep, one socat)
    assert 1 <= took < 2 + 10, took
    polls = [c for c in director.calls() if c.endswith("<show info>")]
    assert 3 <= len(polls) <= 12, polls  # every 0.5 s, not every 0.1 s
    assert director.interpreters() == ""


def test_a_config_haproxy_refuses_changes_nothing(director: Director) -> None:
    (director.tmp / "refuse").touch()
    code, _, _, _ = director.reload()
    assert code != 0 and not director.signalled()
    assert director.state.read_text() == "an earlier reload's state\n"
    assert [c for c in director.calls() if c.startswith("socat")] == []


def test_without_the_servers_state_the_reload_still_happens(director: Director) -> None:
    (director.tmp / "no-state").touch()
    code, out, err, _ = director.reload()
    assert code == 0 and "reloading without the servers' state" in err and director.signalled(), out + err
    assert director.state.read_text() == "an earlier reload's state\n" and not (director.tmp / "server-state.new").exists()


# --------------------------------------------------------------------------- real socat


class AdminSocket(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """HAProxy's admin socket as the script meets it: one command a connection, the answer in
    pieces (slowly), then the connection closed; `silent`: reads the command, never answers."""

    daemon_threads = True

    def __init__(self, path: Path, tmp: Path, silent: bool = False):
        self.tmp = tmp
        self.silent = silent
        self.stop = threading.Event()
        super().__init__(str(path), AdminHandler)


class AdminHandler(socketserver.StreamRequestHandler):
    server: AdminSocket

    def handle(self) -> None:
        command = self.rfile.readline().decode().strip()
        if self.server.silent:
            self.server.stop.wait(30)
            return
        if command == "show info":
            pid = NEW_PID if (self.server.tmp / "usr2").exists() else OLD_PID
            answer = f"Name: HAProxy\nVersion: 2.6.12\nPid: {pid}\nProcess_num: 1\n\n"
        elif command == "show servers state":
            # big enough for several reads: padding lines (comments) the filter keeps
            answer = "\n".join(STATE[:2] + [f"# padding {i} " + "x" * 100 for i in range(600)] + STATE[2:]) + "\n"
        else:
            answer = "Unknown command.\n"
        data = answer.encode()
        for i in range(0, len(data), 16384):
            self.wfile.write(data[i:i + 16384])
            self.wfile.flush()
            time.sleep(0.05)


@pytest.fixture
def admin_socket(tmp_path: Path) -> Iterator[type[AdminSocket]]:
    servers: list[AdminSocket] = []

    def start(path: Path, tmp: Path, silent: bool = False) -> AdminSocket:
        s = AdminSocket(path, tmp, silent)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
        return s

    yield start  # type: ignore[misc]
    for s in servers:
        s.stop.set()
        s.shutdown()
        s.server_close()


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")
def test_with_the_real_socat_a_long_answer_is_read_whole(tmp_path: Path, admin_socket) -> None:
    director = Director(tmp_path, awks()[0], real_socat=True)
    admin_socket(director.socket, tmp_path)
    try:
        code, out, err, _ = director.reload()
    finally:
        director.stop_master()
    assert code == 0 and f"worker {OLD_PID} -> {NEW_PID}" in out, out + err
    lines = director.state.read_text().splitlines()
    assert len(lines) == 2 + 600 + 2 + 1 and lines[-3:] == [KEPT[0], KEPT[1], ""]
    assert director.interpreters() == ""


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat")
def test_with_the_real_socat_a_silent_admin_socket_costs_the_bound_not_more(tmp_path: Path, admin_socket) -> None:
    director = Director(tmp_path, awks()[0], reload_timeout_s=1, cli_timeout_s=1, real_socat=True)
    admin_socket(director.socket, tmp_path, silent=True)
    try:
        code, out, err, took = director.reload()
    finally:
        director.stop_master()
    assert code == 1 and "reloading without the servers' state" in err and "no new worker answered" in err, out + err
    assert director.signalled() and director.state.read_text() == "an earlier reload's state\n"
    # `before` 1 s, the state 1 s, the wait: at most 1 s plus its last poll (1.5 s)
    assert took < 1 + 1 + 1 + 1.5 + 6, took
