"""Network round trips a page costs through a Gluster mount, counted by the bricks themselves
(`gluster volume profile`): how many LOOKUPs and READLINKs one GET adds above the background (the
directors' health checks). On emulated guests every one is a TLS round trip of tens of
milliseconds, so this count, not the lab's latency, is what decides whether a page there comes
within HAProxy's check timeout (docs/content.md)."""

from __future__ import annotations

import re
import time
from collections import Counter

from .state import sandbox

# One row of `volume profile ... info`: %-latency, avg, min, max (each with a unit), calls, fop.
_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\w+\s+[\d.]+\s+\w+\s+[\d.]+\s+\w+\s+(\d+)\s+([A-Z]+)\s*$")


def parse_profile(text: str) -> Counter[str]:
    """Calls per FOP, summed over every brick of an `info incremental` answer."""
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        m = _ROW.match(line)
        if m:
            calls[m.group(2)] += int(m.group(1))
    return calls


def _profile(server: str, volume: str, *args: str) -> str:
    return sandbox(server).run(["gluster", "--mode=script", "volume", "profile", volume, *args], timeout=60).stdout


def _window(server: str, volume: str, client: str, url: str, gets: int, seconds: float) -> Counter[str]:
    """Calls the bricks saw in `seconds`, while `client` fetched `url` `gets` times."""
    _profile(server, volume, "info", "incremental")  # starts a new interval
    started, done = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        if done < gets:
            sandbox(client).run(["curl", "-sS", "-o", "/dev/null", "--max-time", "10", "--noproxy", "*", url], timeout=15)
            done += 1
        else:
            time.sleep(0.1)
    return parse_profile(_profile(server, volume, "info", "incremental"))


def per_get(server: str, volume: str, client: str, url: str, gets: int = 40, seconds: float = 10.0) -> dict[str, float]:
    """Brick calls one GET of `url` adds, per FOP: a window with `gets` GETs minus one without."""
    _profile(server, volume, "start")
    try:
        idle = _window(server, volume, client, url, 0, seconds)
        busy = _window(server, volume, client, url, gets, seconds)
    finally:
        _profile(server, volume, "stop")
    return {fop: round((busy[fop] - idle[fop]) / gets, 2) for fop in sorted(set(busy) | set(idle))}
