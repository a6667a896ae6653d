"""What every director's HAProxy says of every server while a change runs (issue #15): UP,
DRAIN, MAINT, DOWN, as each director's own stats listener reports it.

Why per director: each HAProxy keeps its own runtime state, so a rolling step drains a server on
one director before the next, and a server one director marks DOWN may be UP on another. The
change's row says which servers left UP and for how long, and its plot puts those counts beside
the failed requests and VIP moves: a failure during a drain, or a server DOWN that no step
touched, is then visible at a glance.
"""

from __future__ import annotations

import csv
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..statscsv import csv_rows

POLL_S = 3.0  # one look at every director per period; a drain lasts tens of seconds in the guests
FETCH_TIMEOUT_S = 5.0
REPORT_TRANSITIONS = 40  # lines of transitions in a row's report at most (the plot has them all)

Fetch = Callable[..., tuple[bool, str]]  # (url, timeout=, auth=) -> (2xx?, body): checks.http_get


def states_from_csv(body: str) -> dict[str, str]:
    """backend/server -> state (the status's first word: UP, DOWN, DRAIN, MAINT, NOLB, no check:
    "UP 2/5", a server failing checks but not yet DOWN, counts as UP)."""
    out = {}
    for r in csv_rows(body):
        if r["svname"] in ("FRONTEND", "BACKEND"):
            continue
        status = r["status"]
        out[f"{r['pxname']}/{r['svname']}"] = status if status == "no check" else status.split(" ")[0]
    return out


@dataclass(frozen=True)
class Sample:
    at: float  # epoch
    director: str
    states: Optional[dict[str, str]]  # None: the stats listener did not answer


@dataclass(frozen=True)
class Transition:
    at: float
    director: str
    server: str
    before: str
    after: str


class ServerWatch:
    """Polls every director's stats CSV every POLL_S from a thread, until `stop`."""

    def __init__(self, urls: dict[str, str], auth: str, fetch: Fetch, poll_s: float = POLL_S):
        self.urls, self.auth, self.fetch, self.poll_s = urls, auth, fetch, poll_s
        self.samples: list[Sample] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _look(self, director: str, url: str) -> Sample:
        ok, body = self.fetch(url + ";csv", timeout=FETCH_TIMEOUT_S, auth=self.auth)
        try:
            return Sample(time.time(), director, states_from_csv(body) if ok else None)
        except (KeyError, csv.Error):
            return Sample(time.time(), director, None)

    def _poll(self) -> None:
        while not self._halt.is_set():
            for director, url in sorted(self.urls.items()):
                self.samples.append(self._look(director, url))
            self._halt.wait(self.poll_s)

    def stop(self) -> list[Sample]:
        """Stop polling (after the look under way: at most FETCH_TIMEOUT_S per director) and give every sample."""
        self._halt.set()
        self._thread.join(len(self.urls) * (FETCH_TIMEOUT_S + 5) + self.poll_s)
        return list(self.samples)


def transitions(samples: list[Sample]) -> list[Transition]:
    """Every change of a server's state on a director between two answered looks, in time order.
    A server's first look is its baseline, not a transition; an unanswered look changes nothing."""
    last: dict[tuple[str, str], str] = {}
    out = []
    for s in sorted(samples, key=lambda s: s.at):
        for server, state in sorted((s.states or {}).items()):
            before = last.get((s.director, server))
            if before is not None and before != state:
                out.append(Transition(s.at, s.director, server, before, state))
            last[(s.director, server)] = state
    return out


def not_up_counts(samples: list[Sample]) -> dict[str, dict[str, int]]:
    """director -> state -> the most servers seen in that state at one look (states other than UP)."""
    out: dict[str, dict[str, int]] = {}
    for s in samples:
        per = out.setdefault(s.director, {})
        for state in set((s.states or {}).values()) - {"UP"}:
            per[state] = max(per.get(state, 0), sum(1 for v in s.states.values() if v == state))
    return out


def report_lines(samples: list[Sample], t0: float) -> list[str]:
    """The row's account: per director what left UP at most at once and how many looks went
    unanswered, then the transitions (seconds since the change started)."""
    if not samples:
        return []
    counts = not_up_counts(samples)
    lines = []
    for director in sorted({s.director for s in samples}):
        mine = [s for s in samples if s.director == director]
        unanswered = sum(1 for s in mine if s.states is None)
        most = ", ".join(f"{n} {state}" for state, n in sorted(counts.get(director, {}).items())) or "every server UP at every look"
        lines.append(f"  servers on {director} (at most at once): {most}; {len(mine)} looks, {unanswered} unanswered")
    moves = transitions(samples)
    for t in moves[:REPORT_TRANSITIONS]:
        lines.append(f"    +{t.at - t0:6.1f}s {t.director}: {t.server} {t.before} -> {t.after}")
    if len(moves) > REPORT_TRANSITIONS:
        lines.append(f"    ... {len(moves) - REPORT_TRANSITIONS} more (the plot shows them all)")
    return lines
