"""Issue #15, watching a change: the e2e report's account of what each director's HAProxy said
of every server while a change ran. Against a real HAProxy on loopback with the rendered stats
listener: a server drained and put in maintenance through the admin socket, one that never
listens, as the stats CSV of HAProxy 2.6 reports them."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from conftest import free_port, haproxy_and_a_server
from test_metrics import stats_listener_on
from webcluster.e2e import changeplot
from webcluster.e2e.checks import Failure
from webcluster.e2e.serverwatch import Sample, ServerWatch, not_up_counts, report_lines, states_from_csv, transitions
from webcluster.model import StackConfig
from webcluster.waiting import wait_until


class Director(NamedTuple):
    url: str
    auth: str
    admin: Path


@pytest.fixture
def director(tmp_path: Path) -> Iterator[Director]:
    """A real HAProxy: the rendered stats listener on loopback, an admin socket, backend `web` with
    server `up` (listening) and `gone` (nothing listens)."""
    listener = haproxy_and_a_server()
    port = free_port()
    config = StackConfig()
    rendered = stats_listener_on(config, port)
    password = rendered.split("stats auth ", 1)[1].split()[0].split(":", 1)[1]
    admin = tmp_path / "admin.sock"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        f"global\n\tstats socket {admin} level admin\n" + rendered
        + f"backend web\n\tserver up 127.0.0.1:{listener.getsockname()[1]} check inter 200\n\tserver gone 127.0.0.1:{free_port()} check inter 200 fall 1\n"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("HAProxy's stats port", lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10)
        yield Director(f"http://127.0.0.1:{port}{config.cluster.haproxy.stats.uri}", f"{config.cluster.haproxy.stats.user}:{password}", admin)
    finally:
        proc.kill()
        proc.wait(10)
        listener.close()


def fetch(url: str, timeout: float = 5, auth: str | None = None) -> tuple[bool, str]:
    """What checks.http_get does from the client namespace, on loopback."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return True, resp.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        return False, str(exc)


def admin(d: Director, command: str) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(d.admin))
        s.sendall(command.encode() + b"\n")
        s.recv(4096)


def states(d: Director) -> dict[str, str]:
    ok, body = fetch(d.url + ";csv", auth=d.auth)
    assert ok, body
    return states_from_csv(body)


def test_states_from_haproxy_s_own_csv(director: Director) -> None:
    """UP and DOWN from the checks, DRAIN and MAINT from the runtime API, keyed backend/server;
    no FRONTEND/BACKEND line counts as a server."""
    wait_until("checks settled", lambda: states(director) == {"web/up": "UP", "web/gone": "DOWN"}, 10, 0.2)
    admin(director, "set server web/up state drain")
    assert states(director)["web/up"] == "DRAIN"
    admin(director, "set server web/up state maint")
    assert states(director)["web/up"] == "MAINT"


def test_the_watch_records_a_drain_and_its_end_per_director(director: Director) -> None:
    """Looks at two 'directors' (the same HAProxy) and one that never answers, while a server is
    drained and put back: the transitions are the drain and its end, once per director that
    answered; the silent one counts unanswered looks and no transition."""
    wait_until("checks settled", lambda: states(director) == {"web/up": "UP", "web/gone": "DOWN"}, 10, 0.2)
    watch = ServerWatch({"d1": director.url, "d2": director.url, "silent": f"http://127.0.0.1:{free_port()}/"}, director.auth, fetch, poll_s=0.1)
    t0 = time.time()

    def seen_by_both(state: str, after: float) -> bool:
        return {s.director for s in list(watch.samples) if s.at > after and s.states and s.states["web/up"] == state} == {"d1", "d2"}

    try:
        wait_until("a look at both directors", lambda: seen_by_both("UP", t0), 10, 0.05)
        drained = time.time()
        admin(director, "set server web/up state drain")
        wait_until("the drain seen on both", lambda: seen_by_both("DRAIN", drained), 10, 0.05)
        ready = time.time()
        admin(director, "set server web/up state ready")
        wait_until("the end of the drain seen on both", lambda: seen_by_both("UP", ready), 10, 0.05)
    finally:
        samples = watch.stop()
    moves = [(t.director, t.server, t.before, t.after) for t in transitions(samples)]
    assert sorted(moves) == [("d1", "web/up", "DRAIN", "UP"), ("d1", "web/up", "UP", "DRAIN"), ("d2", "web/up", "DRAIN", "UP"), ("d2", "web/up", "UP", "DRAIN")]
    assert [t.after for t in transitions(samples) if t.director == "d1"] == ["DRAIN", "UP"]
    assert not_up_counts(samples)["d1"] == {"DRAIN": 1, "DOWN": 1}
    lines = report_lines(samples, t0)
    assert any(line.startswith("  servers on silent") and line.endswith(f"{sum(1 for s in samples if s.director == 'silent')} unanswered") for line in lines)
    assert any("d1: web/up UP -> DRAIN" in line for line in lines)


def test_transitions_ignore_first_looks_and_unanswered_looks() -> None:
    samples = [
        Sample(1, "d", {"b/s": "UP"}),
        Sample(2, "d", None),  # no answer: no change
        Sample(3, "d", {"b/s": "UP", "b/new": "DOWN"}),  # a server first seen: its baseline
        Sample(4, "d", {"b/s": "MAINT", "b/new": "UP"}),
    ]
    assert [(t.at, t.server, t.before, t.after) for t in transitions(samples)] == [(4, "b/new", "DOWN", "UP"), (4, "b/s", "UP", "MAINT")]


def test_report_caps_the_transitions_and_says_how_many_more(monkeypatch) -> None:
    from webcluster.e2e import serverwatch

    monkeypatch.setattr(serverwatch, "REPORT_TRANSITIONS", 2)
    samples = [Sample(i, "d", {"b/s": "UP" if i % 2 else "DRAIN"}) for i in range(6)]
    lines = report_lines(samples, 0)
    assert lines[0] == "  servers on d (at most at once): 1 DRAIN; 6 looks, 0 unanswered"
    assert len([line for line in lines if " -> " in line]) == 2 and lines[-1] == "    ... 3 more (the plot shows them all)"
    assert report_lines([], 0) == []


def test_the_plot_draws_every_director(tmp_path: Path) -> None:
    samples = [Sample(10 + i, d, {"b/s": "DRAIN" if i == 2 else "UP", "b/t": "UP"} if not (d == "d2" and i == 1) else None) for i in range(5) for d in ("d1", "d2")]
    out = tmp_path / "p.png"
    changeplot.plot("content", samples, [Failure(12, 13, "http", "x")], [13.5], 10, out)
    assert out.read_bytes().startswith(b"\x89PNG")
    xs, counts = changeplot.series(samples, "d1", 10)
    assert xs == [0, 1, 2, 3, 4] and counts == {"UP": [2, 2, 1, 2, 2], "DRAIN": [0, 0, 1, 0, 0]}
    assert changeplot.series(samples, "d2", 10)[0] == [0, 2, 3, 4]
