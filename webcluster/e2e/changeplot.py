"""One change under load as a PNG: per director, how many servers its HAProxy had UP, DRAIN,
MAINT or DOWN over the change, with the failed requests and the VIP moves on the same clock.

Whether a failed request fell inside a drain, or came with servers DOWN that no step touched,
is what a reviewer of a change wants to see, and a table of transitions hides it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .checks import Failure  # noqa: E402
from .serverwatch import Sample  # noqa: E402

STATE_COLOURS = {"UP": "tab:green", "DRAIN": "tab:blue", "MAINT": "tab:gray", "NOLB": "tab:purple", "DOWN": "tab:red"}
OTHER = "tab:orange"  # any other state (e.g. "no check")


def series(samples: list[Sample], director: str, t0: float) -> tuple[list[float], dict[str, list[int]]]:
    """The director's answered looks: seconds since t0, and per state the number of servers in it."""
    mine = [s for s in samples if s.director == director and s.states is not None]
    seen = {v for s in mine for v in s.states.values()}
    states = [k for k in STATE_COLOURS if k in seen] + sorted(seen - set(STATE_COLOURS))
    return [s.at - t0 for s in mine], {state: [sum(1 for v in s.states.values() if v == state) for s in mine] for state in states}


def plot(title: str, samples: list[Sample], failures: list[Failure], vip_moves: list[float], t0: float, path: Path) -> None:
    """Stacked server counts per director; red ticks: failed requests (HTTP above, TCP below); dashed: VIP moves."""
    directors = sorted({s.director for s in samples})
    fig, axes = plt.subplots(len(directors) or 1, 1, figsize=(12, 2.2 * max(len(directors), 1) + 1), sharex=True, squeeze=False)
    for ax, director in zip(axes[:, 0], directors):
        xs, counts = series(samples, director, t0)
        if xs:
            ax.stackplot(xs, *counts.values(), labels=list(counts), colors=[STATE_COLOURS.get(k, OTHER) for k in counts], step="post", alpha=0.8)
        top = max((sum(c[i] for c in counts.values()) for i in range(len(xs))), default=1)
        for f in failures:
            ax.plot([f.start - t0], [top * (1.04 if f.mode == "http" else 0.96)], marker="|", markersize=12, color="black")
        for at in vip_moves:
            ax.axvline(at - t0, color="tab:purple", linestyle="--")
        unanswered = [s.at - t0 for s in samples if s.director == director and s.states is None]
        if unanswered:
            ax.plot(unanswered, [0] * len(unanswered), "x", color="black", label="no answer")
        ax.set_ylim(0, top * 1.12)
        ax.set_ylabel(f"{director}\nservers")
        ax.legend(loc="lower left", fontsize=7, ncol=6)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since the change started (|: a failed request; dashed: the VIP moved; x: stats page did not answer)")
    fig.suptitle(f"e2e change under load: {title}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
