"""Issue #17 without a lab: the weight rule, its validation, and the rendered backend check run
against a real HAProxy on loopback (its stats socket in a temporary directory)."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import free_port, haproxy_and_a_server
from webcluster.model import StackConfig
from webcluster.render import render_cluster, serving
from webcluster.render.director import service_views
from webcluster.render.templating import render
from webcluster.topology import Topology
from webcluster.validation import check
from webcluster.waiting import wait_until


def config(ha_stack: str = "keepalived", priorities: tuple[int, ...] = (150, 100, 90)) -> StackConfig:
    seed = StackConfig().cluster.directors
    directors = [d.model_dump(by_alias=True, mode="json") | {"priority": p} for d, p in zip(seed, priorities)]
    return StackConfig.model_validate({"haStack": ha_stack, "cluster": {"directors": directors}})


def test_a_failing_director_ranks_below_every_healthy_one_and_equal_failures_keep_the_order() -> None:
    directors = config().cluster.directors
    w = serving.weight(directors)
    assert w == 61
    prios = {d.name: d.priority for d in directors}
    failing = {n: max(1, p - w) for n, p in prios.items()}
    assert failing == {"cluster1": 89, "standby1": 39, "standby2": 29}
    assert all(failing[a] < prios[b] for a in prios for b in prios)  # any failing < any healthy
    assert sorted(failing, key=failing.get) == sorted(prios, key=prios.get)  # same order when all fail


@pytest.mark.parametrize(
    "priorities, bad",
    [((150, 100, 90), None), ((200, 100), None), ((254, 200, 60), None), ((200, 100, 90), "cluster.directors[1].priority")],
)
def test_validate_rejects_priorities_keepalived_cannot_keep_in_order(priorities: tuple[int, ...], bad: str | None) -> None:
    errors = [p for p in check(config(priorities=priorities)) if p.severity == "error"]
    assert [p.path for p in errors] == ([bad] if bad else [])
    if bad:
        assert "backend-check weight 111" in errors[0].message
        assert not [p for p in check(config("pacemaker", priorities)) if p.severity == "error"]  # scores have no floor


def _health_frontend(plan) -> str:
    cfg = str(plan.nodes["cluster1"].files["/etc/haproxy/haproxy.cfg"].content)
    return cfg[cfg.index("frontend health"):]


def test_keepalived_and_pacemaker_ask_haproxy_the_same_question() -> None:
    """Both stacks read HAProxy's /backends answer on the health port; it names every backend."""
    for stack, path, head in (("keepalived", serving.CHECK_BACKENDS, "#!/bin/bash\n"), ("pacemaker", serving.BACKENDS_UP, "#!/usr/bin/python3 -IS\n")):
        cfg = config(stack)
        plan = render_cluster(cfg)
        port = cfg.cluster.haproxy.tuning.health_port
        for d in ("cluster1", "standby1", "standby2"):
            program = plan.nodes[d].files[path]
            assert program.mode == 0o755 and str(program.content).startswith(head)
            assert str(port) in str(program.content) and serving.SERVING_PATH in str(program.content)
            assert any(path in s.files for s in plan.nodes[d].steps), f"{stack}: no step installs it on {d}"
        health = _health_frontend(plan)
        backends = {s.backend for s in service_views(Topology(cfg))}
        assert set(re.findall(r"nbsrv\(([^)]+)\) gt 0", health)) == backends and f"bind 127.0.0.1:{port}" in health
    assert serving.CHECK_BACKENDS in str(render_cluster(config()).nodes["cluster1"].files["/etc/keepalived/keepalived.conf"].content)


# --------------------------------------------------------------------------- the check program against a real HAProxy



def health_frontend_on(port: int, backends: list[str]) -> str:
    """The rendered health frontend, bound to `port` and asking about this test's own `backends`."""
    cfg = config()
    rendered = _health_frontend(render_cluster(cfg)).replace(f"127.0.0.1:{cfg.cluster.haproxy.tuning.health_port}", f"127.0.0.1:{port}")
    return re.sub(r"( \{ nbsrv\([^)]+\) gt 0 \})+", "".join(f" {{ nbsrv({b}) gt 0 }}" for b in backends), rendered)


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[dict[str, Path], int, int]]:
    """HAProxy on loopback: backend `alive` (a listening port) and backend `gone` (a closed one),
    and the rendered health frontend asking about those two. Yields ({check: program}, gone's port, health port)."""
    listener = haproxy_and_a_server()
    gone, health = free_port(), free_port()
    rendered = health_frontend_on(health, ["alive", "gone"])
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "defaults\n\tmode tcp\n\ttimeout connect 200ms\n\ttimeout client 1s\n\ttimeout server 1s\n"
        "\tdefault-server inter 100 fall 1 rise 1\n"
        f"backend alive\n\tserver a1 127.0.0.1:{listener.getsockname()[1]} check\n\tserver a2 127.0.0.1:{free_port()} check\n"
        f"backend gone\n\tserver g1 127.0.0.1:{gone} check\n" + rendered
    )
    args = {"port": health, "uri": serving.SERVING_PATH, "timeout_s": 1.0}
    programs = {}
    for name, template, extra in (("check_backends.sh", "director/check_backends.sh.j2", {}), ("backends-up", "director/backends-up.py.j2", {"hold_s": 3, "nics": ["lo"]})):
        programs[name] = tmp_path / name
        programs[name].write_text(render(template, **args, **extra))
        programs[name].chmod(0o755)
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("HAProxy's health port", lambda: socket.socket().connect_ex(("127.0.0.1", health)) == 0, 10)
        yield programs, gone, health
    finally:
        proc.kill()
        proc.wait(10)
        listener.close()


