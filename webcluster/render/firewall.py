"""Every node's host firewall, from the model: who may reach which port on which node.

One list of :class:`Allow` rules per node is the single source of truth: the per-role
nftables templates render it (input policy drop, everything not listed is dropped), the
docs print it, and :func:`client_exposure` evaluates it for a host on the external
network, which is what the lab's port scan must find open. Forwarding is fixed per role
in the templates: directors route the internal network out (NAT) and never inward;
Docker hosts forward only what Docker publishes, from the directors.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Optional

from ..topology import ROLE_BACKEND, ROLE_DIRECTOR, ROLE_GLUSTER, ROLE_NAS, Node, Topology
from . import https
from .builder import NodeBuilder
from .plan import Step

NFTABLES_CONF = "/etc/nftables.conf"
FIREWALL_STEP = "01-firewall"
SSH_PORT = 22
NFS_PORT = 2049
QNETD_PORT = 5403
COROSYNC_PORT = 5405  # knet link 0
GLUSTER_MANAGEMENT = "24007-24008"
# glusterd gives each brick process the next free port from 49152 up to its max-port (60999);
# a restarted brick may get another one, so the whole range, from the pool and its clients only.
GLUSTER_BRICKS = "49152-60999"
DIRECTOR_NICS = {"external": "enp0s3", "internal": "enp0s8", "heartbeat": "enp0s9"}


@dataclass(frozen=True)
class Allow:
    """One accepted kind of new inbound traffic; empty sources/dests mean any."""

    what: str
    proto: str  # tcp | udp | vrrp | icmp
    ports: tuple[str, ...] = ()  # "22", "49152-60999"
    sources: tuple[str, ...] = ()  # addresses or CIDRs
    dests: tuple[str, ...] = ()  # local addresses
    iif: Optional[str] = None  # interface the traffic must arrive on
    sport: Optional[int] = None  # udp source port (DHCP replies)

    @property
    def rule(self) -> str:
        """The rule in nft syntax (the templates print it as it is)."""
        parts = []
        if self.iif:
            parts.append(f'iifname "{self.iif}"')
        if self.sources:
            parts.append(f"ip saddr {_set(self.sources)}")
        if self.dests:
            parts.append(f"ip daddr {_set(self.dests)}")
        if self.proto == "vrrp":
            parts.append("ip protocol vrrp")
        elif self.proto == "icmp":
            parts.append("icmp type echo-request")
        else:
            if self.sport is not None:
                parts.append(f"{self.proto} sport {self.sport}")
            parts.append(f"{self.proto} dport {_set(self.ports)}")
        return " ".join(parts) + f' accept comment "{self.what}"'

    def port_numbers(self) -> set[int]:
        out: set[int] = set()
        for p in self.ports:
            low, _, high = p.partition("-")
            out.update(range(int(low), int(high or low) + 1))
        return out


def _set(items: tuple[str, ...]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def address_list(values: Iterable[object]) -> tuple[str, ...]:
    """Addresses/networks as nft writes them, deduplicated, in address order."""
    nets = {ipaddress.IPv4Network(str(v), strict=False) for v in values}
    ordered = sorted(nets, key=lambda n: (int(n.network_address), n.prefixlen))
    return tuple(str(n.network_address) if n.prefixlen == 32 else str(n) for n in ordered)


# --------------------------------------------------------------------------- rules per role


def allowed(topo: Topology, node: Node) -> list[Allow]:
    """Every kind of new inbound traffic the node accepts (its firewall drops the rest)."""
    rules = {
        ROLE_DIRECTOR: _director,
        ROLE_NAS: _nas,
        ROLE_GLUSTER: _gluster,
        ROLE_BACKEND: _backend,
    }[node.role](topo, node)
    if node.role != ROLE_DIRECTOR:
        internal = address_list([topo.network_of("internal")])
        rules = [
            Allow("SSH from the internal network (Pulumi: the hypervisor host or the bastion director)", "tcp", (str(SSH_PORT),), internal),
            Allow("ping from the internal network", "icmp", sources=internal),
            *rules,
        ]
        if any(nic.dhcp for nic in node.nics):
            rules.append(Allow("DHCP replies", "udp", ("68",), sport=67))
    m = topo.cluster.node_metrics
    if m.enabled:
        rules.append(Allow("node-exporter from nodeMetrics.scrapers", "tcp", (str(m.port),), address_list(topo.scraper_sources()), (str(node.internal_address),)))
    arb = _arbitrator(topo)
    if arb == node.name:
        rules.append(Allow("corosync-qnetd from the directors", "tcp", (str(QNETD_PORT),), director_addresses(topo)))
    return rules


def _arbitrator(topo: Topology) -> Optional[str]:
    if topo.config.ha_stack.value != "pacemaker":
        return None
    return topo.cluster.pacemaker.qnetd_host


def stats_addresses(topo: Topology, director_internal: ipaddress.IPv4Address) -> tuple[str, ...]:
    """Where a director's stats page listens: the external VIP (the published stats URL) and its own internal address."""
    return (str(topo.cluster.vips.external), str(director_internal))


