"""Facts derived from the model that every consumer needs the same way.

Node list, NIC order and names, deterministic MAC addresses, storages, and which
containers sit behind which service. Pulumi components, the renderer and the lab
all ask here, so a NIC's name or a MAC is decided once.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

from .model import Backend, Cluster, Container, Director, Service, StackConfig

ROLE_DIRECTOR = "director"
ROLE_BACKEND = "backend"
ROLE_NAS = "nas"
ROLE_GLUSTER = "gluster"


@dataclass(frozen=True)
class Nic:
    name: str  # guest interface name (enp0s3, ...); cloud-init renames by MAC
    network: str  # external | internal | heartbeat
    address: Optional[ipaddress.IPv4Address]  # static address, or the DHCP reservation
    prefix: int
    mac: str
    dhcp: bool = False  # address comes from the master's dnsmasq reservation
    bond: Optional[str] = None  # set on bond slaves (the address lives on the bond)


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    aliases: tuple[str, ...]
    nics: tuple[Nic, ...]
    vcpus: int
    memory_mib: int
    data_disks_mib: tuple[int, ...]

    @property
    def internal_address(self) -> ipaddress.IPv4Address:
        """Address Pulumi (and every other node) reaches this node on."""
        for nic in self.nics:
            if nic.network == "internal" and nic.address is not None:
                return nic.address
        raise LookupError(f"{self.name} has no internal address")


def mac_for(node: str, index: int) -> str:
    """A stable locally-administered MAC (QEMU's 52:54:00 prefix) per node and NIC."""
    digest = hashlib.sha256(f"{node}/{index}".encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


class Topology:
    """Read-only views over a validated :class:`StackConfig`."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.cluster: Cluster = config.cluster

    # ------------------------------------------------------------------ nodes
    def _prefix(self, network: str) -> int:
        return getattr(self.cluster.networks, network).cidr.prefixlen

    def _nic(self, node: str, index: int, name: str, network: str, address, dhcp: bool = False, bond: Optional[str] = None) -> Nic:
        return Nic(name=name, network=network, address=address, prefix=self._prefix(network), mac=mac_for(node, index), dhcp=dhcp, bond=bond)

    @cached_property
    def directors(self) -> list[Director]:
        """Directors, highest priority (the master) first."""
        return sorted(self.cluster.directors, key=lambda d: -d.priority)

    @property
    def master(self) -> Director:
        return self.directors[0]

    @cached_property
    def nodes(self) -> list[Node]:
        """Every VM in a stable order: directors, NAS, Gluster servers, Docker hosts."""
        c = self.cluster
        out: list[Node] = []
        for d in self.directors:
            nics = (
                self._nic(d.name, 0, "enp0s3", "external", d.external),
                self._nic(d.name, 1, "enp0s8", "internal", d.internal),
                self._nic(d.name, 2, "enp0s9", "heartbeat", d.heartbeat),
            )
            out.append(Node(d.name, ROLE_DIRECTOR, tuple(d.aliases), nics, d.resources.vcpus, d.resources.memory_mib, ()))
        nas = c.nas
        slaves = tuple(self._nic(nas.name, i, n, "internal", nas.address, bond="bond0") for i, n in enumerate(nas.bond.interfaces))
        out.append(Node(nas.name, ROLE_NAS, (), slaves, nas.resources.vcpus, nas.resources.memory_mib, (nas.raid.disk_size_mib,) * (nas.raid.disks + nas.raid.spare_disks)))
        g = c.gluster
        for s in g.servers:
            nics = (self._nic(s.name, 0, "enp0s3", "internal", s.address, dhcp=True),)
            out.append(Node(s.name, ROLE_GLUSTER, (), nics, s.resources.vcpus, s.resources.memory_mib, (g.brick_size_mib,) * g.bricks_per_server))
        for b in c.backends:
            nics = (self._nic(b.name, 0, "enp0s8", "internal", b.address, dhcp=True),)
            out.append(Node(b.name, ROLE_BACKEND, tuple(b.aliases), nics, b.resources.vcpus, b.resources.memory_mib, ()))
        return out

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def nodes_with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role]

    @property
    def dhcp_nodes(self) -> list[Node]:
        """Nodes whose address comes from a dnsmasq reservation (MAC -> IP)."""
        return [n for n in self.nodes if any(nic.dhcp for nic in n.nics)]

    # ------------------------------------------------------------------ storage
    def storage_names(self) -> list[str]:
        return ["nfs"] + [v.name for v in self.cluster.gluster.volumes]

    def storage_mountpoint(self, storage: str) -> str:
        """Mount point of a storage on the Docker hosts."""
        if storage == "nfs":
            return self.cluster.docker.nfs_mountpoint
        return next(v.mountpoint for v in self.cluster.gluster.volumes if v.name == storage)

    def docroot(self, storage: str) -> str:
        """Host directory bind-mounted into containers of this storage."""
        sub = self.cluster.docker.docroot_subdir
        if storage == "nfs":
            # NFSv4 pseudo-root: the export /raid appears under <mount>/raid.
            return f"{self.cluster.docker.nfs_mountpoint}{self.cluster.nas.raid.mountpoint}/{sub}"
        return f"{self.storage_mountpoint(storage)}/{sub}"

    def storages_in_use(self) -> list[str]:
        used = {c.docroot for _, c in self.containers()}
        return [s for s in self.storage_names() if s in used]

    # ------------------------------------------------------------------ containers
    def containers(self) -> list[tuple[Backend, Container]]:
        return [(b, c) for b in self.cluster.backends for c in b.containers]

    def service_members(self, service: Service) -> list[tuple[Backend, Container]]:
        """Containers behind a service, in host order."""
        if service.containers is not None:
            wanted = set(service.containers)
            return [(b, c) for b, c in self.containers() if c.name in wanted]
        return [(b, c) for b, c in self.containers() if c.docroot == service.storage]

    @staticmethod
    def backend_section(service: Service) -> str:
        return service.backend or f"{service.name}-servers"

    @staticmethod
    def persistence(service: Service) -> Optional[str]:
        if service.persistence is not None:
            return service.persistence
        return "cookie" if service.mode.value == "http" else None

    # ------------------------------------------------------------------ helpers
    def director_description(self, d: Director) -> str:
        return d.description or f"Nodo {d.name}"

    def network_of(self, name: str) -> ipaddress.IPv4Network:
        return getattr(self.cluster.networks, name).cidr

    # ------------------------------------------------------------------ access
    @property
    def host_addresses(self) -> list[ipaddress.IPv4Address]:
        """The hypervisor host as the nodes see it: the external gateway (libvirt's NAT address, the
        VirtualBox NAT network's forwards) and, on libvirt, its own internal address (Pulumi's SSH)."""
        out = []
        gateway = self.cluster.networks.external.gateway
        if gateway is not None:
            out.append(gateway)
        if self.config.hypervisor.value == "libvirt":
            out.append(self.libvirt_host_address)
        return out

    def admin_sources(self) -> list[ipaddress.IPv4Network]:
        """`cluster.adminNetworks` resolved to networks: `host`, network names, addresses or CIDRs."""
        return self.sources(self.cluster.admin_networks)

    def scraper_sources(self) -> list[ipaddress.IPv4Network]:
        """`cluster.nodeMetrics.scrapers` resolved to networks (as adminNetworks, plus `directors`)."""
        return self.sources(self.cluster.node_metrics.scrapers)

    def sources(self, entries: list[str]) -> list[ipaddress.IPv4Network]:
        """Source entries resolved to networks: `host`, `directors` (their internal addresses), network names, addresses or CIDRs."""
        out: list[ipaddress.IPv4Network] = []
        for entry in entries:
            if entry == "directors":
                out += [ipaddress.IPv4Network(d.internal) for d in self.cluster.directors]
            elif entry == "host":
                out += [ipaddress.IPv4Network(a) for a in self.host_addresses]
            elif entry in ("external", "internal", "heartbeat"):
                out.append(self.network_of(entry))
            else:
                out.append(ipaddress.IPv4Network(entry, strict=False))
        return sorted(set(out), key=lambda n: (int(n.network_address), n.prefixlen))

    def storage_clients(self, storage: str) -> list[Backend]:
        """Docker hosts that mount a storage (`nfs` or a Gluster volume): the only nodes allowed to."""
        return [b for b in self.cluster.backends if any(k.docroot == storage for k in b.containers)]

    # ------------------------------------------------------------------ platform
    @property
    def libvirt_host_address(self) -> ipaddress.IPv4Address:
        """The libvirt host's own address on the internal network, so Pulumi reaches internal-only nodes."""
        return self.config.libvirt.host_address or self.cluster.networks.internal.cidr.broadcast_address - 1

    @property
    def virtualbox_ssh_ports(self) -> dict[str, int]:
        """Host port of each node's SSH forward (only nodes on the NAT network can have one)."""
        base = self.config.virtualbox.ssh_base_port
        return {n.name: base + i for i, n in enumerate(self.nodes) if any(nic.network == "external" for nic in n.nics)}