def run(program: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(program)], capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("check", ["check_backends.sh", "backends-up"])
def test_the_check_fails_while_a_backend_has_no_server_up_and_passes_once_one_is(haproxy, check: str) -> None:
    programs, gone, _ = haproxy
    program = programs[check]
    time.sleep(0.5)  # a few health checks: a1 UP, a2 and g1 DOWN
    assert run(program).returncode == 1, "backend `gone` has no server UP"
    with socket.socket() as back:  # g1's port answers again: one UP server per backend is enough (a2 stays DOWN)
        back.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        back.bind(("127.0.0.1", gone))
        back.listen(64)
        wait_until("the check passes", lambda: run(program).returncode == 0, 10, 0.1)


# --------------------------------------------------------------------------- the check programs against stub servers


class StubHealth:
    """A loopback server standing in for HAProxy's health frontend: `answer` is the status line it
    sends to each request (then it closes), or None to accept and never answer. Records each
    request's first line. Stopped by stop(), which closes every socket."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            self._held.append(conn)
            conn.settimeout(2)
            request = b""
            try:
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(1024)
                    if not chunk:
                        break
                    request += chunk
            except OSError:
                pass
            self.requests.append(request.split(b"\r\n", 1)[0])
            if self.answer is not None:
                try:
                    conn.sendall(f"{self.answer}\r\nContent-Length: 0\r\n\r\n".encode())
                except OSError:
                    pass
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture(scope="module")
def rendered_checks(tmp_path_factory) -> dict[str, str]:
    """The programs as rendered for cluster1: keepalived's check_backends.sh, Pacemaker's backends-up."""
    return {
        "check_backends.sh": str(render_cluster(config()).nodes["cluster1"].files[serving.CHECK_BACKENDS].content),
        "backends-up": str(render_cluster(config("pacemaker")).nodes["cluster1"].files[serving.BACKENDS_UP].content),
    }


def on_port(rendered: dict[str, str], check: str, port: int, directory: Path) -> Path:
    """The rendered program asking 127.0.0.1:`port` instead of the health port (and, for backends-up,
    about NIC `lo`, which always has carrier)."""
    health = config().cluster.haproxy.tuning.health_port
    text = rendered[check]
    for old, new in ((f"/dev/tcp/127.0.0.1/{health}\"", f"/dev/tcp/127.0.0.1/{port}\""), (f"PORT = {health}\n", f"PORT = {port}\n"), ('NICS = ["enp0s3", "enp0s8"]', 'NICS = ["lo"]')):
        text = text.replace(old, new)
    assert str(health) not in text, "the health port was not rewritten"
    program = directory / f"{check}-{port}"
    program.write_text(text)
    program.chmod(0o755)
    return program


def run_check(check: str, program: Path) -> tuple[int, float]:
    """(exit status, seconds): check_backends.sh under bash, as keepalived runs it; backends-up as is."""
    start = time.monotonic()
    argv = ["bash", str(program)] if check == "check_backends.sh" else [str(program)]
    done = subprocess.run(argv, capture_output=True, timeout=10)
    return done.returncode, time.monotonic() - start


ANSWERS = {
    "200": ("HTTP/1.0 200 OK", 0),  # every backend has a server UP
    "503": ("HTTP/1.0 503 Service Unavailable", 1),  # a backend has none: the one failure
    "silent": (None, 0),  # accepts, never answers (a starved HAProxy): unknown, passes
}


@pytest.mark.parametrize("check", ["check_backends.sh", "backends-up"])
@pytest.mark.parametrize("answer", list(ANSWERS))
def test_the_check_fails_only_on_an_explicit_non_200_answer(rendered_checks, check: str, answer: str, tmp_path: Path) -> None:
    """Only HAProxy's 503 fails the check; a HAProxy that does not answer within the timeout is
    unknown and passes (a starved director that kept serving lost the VIP on that, 2 December),
    and the check gives up after about the timeout."""
    status_line, expected = ANSWERS[answer]
    server = StubHealth(status_line)
    try:
        status, took = run_check(check, on_port(rendered_checks, check, server.port, tmp_path))
    finally:
        server.stop()
    assert server.requests == [f"GET {serving.SERVING_PATH} HTTP/1.0".encode()], "the check asked the stub once"
    assert status == expected, f"{answer}: exit {status}, {took:.2f} s"
    if answer == "silent":
        assert serving.ANSWER_TIMEOUT_S * 0.9 <= took < serving.ANSWER_TIMEOUT_S + 1, f"waited {took:.2f} s"


@pytest.mark.parametrize("check", ["check_backends.sh", "backends-up"])
def test_the_check_passes_when_nothing_listens(rendered_checks, check: str, tmp_path: Path) -> None:
    """A refused connection is a dead HAProxy: chk_haproxy's (or Pacemaker's haproxy monitor's) to
    judge, not a backend this director cannot reach."""
    status, took = run_check(check, on_port(rendered_checks, check, free_port(), tmp_path))
    assert status == 0 and took < serving.ANSWER_TIMEOUT_S + 1, (status, took)


def test_the_pacemaker_attribute_stays_1_when_haproxy_does_not_answer(rendered_checks, tmp_path: Path) -> None:
    """backends-up writes 0 only on HAProxy's 503, not when the answer times out or the port is closed."""
    for answer, value in (("silent", "1"), ("503", "0"), ("200", "1")):
        server = StubHealth(ANSWERS[answer][0])
        try:
            module = _load(on_port(rendered_checks, "backends-up", server.port, tmp_path), ["lo"])
            assert module.attribute_update(7) == (value, 7), answer
        finally:
            server.stop()
    closed = _load(on_port(rendered_checks, "backends-up", free_port(), tmp_path), ["lo"])
    assert closed.attribute_update(7) == ("1", 7), "nothing listening"