def _director(topo: Topology, node: Node) -> list[Allow]:
    c = topo.cluster
    d = next(x for x in c.directors if x.name == node.name)
    peers = [x for x in c.directors if x.name != d.name]
    ext, internal, hb = DIRECTOR_NICS["external"], DIRECTOR_NICS["internal"], DIRECTOR_NICS["heartbeat"]
    internal_net = address_list([topo.network_of("internal")])
    services = tuple(str(p) for p in sorted({s.port for s in c.haproxy.services} | {s.tls_port for s in c.haproxy.services if s.tls_port is not None}))
    stats_ports = [c.haproxy.stats.port] + ([c.haproxy.https.stats_port] if https.enabled(topo) and c.haproxy.https.stats_port else [])
    # VirtualBox: Pulumi's SSH arrives through the NAT network's port forwards, which only the
    # cluster's own VMs share; libvirt: from the host's own addresses.
    ssh_external = address_list([topo.network_of("external")]) if topo.config.hypervisor.value == "virtualbox" else address_list(topo.host_addresses)
    rules = [
        Allow("HAProxy services on the external VIP", "tcp", services, dests=(str(c.vips.external),), iif=ext),
        Allow("HAProxy stats page from adminNetworks", "tcp", tuple(str(p) for p in stats_ports), address_list(topo.admin_sources()), stats_addresses(topo, d.internal)),
        Allow("HAProxy runtime API from the Docker hosts (rolling container changes)", "tcp", (str(c.haproxy.stats.runtime_api_port),), address_list(b.address for b in c.backends), (str(d.internal),), iif=internal),
        Allow("ping of the external addresses", "icmp", dests=(str(d.external), str(c.vips.external)), iif=ext),
        Allow("ping from the internal network", "icmp", sources=internal_net, iif=internal),
        Allow("ping from the heartbeat network", "icmp", sources=address_list([topo.network_of("heartbeat")]), iif=hb),
        Allow("SSH from the internal network", "tcp", (str(SSH_PORT),), internal_net, iif=internal),
    ]
    if ssh_external:
        rules.append(Allow("SSH from the hypervisor host (Pulumi)", "tcp", (str(SSH_PORT),), ssh_external, (str(d.external),), iif=ext))
    rules.append(Allow("DNS for the internal network", "udp", ("53",), internal_net, iif=internal))
    rules.append(Allow("DNS for the internal network", "tcp", ("53",), internal_net, iif=internal))
    if d.name == topo.master.name:
        rules.append(Allow("DHCP for the internal network", "udp", ("67",), iif=internal))
    if topo.config.ha_stack.value == "pacemaker":
        rules.append(Allow("corosync (knet) from the peer directors", "udp", (str(COROSYNC_PORT),), address_list(p.heartbeat for p in peers), iif=hb))
    else:
        for network, attr in (("external", "external"), ("internal", "internal"), ("heartbeat", "heartbeat")):
            rules.append(Allow(f"VRRP from the peer directors ({network})", "vrrp", sources=address_list(getattr(p, attr) for p in peers), iif=DIRECTOR_NICS[network]))
    return rules


def _nas(topo: Topology, node: Node) -> list[Allow]:
    clients = address_list(b.address for b in topo.storage_clients("nfs"))
    return [Allow("NFSv4 from the Docker hosts that mount it", "tcp", (str(NFS_PORT),), clients)] if clients else []


