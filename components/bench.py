"""`python -m components.bench`: how long the program takes under the SDK mock engine.

Runs the dev stack (3 Docker hosts) and the same cluster with 10x its Docker hosts, on
both hypervisors, and prints the median wall time of a few runs - the program's own cost
(model, rendering, declaring resources), without the engine or any provider.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pulumi_harness import run_stack, scaled_cluster


def measure(runs: int, **overrides: Any) -> tuple[float, int]:
    """Median seconds of `runs` runs, and the number of resources declared."""
    times = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        count = len(run_stack("dev", **overrides).resources)
        times.append(time.perf_counter() - start)
    return statistics.median(times), count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (the median is printed)")
    args = parser.parse_args(argv)
    cases = {
        "dev, 3 Docker hosts": {},
        "dev x10, 30 Docker hosts": {"cluster": scaled_cluster(30)},
    }
    print(f"{'case':<28} {'hypervisor':<11} {'resources':>9} {'seconds':>8}")
    for hypervisor in ("libvirt", "virtualbox"):
        for label, overrides in cases.items():
            seconds, count = measure(args.runs, hypervisor=hypervisor, **overrides)
            print(f"{label:<28} {hypervisor:<11} {count:>9} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
