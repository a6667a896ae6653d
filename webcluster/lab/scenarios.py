"""The seed's functional tests (chapter 4.1) as scenarios on the running lab.

Each scenario puts the lab back as it found it, so they can run in any order; each
raises AssertionError with what it saw when the cluster misbehaves. `lab test` and
tests/test_lab.py run the same functions.
"""

from __future__ import annotations

import re
import time
from typing import Callable

from . import faults, gluster_tls_proof, https_proof, pacemaker, probe, reloads, replays, security, slow_clients
from ..loss import loss_budget
from ..waiting import wait_until
from .context import LabContext
from .state import HYPERVISOR

Scenario = Callable[[LabContext], list[str]]
SCENARIOS: dict[str, Scenario] = {}
FAILOVER_TIMEOUT = 10.0


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def _expect_serving(lab: LabContext, port: int, tries: int = 3) -> probe.Response:
    resp = probe.get(lab.url(port))
    for _ in range(tries - 1):
        if resp.ok:
            break
        time.sleep(0.2)
        resp = probe.get(lab.url(port))
    assert resp.ok, f"port {port} answered {resp.status} {resp.error}"
    return resp


def _assert_all_up(lab: LabContext) -> int:
    states, _ = lab.stats()
    bad = {k: v for k, v in states.items() if v != "UP"}
    assert not bad, f"servers not UP: {bad}"
    return len(states)


@scenario
def all_up(lab: LabContext) -> list[str]:
    """Master holds both VIPs; TCP spreads, HTTP sticks by cookie and forwards the client address; stats all UP."""
    master = lab.directors[0].name
    assert lab.holders(lab.vip) == [master] and lab.holders(lab.internal_vip) == [master], f"VIP holders: {lab.holders(lab.vip)}, {lab.holders(lab.internal_vip)}"
    notes = [f"{master} holds {lab.vip} and {lab.internal_vip}"]
    for svc in lab.services_by("tcp", "nfs") + lab.services_by("tcp", "gv0"):
        members = {c.name for _, c in lab.topo.service_members(svc)}
        seen = {probe.get(lab.url(svc.port)).container for _ in range(2 * len(members))}
        assert seen == members, f"{svc.name}: successive requests reached {sorted(seen)}, expected {sorted(members)}"
        body = probe.get(lab.url(svc.port)).body
        assert "X-Forwarded-For: desconocido" in body, f"{svc.name}: TCP mode must not add X-Forwarded-For"
        notes.append(f"{svc.name}: round robin over all {len(members)} containers")
    for svc in lab.services_by("http", "nfs") + lab.services_by("http", "gv0"):
        first = probe.get(lab.url(svc.port))
        cookie = first.cookie("SERVERID")
        assert cookie and cookie == first.container, f"{svc.name}: SERVERID cookie {cookie!r} for container {first.container!r}"
        again = {probe.get(lab.url(svc.port), cookie=f"SERVERID={cookie}").container for _ in range(8)}
        assert again == {first.container}, f"{svc.name}: with the cookie, requests went to {again}"
        assert f"X-Forwarded-For: {lab.state.client_address}" in first.body, f"{svc.name}: X-Forwarded-For missing"
        notes.append(f"{svc.name}: sticky to {cookie} via SERVERID, X-Forwarded-For {lab.state.client_address}")
    n = _assert_all_up(lab)
    _, desc = lab.stats()
    assert desc == lab.description(master), f"stats page names {desc!r}"
    stats_url = f"http://{lab.vip}:{lab.topo.cluster.haproxy.stats.port}{lab.topo.cluster.haproxy.stats.uri}"
    unauth = probe.get(stats_url, ns=HYPERVISOR)
    assert unauth.status == 401, f"stats page without credentials answered {unauth.status}"
    outsider = probe.get(stats_url, auth=lab.auth, timeout=2)
    assert outsider.status == 0, f"the client (not in adminNetworks) reached the stats page: {outsider.status}"
    notes.append(f"stats: {n} servers UP, names {desc!r}, 401 without credentials, no answer to the client")
    return notes


def _wait_holder(lab: LabContext, director: str) -> float:
    timeout = pacemaker.FAILOVER_TIMEOUT if lab.pacemaker else FAILOVER_TIMEOUT
    took = wait_until(f"{director} holds both VIPs alone", lambda: lab.vips_on(director) and lab.sole_holder(lab.vip) == director, timeout, 0.02)
    return took


def _rise_bound_s(lab: LabContext) -> float:
    """How long HAProxy needs to see a backend UP again after it lost it: one check at
    `downinter`, `rise - 1` more at `fastinter` (the intervals haproxy.cfg sets), plus 2 s of slack."""
    t = lab.topo.cluster.haproxy.tuning
    return (t.downinter_ms + (t.rise - 1) * t.fastinter_ms) / 1000 + 2