def gluster_peers_and_clients(topo: Topology) -> tuple[str, ...]:
    """The pool and every Docker host that mounts one of its volumes: Gluster's auth.allow too."""
    clients = {b.address for v in topo.cluster.gluster.volumes for b in topo.storage_clients(v.name)}
    return address_list([s.address for s in topo.cluster.gluster.servers] + sorted(clients))


def _gluster(topo: Topology, node: Node) -> list[Allow]:
    allowed_from = gluster_peers_and_clients(topo)
    return [
        Allow("glusterd from the pool and its clients", "tcp", (GLUSTER_MANAGEMENT,), allowed_from),
        Allow("Gluster bricks from the pool and its clients", "tcp", (GLUSTER_BRICKS,), allowed_from),
    ]


def director_addresses(topo: Topology) -> tuple[str, ...]:
    """The directors' internal addresses and the internal VIP: where their connections into the internal network (HAProxy, qdevice) come from."""
    return address_list([d.internal for d in topo.cluster.directors] + [topo.cluster.vips.internal])


def container_ports(topo: Topology, node: Node) -> tuple[str, ...]:
    backend = next(b for b in topo.cluster.backends if b.name == node.name)
    return tuple(str(p) for p in sorted({k.port for k in backend.containers}))


def _backend(topo: Topology, node: Node) -> list[Allow]:
    ports = container_ports(topo, node)
    return [Allow("web containers from the directors", "tcp", ports, director_addresses(topo))] if ports else []


# --------------------------------------------------------------------------- rendering


def add_firewall(b: NodeBuilder) -> Step:
    """/etc/nftables.conf of the node's role and the step that loads it (after 00-base)."""
    topo = b.topo
    node = topo.node(b.name)
    c = topo.cluster
    context = dict(node=node, allow=allowed(topo, node))
    if node.role == ROLE_DIRECTOR:
        context.update(internal=c.networks.internal.cidr, external_if=DIRECTOR_NICS["external"], internal_if=DIRECTOR_NICS["internal"])
    if node.role == ROLE_BACKEND:
        ports = container_ports(topo, node)
        context.update(directors=_set(director_addresses(topo)), ports=_set(ports) if ports else "", runtime_api_port=c.haproxy.stats.runtime_api_port)
    conf = b.file(NFTABLES_CONF, f"{node.role}/nftables.conf.j2", mode=0o755, **context)
    what = "host firewall" + (" and NAT of the internal network" if node.role == ROLE_DIRECTOR else "")
    return b.step(FIREWALL_STEP, what, "steps/common/01-firewall.sh.j2", files=[conf], rules=len(context["allow"]))


# --------------------------------------------------------------------------- what a client sees


def client_exposure(topo: Topology, client: ipaddress.IPv4Address) -> dict[str, list[int]]:
    """TCP ports that accept a connection from `client`, a host on the external network that also
    routes the internal and heartbeat networks via the external VIP (the worst case), keyed by every
    node address and VIP. The master holds the VIPs, so it receives what is sent to its own
    addresses and the VIPs; every other internal address would need forwarding inward, which no
    director does; a standby's external address is reached directly."""
    c = topo.cluster
    ext = DIRECTOR_NICS["external"]
    master = topo.node(topo.master.name)
    targets: dict[str, list[int]] = {}
    for node in topo.nodes:
        for nic in node.nics:
            if nic.address is not None:
                targets.setdefault(str(nic.address), [])
    for vip in (c.vips.external, c.vips.internal, c.vips.heartbeat):
        targets[str(vip)] = []
    reach: list[tuple[Node, list[str]]] = [(master, [str(n.address) for n in master.nics] + [str(c.vips.external), str(c.vips.internal), str(c.vips.heartbeat)])]
    reach += [(topo.node(d.name), [str(d.external)]) for d in topo.directors[1:]]
    for node, addresses in reach:
        for rule in allowed(topo, node):
            if rule.proto != "tcp" or rule.iif not in (None, ext):
                continue
            if rule.sources and not any(client in ipaddress.IPv4Network(s, strict=False) for s in rule.sources):
                continue
            for address in addresses:
                if not rule.dests or address in rule.dests:
                    targets[address] = sorted(set(targets[address]) | rule.port_numbers())
    return targets
