"""Files and steps every node gets: /etc/hosts and the base step."""

from __future__ import annotations

from dataclasses import dataclass

from ..topology import ROLE_DIRECTOR, Topology
from .builder import NodeBuilder
from .plan import StepRef

BASE_STEP = "00-base"


@dataclass(frozen=True)
class HostsEntry:
    address: str
    names: tuple[str, ...]


def hosts_entries(topo: Topology) -> list[HostsEntry]:
    """The seed's /etc/hosts (figure 34): internal names with aliases, then heartbeat names."""
    domain = topo.cluster.domain
    rows = []
    for node in topo.nodes:
        addr = node.internal_address
        rows.append((addr, HostsEntry(str(addr), (f"{node.name}.{domain}", node.name, *node.aliases))))
    for d in topo.directors:
        rows.append((d.heartbeat, HostsEntry(str(d.heartbeat), (f"{d.name}h.{domain}", f"{d.name}h"))))
    return [entry for _, entry in sorted(rows, key=lambda r: r[0])]


def add_base(b: NodeBuilder, network_ready: list[StepRef]) -> None:
    """/etc/hosts and the base step; internal-only nodes wait until the directors route and serve DHCP."""
    node = b.topo.node(b.name)
    hosts = b.file("/etc/hosts", "common/hosts.j2", node=node, domain=b.topo.cluster.domain, hosts=hosts_entries(b.topo))
    after = [] if node.role == ROLE_DIRECTOR else network_ready
    b.step(BASE_STEP, "hostname and /etc/hosts", "steps/common/00-base.sh.j2", files=[hosts], after=after)
