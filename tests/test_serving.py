"""Issue #17 without a lab: the weight rule, its validation, and the rendered backend check run
against a real HAProxy on loopback (its stats socket in a temporary directory)."""

from __future__ import annotations

import re
import socket
import subprocess
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


@pytest.mark.parametrize("check", ["check_backends.sh", "backends-up"])
def test_the_check_fails_fast_when_haproxy_does_not_answer(haproxy, check: str, tmp_path: Path) -> None:
    programs, _, health = haproxy
    with socket.socket() as silent:  # accepts, never answers: the wait is bounded by the timeout
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        mute = tmp_path / f"mute-{check}"
        mute.write_text(programs[check].read_text().replace(str(health), str(silent.getsockname()[1])))
        mute.chmod(0o755)
        start = time.monotonic()
        assert run(mute).returncode == 1
        assert time.monotonic() - start < 3
    missing = tmp_path / f"missing-{check}"
    missing.write_text(programs[check].read_text().replace(str(health), str(free_port())))
    missing.chmod(0o755)
    assert run(missing).returncode == 1


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
