"""Config reloads on the running lab, done the way the directors' rendered steps do them (issue #15).

- HAProxy: the rendered reload script (what `systemctl reload haproxy` runs through the step's
  drop-in), run inside the director; it reads the master's PID from the pid file the lab's
  `haproxy -Ws -p` writes, where systemd passes $MAINPID.
- keepalived: SIGHUP to its main process only (Debian's `ExecReload=/bin/kill -HUP $MAINPID`).
- dnsmasq: a restart, as its step does.

The order across the directors: standbys first (lowest priority first), the master (the VIP
holder) last. `pulumi up` runs the directors' steps side by side (docs/deviations.md).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..render.director import HAPROXY_ADMIN_SOCKET, HAPROXY_RELOAD, haproxy_roll_order
from . import processes
from .context import LabContext
from .state import sandbox

STATUS_FIELD = 17  # `show stat` CSV: pxname, svname, ... status (UP, DOWN, DRAIN, MAINT, ...)


class ReloadError(RuntimeError):
    pass


def rolling_order(lab: LabContext) -> list[str]:
    """The directors, lowest priority first: the VIP holder (the master) last (the rendered roll's order)."""
    return [d.name for d in haproxy_roll_order(lab.topo)]


def reload_haproxy(director: str, timeout: float = 60) -> str:
    """The rendered reload script inside the director; what it printed."""
    proc = sandbox(director).run([HAPROXY_RELOAD], check=False, timeout=timeout)
    if proc.returncode != 0:
        raise ReloadError(f"{director}: {HAPROXY_RELOAD} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout.strip()


def reload_keepalived(lab: LabContext, director: str) -> None:
    proc = lab.state.find(director, "keepalived")
    if proc is None or not processes.alive(lab.state, director, "keepalived"):
        raise ReloadError(f"keepalived is not running on {director}")
    os.kill(proc.pid, signal.SIGHUP)


def restart_dnsmasq(lab: LabContext, director: str) -> None:
    processes.restart(lab.state, director, "dnsmasq")


def admin(director: str, command: str, timeout: float = 5) -> str:
    """One command on the director's HAProxy admin socket (the runtime API), its answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sandbox(director).path(HAPROXY_ADMIN_SOCKET)))
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode()


def server_status(director: str) -> dict[tuple[str, str], str]:
    """(backend, server) -> status, as this director's HAProxy sees it (UP, DOWN, DRAIN, MAINT)."""
    rows = {}
    for line in admin(director, "show stat").splitlines():
        f = line.split(",")
        if len(f) > STATUS_FIELD and not line.startswith("#") and f[1] not in ("FRONTEND", "BACKEND"):
            rows[(f[0], f[1])] = f[STATUS_FIELD]
    return rows


def set_server_state(director: str, backend: str, server: str, state: str) -> None:
    """`set server B/S state ready|drain|maint` on one director (each HAProxy keeps its own)."""
    answer = admin(director, f"set server {backend}/{server} state {state}").strip()
    if answer:
        raise ReloadError(f"{director}: set server {backend}/{server} state {state}: {answer}")


@contextmanager
def vip_holders(lab: LabContext, interval: float = 0.1) -> Iterator[list[tuple[str, ...]]]:
    """Who holds the external VIP, sampled every `interval` s while the block runs (bounded by it)."""
    seen: list[tuple[str, ...]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(tuple(lab.holders(lab.vip)))
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join(timeout=10)
        seen.append(tuple(lab.holders(lab.vip)))


def under_load(lab: LabContext, port: int, action: Callable[[], None], tail: float = 2.0, limit: float = 300.0, concurrency: int = 10) -> dict:
    """`action` while the client sends requests to the VIP's `port` (one new connection each),
    from 0.5 s before it until `tail` s after it ended (SIGTERM ends the load; `limit` bounds it):
    the load's counts plus `action_s`, the action's end after the load's start. A fixed-length load
    once ended before the reloads did on a busy machine (18 s for three), and proved nothing of
    their end."""
    proc = lab.start_load(lab.url(port, "/index.php"), requests=1_000_000, concurrency=concurrency, duration=limit)
    started = time.monotonic()
    time.sleep(0.5)
    action()
    action_s = time.monotonic() - started
    time.sleep(tail)
    proc.send_signal(signal.SIGTERM)
    result = lab.finish_load(proc, timeout=60)
    if action_s > result["elapsed_s"]:
        raise ReloadError(f"the action took {action_s:.1f} s, longer than the load ({result['elapsed_s']} s, limit {limit} s)")
    return {**result, "action_s": round(action_s, 2)}


# --------------------------------------------------------------------------- the proofs (scenario config_reloads)


def rolling_haproxy_reload(lab: LabContext, port: int) -> dict:
    """Every director's HAProxy reloaded in the rolling order under load on `port`; the load's
    counts, the order, and every VIP holder seen meanwhile."""
    order = rolling_order(lab)
    with vip_holders(lab) as seen:
        result = under_load(lab, port, lambda: [reload_haproxy(d) for d in order])
    return {**result, "order": order, "holders": sorted(set(seen))}


def drained_servers(lab: LabContext) -> dict[tuple[str, str], str]:
    """Per HTTP and TCP service of the NFS docroot, its first server drained and its second in
    maintenance: (backend, server) -> the status HAProxy shows for it."""
    chosen = {}
    for svc in lab.services_by("http", "nfs")[:1] + lab.services_by("tcp", "nfs")[:1]:
        backend = lab.topo.backend_section(svc)
        members = [c.name for _, c in lab.topo.service_members(svc)]
        chosen[(backend, members[0])] = "DRAIN"
        chosen[(backend, members[1])] = "MAINT"
    return chosen


def set_states(lab: LabContext, states: dict[tuple[str, str], str]) -> None:
    """On every director (each HAProxy keeps its own runtime state): DRAIN -> drain, MAINT -> maint, UP -> ready."""
    words = {"DRAIN": "drain", "MAINT": "maint", "UP": "ready"}
    for d in lab.directors:
        for (backend, server), status in states.items():
            set_server_state(d.name, backend, server, words[status])


def mismatched_states(lab: LabContext, states: dict[tuple[str, str], str]) -> dict[str, dict[str, str]]:
    """director -> {backend/server: status} for every server whose status is not the expected one."""
    out = {}
    for d in lab.directors:
        seen = server_status(d.name)
        wrong = {f"{b}/{s}": seen.get((b, s), "missing") for (b, s), want in states.items() if seen.get((b, s)) != want}
        if wrong:
            out[d.name] = wrong
    return out


def config_reloads(lab: LabContext) -> list[str]:
    """HAProxy reloaded on every director (standbys first, the VIP holder last) under load in HTTP
    and TCP mode: 0 failed, the VIP stays; drained and maintenance servers stay so. keepalived
    reloaded and dnsmasq restarted on the master under load: 0 failed, the VIP stays."""
    master = lab.directors[0].name
    notes = []
    states = drained_servers(lab)
    set_states(lab, states)
    try:
        assert not mismatched_states(lab, states), f"the runtime API did not set the states: {mismatched_states(lab, states)}"
        for mode in ("http", "tcp"):
            svc = lab.services_by(mode, "nfs")[0]
            r = rolling_haproxy_reload(lab, svc.port)
            assert r["order"][-1] == master and len(r["order"]) == len(lab.directors), f"rolling order {r['order']}"
            assert r["failed"] == 0, f"{svc.name} ({mode}): {r['failed']} of {r['requests']} requests failed during the reloads: {r['failures']}"
            assert r["holders"] == [(master,)], f"the VIP moved during the reloads: holders seen {r['holders']}"
            wrong = mismatched_states(lab, states)
            assert not wrong, f"after the reloads ({mode} run), servers lost their drain/maintenance state: {wrong}"
            notes.append(f"{svc.name} ({mode}, :{svc.port}): HAProxy reloaded on {' -> '.join(r['order'])} in {r['action_s']} s under load: "
                         f"{r['requests']} sent, {r['failed']} failed; VIP stayed on {master}; {len(states)} drained/maint servers kept on every director")
    finally:
        set_states(lab, {k: "UP" for k in states})
    if not lab.pacemaker:
        svc = lab.services_by("http", "nfs")[0]
        for what, action in (("keepalived reloaded (SIGHUP)", lambda: reload_keepalived(lab, master)),
                             ("dnsmasq restarted", lambda: restart_dnsmasq(lab, master))):
            with vip_holders(lab) as seen:
                r = under_load(lab, svc.port, lambda: (action(), time.sleep(3.0)))
            assert r["failed"] == 0, f"{what} on {master}: {r['failed']} of {r['requests']} requests failed: {r['failures']}"
            assert sorted(set(seen)) == [(master,)], f"{what} on {master}: the VIP moved, holders seen {sorted(set(seen))}"
            notes.append(f"{what} on {master} under load on :{svc.port}: {r['requests']} sent, {r['failed']} failed; VIP stayed on {master}")
        for role in ("keepalived", "dnsmasq"):
            assert processes.alive(lab.state, master, role), f"{role} on {master} is not running after its reload"
    return notes
