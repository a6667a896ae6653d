"""cloud-init NoCloud documents per node: user-data, meta-data, network-config."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from ..topology import ROLE_DIRECTOR, ROLE_NAS, Node, Topology
from . import placeholders
from .templating import render


@dataclass(frozen=True)
class NicView:
    name: str
    mac: str
    dhcp: bool
    address: Optional[str]
    prefix: int
    gateway: Optional[str]
    nameservers: tuple[str, ...]


def _nic_views(topo: Topology, node: Node) -> list[NicView]:
    c = topo.cluster
    views = []
    for nic in node.nics:
        gateway = None
        nameservers: tuple[str, ...] = ()
        if node.role == ROLE_DIRECTOR and nic.network == "external" and c.networks.external.gateway:
            gateway = str(c.networks.external.gateway)
            nameservers = (gateway,)
        address = None if nic.dhcp else str(nic.address)
        if node.role == ROLE_NAS and nic.bond:
            # First boot: the NAS comes up on its first NIC; the other slaves are only named (by MAC),
            # and the 10-bond step moves the address to bond0.
            if nic.name != node.nics[0].name:
                address = None
            else:
                gateway, nameservers = str(c.vips.internal), (str(c.vips.internal),)
        views.append(NicView(nic.name, nic.mac, nic.dhcp, address, nic.prefix, gateway, nameservers))
    return views


def cloud_init_documents(topo: Topology, node: Node) -> dict[str, str]:
    """The three NoCloud files; the instance id changes when network-config or user-data does."""
    cfg = topo.config
    ssh_key = cfg.ssh_public_key or placeholders.value("sshPublicKey")
    user_data = render("cloud-init/user-data.j2", node=node, domain=topo.cluster.domain, ssh_user=cfg.ssh_user, ssh_public_key=ssh_key)
    network = render("cloud-init/network-config.j2", nics=_nic_views(topo, node), domain=topo.cluster.domain)
    instance_hash = hashlib.sha256((user_data + network).encode()).hexdigest()[:12]
    meta = render("cloud-init/meta-data.j2", node=node, instance_hash=instance_hash)
    return {"user-data": user_data, "meta-data": meta, "network-config": network}
