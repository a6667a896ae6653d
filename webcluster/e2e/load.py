"""Client-side load through the external VIP while a change is applied, counted per service mode.

`clients` threads per mode (HTTP mode and TCP mode services), each sending one GET at a time
from the e2e namespace (the client's side of the external network), over its mode's services in
turn, as the Docker-host check does. So at most `clients` requests per mode are in flight: the
TCP loss budget. Bounded: every request by `timeout`, the whole load by `max_s`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from .. import loss
from .checks import Failure, http_get
from .vipwatch import VipWatch

MODES = ("http", "tcp")


@dataclass
class LoadResult:
    sent: dict[str, int] = field(default_factory=lambda: {m: 0 for m in MODES})
    failures: list[Failure] = field(default_factory=list)
    vip_moves: list[float] = field(default_factory=list)  # epochs the VIP changed hands
    reset_by_moves: list[Failure] = field(default_factory=list)  # of `failures`, those a VIP move reset

    def reasons(self, mode: str) -> list[str]:
        moved = {id(f) for f in self.reset_by_moves}
        return [f.message + (" (reset by a VIP move)" if id(f) in moved else "") for f in self.failures if f.mode == mode]


class Load:
    """Started by the constructor; `stop()` ends it and returns the counts."""

    def __init__(self, urls: dict[str, list[str]], clients: int, timeout: float, max_s: float, watch: Optional[VipWatch] = None):
        self.urls, self.timeout, self.watch = urls, timeout, watch
        self.result = LoadResult()
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.deadline = time.monotonic() + max_s
        self.started = time.time()
        self.threads = [threading.Thread(target=self._client, args=(mode, i), daemon=True) for mode in MODES if urls.get(mode) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _client(self, mode: str, lane: int) -> None:
        while not self.halt.is_set() and time.monotonic() < self.deadline:
            for url in self.urls[mode]:
                start = time.time()
                ok, body = http_get(url, timeout=self.timeout)
                with self.lock:
                    self.result.sent[mode] += 1
                    if not ok:
                        self.result.failures.append(LaneFailure(start, time.time(), mode, f"{url}: {body.strip()[:100]}", f"{mode}{lane}"))
                if self.halt.is_set():
                    return

    def stop(self) -> LoadResult:
        self.halt.set()
        for t in self.threads:
            t.join(self.timeout + 30)
        ended = time.time()
        if self.watch is not None:
            self.result.vip_moves = self.watch.moves_between(self.started, ended)
            _, self.result.reset_by_moves = loss.split_vip_move_casualties(self.result.failures, self.watch.moves_between, lambda f: f.lane)
        return self.result


@dataclass
class LaneFailure(Failure):
    lane: str = ""  # the client that sent it (one request in flight per client)
