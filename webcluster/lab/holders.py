"""Who holds the VIPs, sampled in a thread while a fault runs: doubled holders and every move."""

from __future__ import annotations

import threading
import time
from typing import Optional

from . import network
from .context import LabContext


class HolderWatch:
    """Samples the directors' addresses in a thread and records every moment two of them hold a
    VIP, and the succession of sole holders of the external VIP (`None`: nobody).

    A sample reads the directors one after another, so a VIP that moved between two reads would
    look doubled: a doubling counts only if the first holder still has the VIP when read again
    afterwards. Used as a context manager, it asserts on exit that it sampled and saw no doubling.
    """

    def __init__(self, lab: LabContext, interval: float = 0.05):
        self.lab, self.interval = lab, interval
        self.samples = 0
        self.doubled: list[tuple[float, str, list[str]]] = []
        self.succession: list[Optional[str]] = []  # external VIP's sole holder, each change once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        names = [d.name for d in self.lab.directors]
        seen = {n: {a.split("/")[0] for a in network.addresses(n)} for n in names}
        for vip in (self.lab.vip, self.lab.internal_vip):
            holders = [n for n in names if vip in seen[n]]
            if len(holders) > 1 and network.holds(holders[0], vip):
                self.doubled.append((time.monotonic(), vip, holders))
        ext = [n for n in names if self.lab.vip in seen[n]]
        sole = ext[0] if len(ext) == 1 else None
        if not self.succession or self.succession[-1] != sole:
            self.succession.append(sole)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.interval)

    def moves(self) -> list[str]:
        """The holders in turn, gaps without a holder left out (a VIP in flight is not a move)."""
        out: list[str] = []
        for h in self.succession:
            if h is not None and (not out or out[-1] != h):
                out.append(h)
        return out

    def __enter__(self) -> "HolderWatch":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert self.samples > 20, f"only {self.samples} samples of the VIP holders"
        assert not self.doubled, f"two directors held a VIP at once: {self.doubled}"
