"""`lab watch`: the running lab on one terminal screen, redrawn about twice a second until Ctrl-C.

Who holds each VIP, every HAProxy server's state as the active director's stats page gives it,
each node's state (up, cut, off) and the faults in force, and a small steady probe load through
every service from the client namespace (load.py --stream): requests a second, failures, the
last error. A failure in flight when the VIP changed hands is counted apart ("reset by a VIP
move"): the move resets every connection to the VIP, which no proxy can save. Plain text and a few ANSI sequences (alternate screen, cursor home, erase line), so it
works in any terminal and over SSH; on Ctrl-C, SIGTERM or a hang-up the terminal is given back as
it was, and the probe's totals are printed.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Optional, TextIO

from ..loss import split_vip_move_casualties
from . import faults, network, probe
from .context import LOAD_SCRIPT, LabContext
from .state import CLIENT, netns_name

REFRESH = 0.5  # seconds between two screens
RATE_WINDOW = 2.0  # requests a second: over the last seconds of the probe's totals
ENTER, LEAVE = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"  # alternate screen and hidden cursor, and back
HOME, ERASE_LINE, ERASE_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


class Probe:
    """The probe load in the client namespace; a thread keeps its recent totals."""

    def __init__(self, urls: dict[str, str], rate: float, duration: float, timeout: float = 5.0):
        self.urls = urls  # service -> URL
        argv = ["ip", "netns", "exec", netns_name(CLIENT), sys.executable, str(LOAD_SCRIPT), *urls.values(),
                "--stream", str(rate), "--duration", str(duration), "--timeout", str(timeout)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        self.history: deque[tuple[float, dict[str, Any]]] = deque(maxlen=int(4 * RATE_WINDOW / REFRESH) + 4)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                snap = json.loads(line)
            except ValueError:
                continue
            self.history.append((snap["t"], snap["totals"]))

    def totals(self) -> dict[str, dict[str, Any]]:
        """Service -> running totals and requests a second (empty until the first report)."""
        if not self.history:
            return {}
        t_now, now = self.history[-1]
        t_then, then = next(((t, tot) for t, tot in self.history if t_now - t <= RATE_WINDOW), self.history[0])
        out = {}
        for service, url in self.urls.items():
            cur, old = now[url], then[url]
            rate = (cur["requests"] - old["requests"]) / (t_now - t_then) if t_now > t_then else 0.0
            out[service] = {**cur, "rate": rate}
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass(frozen=True)
class ProbeFailure:
    start: float  # epoch
    end: float
    kind: str


class VipMoves:
    """When (epoch) the watch saw the external VIP change hands, screen after screen."""

    def __init__(self) -> None:
        self.holder: tuple[str, ...] = ()
        self.times: list[float] = []

    def observe(self, holders: list[str], when: float) -> None:
        """A move: a new holder (nobody in between is no holder, not a move)."""
        now = tuple(holders)
        if now and now != self.holder:
            if self.holder:
                self.times.append(when)
            self.holder = now

    def between(self, start: float, end: float) -> list[float]:
        return [t for t in self.times if start <= t <= end]


def split_probe(totals: dict[str, Any], moves: VipMoves) -> dict[str, Any]:
    """A service's probe totals with `failed` split: `moved` the failures a VIP move reset (at most
    one a move: the probe sends one request at a time), `failed` the others."""
    recorded = [ProbeFailure(*f) for f in totals.get("failures", [])]
    moved = split_vip_move_casualties(recorded, moves.between)[1]
    return {**totals, "failed": totals["failed"] - len(moved), "moved": len(moved)}


def snapshot(lab: LabContext, load: Optional[Probe], moves: Optional[VipMoves] = None) -> dict[str, Any]:
    """What one screen shows, read from the lab now."""
    c = lab.topo.cluster
    snap: dict[str, Any] = {"time": time.strftime("%H:%M:%S"), "stack": lab.state.stack, "ha_stack": lab.topo.config.ha_stack.value}
    held = {d.name: {a.split("/")[0] for a in network.addresses(d.name)} for d in lab.directors}  # one `ip` per director
    snap["vips"] = {vip: [d for d, addresses in held.items() if vip in addresses] for vip in lab.vips}
    moves = moves or VipMoves()
    moves.observe(snap["vips"][lab.vip], time.time())
    snap["nodes"] = faults.node_states(lab)
    snap["faults"] = list(faults.faults_in_force())
    try:
        rows, desc = probe.stats_csv(lab.vip, c.haproxy.stats.port, c.haproxy.stats.uri, lab.auth, timeout=1)
        snap["stats"] = {"description": desc, "servers": [(r.backend, r.server, r.status) for r in rows]}
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        snap["stats"] = {"error": str(exc)}
    snap["services"] = [(s.name, s.port, s.mode.value) for s in c.haproxy.services]
    snap["probe"] = {name: split_probe(p, moves) for name, p in load.totals().items()} if load else {}
    return snap


def _flow(label: str, items: list[str], width: int) -> list[str]:
    """Items after a label, as many a line as fit the width."""
    lines, cur = [], f"{label:<9} "
    for item in items:
        if len(cur) + len(item) + 2 > width and cur.strip() != label:
            lines.append(cur.rstrip())
            cur = " " * 10
        cur += item + "  "
    lines.append(cur.rstrip())
    return lines


def frame(snap: dict[str, Any], width: int = 100) -> list[str]:
    """One screen of text (no escape sequences), no line longer than width."""
    lines = [f"ha-web-cluster lab watch  stack {snap['stack']} ({snap['ha_stack']})  {snap['time']}  Ctrl-C quits"]
    lines += _flow("VIPs", [f"{vip} -> {','.join(h) or 'nobody'}" for vip, h in snap["vips"].items()], width)
    lines += _flow("nodes", [f"{n} {s}" for n, s in snap["nodes"].items()], width)
    lines += _flow("faults", snap["faults"] or ["none"], width)
    stats = snap["stats"]
    if "error" in stats:
        lines.append(f"HAProxy   stats page unreachable: {stats['error']}")
    else:
        lines.append(f"HAProxy   servers as the active director's stats page says ({stats['description']})")
        backends: dict[str, list[str]] = {}
        for backend, server, status in stats["servers"]:
            backends.setdefault(backend, []).append(f"{server} {status}")
        for backend, items in backends.items():
            lines += _flow(f"  {backend}", items, width) if len(backend) < 8 else [f"  {backend}"] + _flow("", items, width)
    lines.append(f"probes    {'service':<16} {'port':>5} {'mode':<5} {'req/s':>6} {'requests':>9} {'failed':>7} {'moved':>6} {'success':>8}  last error")
    for name, port, mode in snap["services"]:
        p = snap["probe"].get(name)
        if not p:
            lines.append(f"          {name:<16} {port:>5} {mode:<5} {'-':>6}")
            continue
        success = 100.0 * p["ok"] / p["requests"] if p["requests"] else 100.0
        lines.append(f"          {name:<16} {port:>5} {mode:<5} {p['rate']:>6.1f} {p['requests']:>9} {p['failed']:>7} {p.get('moved', 0):>6} {success:>7.2f}%  {p['last_error'] or '-'}")
    lines.append("          moved: in flight when the VIP changed hands (a move resets every connection to it)")
    return [line[:width] for line in lines]


def _stop(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(lab: LabContext, duration: float, rate: float, out: TextIO = sys.stdout) -> int:
    """Redraw until Ctrl-C (or `duration` s, the bound of every lab loop); then the terminal as it was, and the totals."""
    urls = {s.name: lab.url(s.port, "/index.php") for s in lab.topo.cluster.haproxy.services}
    tty = out.isatty()
    load = Probe(urls, rate, duration)
    moves = VipMoves()
    old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    started = time.monotonic()
    try:
        if tty:
            out.write(ENTER)
        while time.monotonic() - started < duration:
            tick = time.monotonic()
            width = shutil.get_terminal_size((100, 40)).columns if tty else 100
            lines = frame(snapshot(lab, load, moves), width)
            if tty:
                out.write(HOME + "".join(line + ERASE_LINE + "\n" for line in lines) + ERASE_BELOW)
            else:
                out.write("\n".join(lines) + "\n\n")
            out.flush()
            time.sleep(max(0.0, REFRESH - (time.monotonic() - tick)))
    except KeyboardInterrupt:
        pass
    finally:
        totals = {name: split_probe(p, moves) for name, p in load.totals().items()}
        load.close()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        try:
            out.write(LEAVE if tty else "")
            took = time.monotonic() - started
            for name, p in totals.items():
                moved = f", {p['moved']} reset by a VIP move" if p["moved"] else ""
                out.write(f"{name}: {p['requests']} requests in {took:.0f} s, {p['failed']} failed{moved}" + (f" (last: {p['last_error']})" if p["failed"] or p["moved"] else "") + "\n")
            out.flush()
        except OSError:  # the terminal is gone (an SSH hang-up): nothing left to give back
            pass
    return 0