def _load(program: Path, nics: list[str]):
    """The rendered program as a module, its NIC list replaced (`lo` always has carrier)."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    src = program.parent / f"{program.name}-{'-'.join(nics)}.py"
    src.write_text(program.read_text().replace('NICS = ["lo"]', f"NICS = {nics!r}"))
    loader = SourceFileLoader(src.stem.replace("-", "_"), str(src))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_pacemaker_attribute_is_dampened_unless_a_vip_nic_lost_its_link(haproxy) -> None:
    """Backend visibility is written after the dampening (directors noticing one outage a moment
    apart compare together); a lost link at once, so the VIPs cannot come back with the link
    before HAProxy sees the backends again."""
    programs, gone, _ = haproxy
    program = programs["backends-up"]
    time.sleep(0.5)
    linked = _load(program, ["lo"])
    assert linked.attribute_update(7) == ("0", 7), "backend `gone` has no server UP: 0, dampened"
    with socket.socket() as back:
        back.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        back.bind(("127.0.0.1", gone))
        back.listen(64)
        wait_until("every backend has a server UP", lambda: linked.attribute_update(7) == ("1", 7), 10, 0.1)
        unlinked = _load(program, ["lo", "hawc-no-such-nic"])
        assert unlinked.attribute_update(7) == ("0", 0), "a VIP NIC missing: 0 at once, whatever HAProxy sees"
        subprocess.run(["ip", "link", "add", "hwt-vip0", "type", "veth", "peer", "name", "hwt-vip1"], check=True, timeout=10)
        try:
            cabled = _load(program, ["lo", "hwt-vip0"])
            subprocess.run(["ip", "link", "set", "hwt-vip0", "up"], check=True, timeout=10)
            assert cabled.attribute_update(7) == ("0", 0), "up but no carrier (the other end is down): 0 at once"
            subprocess.run(["ip", "link", "set", "hwt-vip1", "up"], check=True, timeout=10)
            wait_until("carrier on hwt-vip0", lambda: cabled.attribute_update(7) == ("1", 7), 5, 0.1)
        finally:
            subprocess.run(["ip", "link", "del", "hwt-vip0"], check=False, timeout=10)


def test_the_health_frontend_logs_only_what_fails(tmp_path: Path) -> None:
    """Polled every second by every director's check: a 200 leaves no log line (an emulated director's
    journal wrote one per poll), a 503 (a backend lost its last server) does."""
    listener = haproxy_and_a_server()
    health = free_port()
    rendered = health_frontend_on(health, ["web"])
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(
        "global\n\tlog stdout format raw local0\n"
        "defaults\n\tmode http\n\tlog global\n\toption httplog\n\ttimeout connect 200ms\n\ttimeout client 1s\n\ttimeout server 1s\n"
        f"\tdefault-server inter 100 fall 1 rise 1\nbackend web\n\tserver w1 127.0.0.1:{listener.getsockname()[1]} check\n" + rendered
    )
    log = tmp_path / "haproxy.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{health}{serving.SERVING_PATH}"

    def status() -> int:
        try:
            return urllib.request.urlopen(url, timeout=2).status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    try:
        wait_until("a 200 from the health frontend", lambda: status() == 200, 10, 0.1)
        for _ in range(5):
            assert status() == 200
        listener.close()
        wait_until("a 503 once the server is DOWN", lambda: status() == 503, 10, 0.1)
        time.sleep(0.3)
    finally:
        proc.kill()
        proc.wait(10)
        listener.close()
    lines = [l for l in log.read_text().splitlines() if serving.SERVING_PATH in l]
    assert lines and all(" 503 " in l for l in lines), lines
