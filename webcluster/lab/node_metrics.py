"""node-exporter in the lab (issue #15): run on every node's rendered /etc/default file, as Debian's
unit runs it, and the directors' hawc_vip_held metric that keepalived's notify hook keeps."""

from __future__ import annotations

from typing import Optional

from ..metrics import vip_held as held
from ..render.node_metrics import TEXTFILE_DIR, VIP_METRIC
from ..topology import Topology
from . import processes, probe
from .state import HYPERVISOR, LabState, sandbox

ROLE = "node-exporter"
# Debian's unit: EnvironmentFile=/etc/default/prometheus-node-exporter, ExecStart=... $ARGS
ARGV = ["sh", "-c", ". /etc/default/prometheus-node-exporter && exec prometheus-node-exporter $ARGS"]


def start_all(state: LabState, topo: Topology) -> int:
    """node-exporter on every node (none when nodeMetrics is off); how many were started."""
    if not topo.cluster.node_metrics.enabled:
        return 0
    for node in topo.nodes:
        processes.start(state, node.name, ROLE, ARGV)
    return len(topo.nodes)


def held_files(director: str) -> dict[str, int]:
    """What the director's notify hook last wrote, read from its textfile directory."""
    directory = sandbox(director).path(TEXTFILE_DIR)
    text = "".join(p.read_text() for p in sorted(directory.glob(f"{VIP_METRIC}_*.prom"))) if directory.is_dir() else ""
    return held(text)


def scrape(address: str, port: int, ns: str = HYPERVISOR, timeout: float = 5) -> Optional[str]:
    """node-exporter's /metrics from a lab namespace (the hypervisor host's by default); None: no answer."""
    resp = probe.get(f"http://{address}:{port}/metrics", ns=ns, timeout=timeout)
    return resp.body if resp.status == 200 else None
