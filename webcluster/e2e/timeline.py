"""The e2e run's timeline as a PNG: when each guest booted and each step ran, per guest.

Where the time goes (boot, the slow steps under emulation, the critical path through the
NAS and the Gluster pool) is easier to see than to read from the step log.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .replay import StepResult  # noqa: E402


def plot(steps: list[StepResult], boots: dict[str, float], t0: float, path: Path) -> None:
    """Bars: steps (green ok, red failed), labelled with their number; ticks: guest started."""
    guests = sorted(boots, key=lambda g: (boots[g], g))
    guests += sorted({s.guest for s in steps} - set(guests))
    row = {g: i for i, g in enumerate(guests)}
    fig, ax = plt.subplots(figsize=(12, 0.5 * len(guests) + 1.5))
    for s in steps:
        ax.barh(row[s.guest], s.seconds, left=s.started - t0, color="tab:green" if s.ok else "tab:red", edgecolor="white", height=0.6)
        number = s.name.removeprefix(f"{s.guest}-").split("-")[0]
        ax.text(s.started - t0 + s.seconds / 2, row[s.guest], number, ha="center", va="center", fontsize=7, color="white")
    for g, t in boots.items():
        ax.plot([t - t0], [row[g]], marker="|", markersize=14, color="black")
    ax.set_yticks(range(len(guests)), guests)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since provisioning started (| guest started; bars: steps, by number)")
    ax.set_title("e2e: boot and the program's remote steps on QEMU guests (TCG)")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
