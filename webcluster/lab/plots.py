"""PNG plots of the benchmark (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def takeover(rows, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    labels = [f"{r.settings}\n{r.fault}" for r in rows]
    ax.boxplot([r.trials for r in rows], tick_labels=labels, orientation="horizontal")
    ax.set_xlabel("seconds from fault to the standby holding the VIP")
    if max(max(r.trials) for r in rows) > 5:
        ax.set_xscale("log")  # keepalived's tenths of a second beside Pacemaker's seconds
    ax.set_title("VIP takeover, namespace lab (same run, same machine)")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.text(0.5, 0.5, " goal 0.5 s", color="grey", va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ab(rows, seed: dict, path: Path) -> None:
    pages = list(dict.fromkeys(r.page for r in rows))
    fig, axes = plt.subplots(2, len(pages), figsize=(5 * len(pages), 8), squeeze=False)
    for col, page in enumerate(pages):
        for target in dict.fromkeys(r.target for r in rows):
            sel = sorted((r for r in rows if r.page == page and r.target == target), key=lambda r: r.concurrency)
            axes[0][col].plot([r.concurrency for r in sel], [r.rps for r in sel], marker="o", label=f"lab: {target}")
            axes[1][col].plot([r.concurrency for r in sel], [r.tpr_ms for r in sel], marker="o", label=f"lab: {target}")
        if page in seed:
            cs, rps, ms = zip(*seed[page])
            axes[0][col].plot(cs, rps, marker="s", linestyle="--", color="black", label="seed (laptop, VirtualBox: different hardware)")
            axes[1][col].plot(cs, ms, marker="s", linestyle="--", color="black", label="seed (different hardware)")
        axes[0][col].set_title(page)
        axes[0][col].set_ylabel("requests per second")
        axes[1][col].set_ylabel("time per request (ms, mean)")
        for row in (0, 1):
            axes[row][col].set_xlabel("concurrency")
            axes[row][col].set_yscale("log")
            axes[row][col].grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("ApacheBench from the master director (as in the seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def https(rows, path: Path) -> None:
    """Requests/s over HTTP and HTTPS through the VIP, one panel per tool (kept-open connections, one per request)."""
    tools = list(dict.fromkeys(r.tool for r in rows))
    fig, axes = plt.subplots(1, len(tools), figsize=(5 * len(tools), 4), squeeze=False)
    for col, tool in enumerate(tools):
        ax = axes[0][col]
        for protocol in dict.fromkeys(r.protocol for r in rows if r.tool == tool):
            sel = sorted((r for r in rows if r.tool == tool and r.protocol == protocol), key=lambda r: r.concurrency)
            ax.plot([r.concurrency for r in sel], [r.rps for r in sel], marker="o", label=protocol)
        ax.set_title({"h2load": "h2load: connections kept open", "ab": "ab: a new connection per request"}.get(tool, tool))
        ax.set_xlabel("concurrency")
        ax.set_ylabel("requests per second")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("HTTP vs HTTPS through the VIP, from the master director")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