def _check_active(lab: LabContext, director: str, notes: list[str], took: float, rejoined: bool = False) -> None:
    """The new holder serves. A director that was cut off (`rejoined`) lost its backends while
    cut and preemption hands it the VIPs at once, so it may answer 503 until its health checks
    see the containers again: it must serve within HAProxy's rise time, which is noted."""
    port = lab.topo.cluster.haproxy.services[0].port
    serving_after = ""
    if rejoined:
        waited = wait_until(f"{director} serves on port {port}", lambda: probe.get(lab.url(port)).ok, _rise_bound_s(lab), 0.05)
        serving_after = f", serving {waited:.2f} s after that (backends re-checked)"
    resp = _expect_serving(lab, port)
    _, desc = lab.stats()
    assert desc == lab.description(director), f"stats page names {desc!r}, expected {lab.description(director)!r}"
    notes.append(f"{director} took both VIPs in {took:.2f} s{serving_after}, serves ({resp.container}), stats page says {desc!r}")


@scenario
def failover_chain(lab: LabContext) -> list[str]:
    """Master cut -> standby1; standby1 cut -> standby2; master back -> master (preemption)."""
    d = [x.name for x in lab.directors]
    notes: list[str] = []
    try:
        for i in range(len(d) - 1):
            lab.cut(d[i])
            _check_active(lab, d[i + 1], notes, _wait_holder(lab, d[i + 1]))
            assert not lab.holders(lab.vip) or lab.holders(lab.vip) == [d[i + 1]], f"two holders: {lab.holders(lab.vip)}"
        lab.restore(d[0])
        _check_active(lab, d[0], notes, _wait_holder(lab, d[0]), rejoined=True)
    finally:
        for name in d:
            lab.restore(name)
    _wait_holder(lab, d[0])
    return notes


@scenario
def haproxy_dies(lab: LabContext) -> list[str]:
    """HAProxy killed on the active director (the node stays up): the VIPs move, service continues."""
    master, standby = lab.directors[0].name, lab.directors[1].name
    notes: list[str] = []
    try:
        lab.kill(master, "haproxy")
        took = _wait_holder(lab, standby)
        _check_active(lab, standby, notes, took)
    finally:
        lab.restart(master, "haproxy")
    took = _wait_holder(lab, master)
    notes.append(f"HAProxy restarted on {master}: VIPs back in {took:.2f} s")
    return notes


@scenario
def config_reloads(lab: LabContext) -> list[str]:
    """Config changes applied as the directors' steps apply them (issue #15): HAProxy reloaded on
    every director, standbys first, under HTTP and TCP load: 0 failed, drain/maint kept, no VIP move;
    keepalived reloaded and dnsmasq restarted on the master: 0 failed, no VIP move."""
    return reloads.config_reloads(lab)


def _under_load(lab: LabContext, port: int, action: Callable[[], None], requests: int = 3000) -> dict:
    proc = lab.start_load(lab.url(port, "/index.php"), requests, concurrency=LOAD_CONCURRENCY, duration=60)
    time.sleep(0.3)
    action()
    return lab.finish_load(proc)


def _wait_states(lab: LabContext, servers: list[str], state: str, timeout: float = 10) -> float:
    return wait_until(f"{servers} {state}", lambda: all(lab.server_states(s) == {state} for s in servers), timeout, 0.2)


LOAD_CONCURRENCY = 10


def _nfs_services(lab: LabContext):
    return lab.services_by("http", "nfs") + lab.services_by("tcp", "nfs")


def _check_stop_losses(svc, stopped: list[str], result: dict, aborts: dict[str, int]) -> None:
    """A graceful stop costs nothing in HTTP mode (HAProxy replays the GETs). In TCP mode a stopped
    Apache resets the connections it had accepted but not served when its last child exits (they
    wait in its listen queue while busy children finish: more of them the slower its requests), and
    a layer-4 proxy cannot replay them: every lost request must be one of those, a transfer the
    stopped server itself aborted as the active HAProxy counts it (`srv_abrt`), none elsewhere."""
    lost = f"{svc.name}: {result['failed']} requests failed: {result['failures']}; aborted by servers: {aborts}"
    if svc.mode.value == "http":
        assert result["failed"] <= loss_budget("http", LOAD_CONCURRENCY), lost
        return
    assert not {s: n for s, n in aborts.items() if n and s not in stopped}, lost
    assert result["failed"] <= sum(aborts.get(s, 0) for s in stopped), lost


@scenario
def containers_stopped(lab: LabContext) -> list[str]:
    """One, then two containers stopped (`docker stop`: php:apache's SIGWINCH graceful stop): DOWN,
    traffic continues; in TCP mode only the stopped servers' own resets are lost."""
    notes = []
    for svc in _nfs_services(lab):
        victims = [(b.name, c.name) for b, c in lab.topo.service_members(svc)][:2]
        backend = lab.topo.backend_section(svc)
        try:
            for count in (1, 2):
                chosen = [c for _, c in victims[:count]]
                before = lab.server_aborts(backend)
                result = _under_load(lab, svc.port, lambda: [faults.stop(lab, c) for c in chosen])
                took = _wait_states(lab, chosen, "DOWN")
                aborts = {s: n - before.get(s, 0) for s, n in lab.server_aborts(backend).items()}
                _check_stop_losses(svc, chosen, result, aborts)
                reset = f", each reset by a stopped server ({sum(aborts.get(c, 0) for c in chosen)} aborts counted)" if result["failed"] else ""
                notes.append(f"{svc.name}, {count} stopped: DOWN {took:.1f} s after the load ended, {result['ok']}/{result['requests']} OK ({result['failed']} lost{reset})")
                for c in chosen:
                    faults.start(lab, c)
                _wait_states(lab, chosen, "UP")
        finally:
            for h, c in victims:
                if not _alive(lab, h, c):
                    faults.start(lab, c)
    return notes


