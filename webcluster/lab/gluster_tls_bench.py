"""What Gluster's TLS costs, measured in the lab: the same stack with `cluster.gluster.tls` on and
off, one lab after the other, each measured the same way:

- writes: a Docker host writes a file into the replica volume's mount with fsync (every byte goes
  to the three bricks, each over its own TLS session), MB/s, median of a few runs;
- pages: ab through the VIP on the HTTP service whose docroot is that volume (Apache reads the
  page through the Gluster client on every request), requests/s.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .context import LabContext
from .state import LAB_ROOT, netns_name, sandbox

WRITE_MIB = 32
WRITE_RUNS = 3
AB_REQUESTS = 1000
AB_CONCURRENCY = 10
PAGE = "/index.php"


@dataclass(frozen=True)
class TlsCostRow:
    tls: bool
    write_mb_s: float
    page_rps: float


def _write_mb_s(lab: LabContext) -> float:
    topo = lab.topo
    volume = next(v for v in topo.cluster.gluster.volumes if v.replica > 1 and topo.storage_clients(v.name))
    client = topo.storage_clients(volume.name)[0].name
    target = f"{volume.mountpoint}/.hawc-tls-bench"
    speeds = []
    try:
        for _ in range(WRITE_RUNS):
            out = sandbox(client).run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={WRITE_MIB}", "conv=fsync"], timeout=300)
            m = re.search(r"copied, ([\d.]+) s", out.stderr)
            assert m, out.stderr
            speeds.append(WRITE_MIB * 1.048576 / float(m.group(1)))
    finally:
        sandbox(client).run(["rm", "-f", target], check=False)
    return statistics.median(speeds)


def _page_rps(lab: LabContext) -> float:
    from .bench import ab

    volume = next(v for v in lab.topo.cluster.gluster.volumes if lab.topo.storage_clients(v.name))
    service = lab.services_by("http", volume.name)[0]
    rps, _, failed = ab(netns_name(lab.directors[0].name), f"http://{lab.vip}:{service.port}{PAGE}", AB_REQUESTS, AB_CONCURRENCY)
    assert failed == 0, f"{failed} of {AB_REQUESTS} requests failed"
    return rps


def measure_here(lab: LabContext) -> TlsCostRow:
    return TlsCostRow(lab.topo.cluster.gluster.tls, _write_mb_s(lab), _page_rps(lab))


def measure(lab: LabContext, progress: Callable[[str], None]) -> list[TlsCostRow]:
    """The running lab, then the same stack with TLS the other way, then the original lab back."""
    from ..stackfile import load_stack_file
    from . import lifecycle, variants

    rows = [measure_here(lab)]
    progress(_line(rows[-1]))
    original = Path(lab.state.stack_file)
    flipped = not lab.topo.cluster.gluster.tls
    variant = variants.stack_variant(original, LAB_ROOT / "stacks", "gluster-tls-on" if flipped else "gluster-tls-off", {"cluster": {"gluster": {"tls": flipped}}})
    quiet: Callable[[str], None] = lambda _m: None  # noqa: E731
    try:
        lifecycle.down(progress=quiet)
        lifecycle.up(load_stack_file(variant), str(variant), progress=quiet)
        rows.append(measure_here(LabContext.current()))
        progress(_line(rows[-1]))
    finally:
        lifecycle.down(progress=quiet)
        lifecycle.up(load_stack_file(original), str(original), progress=quiet)
    return sorted(rows, key=lambda r: r.tls)


def _line(r: TlsCostRow) -> str:
    return f"gluster TLS {'on ' if r.tls else 'off'}: writes {r.write_mb_s:6.1f} MB/s (replica volume, fsync), pages {r.page_rps:7.1f} requests/s via the VIP"


def summary(rows: list[TlsCostRow]) -> list[str]:
    lines = ["Gluster TLS cost (same lab, TLS off / on)"] + [f"  {_line(r)}" for r in rows]
    if len(rows) == 2:
        off, on = rows
        lines.append(f"  with TLS: writes {100 * (on.write_mb_s / off.write_mb_s - 1):+.0f} %, pages {100 * (on.page_rps / off.page_rps - 1):+.0f} %")
    return lines