def _alive(lab: LabContext, host: str, container: str) -> bool:
    from . import apache, processes

    return processes.alive(lab.state, host, apache.role(container))


@scenario
def docker_host_cut(lab: LabContext) -> list[str]:
    """A whole Docker host unplugged: its containers DOWN; every new request is served.

    A request already forwarded to the vanished host gets no answer: a layer-4 proxy cannot
    replay it, and in HTTP mode it ends in a response timeout, which HAProxy does not replay
    (the server may still have run it; issue #13). So at most the requests in flight on that
    host fail (bounded by the client's concurrency); every new connection is redispatched.
    """
    host = lab.topo.cluster.backends[-1].name
    mine = lab.containers_of(host)
    notes = []
    try:
        for svc in _nfs_services(lab):
            result = _under_load(lab, svc.port, lambda: lab.cut(host))
            took = _wait_states(lab, mine, "DOWN")
            assert result["failed"] <= loss_budget(svc.mode.value, LOAD_CONCURRENCY, silent=True), f"{svc.name}: {result['failed']} requests failed: {result['failures']}"
            notes.append(f"{svc.name}: {host} cut, its {len(mine)} containers DOWN within {took:.1f} s more, {result['ok']}/{result['requests']} OK ({result['failed']} in flight lost), longest gap {result['longest_gap_s']:.2f} s")
            lab.restore(host)
            _wait_states(lab, mine, "UP", timeout=15)
    finally:
        lab.restore(host)
    return notes


@scenario
def pages(lab: LabContext) -> list[str]:
    """pi.php?n=100000 gives pi and the serving address; imagen.html and its image are served."""
    svc = lab.services_by("tcp", "nfs")[0]
    pi = probe.get(lab.url(svc.port, "/pi.php?n=100000"))
    assert pi.ok and "es igual a 3.141593" in pi.body, f"pi.php: {pi.status} {pi.body[:200]}"
    m = re.search(r"El servidor es ([0-9.]+) \(([^)]*)\)", pi.body)
    assert m, "pi.php does not name the serving address"
    page = probe.get(lab.url(svc.port, "/imagen.html"))
    assert page.ok and 'src="imagen.jpg"' in page.body, f"imagen.html: {page.status}"
    img = probe.get(lab.url(svc.port, "/imagen.jpg"))
    assert img.ok and img.headers.get("content-type") == "image/jpeg", f"imagen.jpg: {img.status} {img.headers.get('content-type')}"
    index1 = probe.get(lab.url(svc.port, "/index1.php"))
    assert index1.ok and 'http-equiv="refresh"' in index1.body
    return [f"pi.php: 3.141593 from {m.group(1)} ({m.group(2)})", f"imagen.jpg: {img.headers.get('content-length')} bytes", "index1.php reloads itself"]


@scenario
def gluster_server_cut(lab: LabContext) -> list[str]:
    """Seed test 4.1.4: a Gluster server cut off; Gluster services keep serving, gv0 takes writes, heals on return."""
    from .gluster_checks import gluster_server_cut as run

    return run(lab)


# The secure-by-default proofs (security.py), after the seed's tests.
for _proof in security.PROOFS + gluster_tls_proof.PROOFS + https_proof.PROOFS + replays.PROOFS + slow_clients.PROOFS:
    scenario(_proof)


def main(only: list[str] | None = None) -> int:
    lab = LabContext.current()
    names = only or list(SCENARIOS)
    rows = []
    for name in names:
        start = time.monotonic()
        try:
            notes = SCENARIOS[name](lab)
            rows.append((name, "PASS", time.monotonic() - start, notes))
        except AssertionError as exc:
            rows.append((name, "FAIL", time.monotonic() - start, [str(exc)]))
    width = max(len(r[0]) for r in rows)
    print(f"{'scenario':<{width}}  result  time")
    for name, result, took, notes in rows:
        print(f"{name:<{width}}  {result:<6} {took:5.1f}s")
        for n in notes:
            print(f"{'':<{width}}    - {n}")
    failed = sum(r[1] == "FAIL" for r in rows)
    print(f"{len(rows) - failed} passed, {failed} failed")
    return 1 if failed else 0


# Issue #17: a director that cannot serve gives up the VIPs; faults that must move nothing (lab/serving_faults.py).
from .serving_faults import FAULTS as _SERVING_FAULTS, scenario_for as _serving_scenario  # noqa: E402

for _name in _SERVING_FAULTS:
    scenario(_serving_scenario(_name))
