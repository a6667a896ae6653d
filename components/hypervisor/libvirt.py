"""libvirt through pulumi-libvirt: the one module that imports it (so the provider can be swapped).

Per hypervisor host in use: a provider, a storage pool, the base image and the networks
its nodes sit on. Per node: a copy-on-write root volume, blank data disks, a cloud-init
disk and a domain with a serial console. Pulumi reaches every node on its internal
address through the default host's own address on the internal network
(``libvirt.hostAddress``, by default the last usable one), hopping through that host
over SSH when ``libvirt.uri`` is remote. Nodes placed on other hosts are reached the same
way, so those hosts' networks must be joined to the default host's at layer 2.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any, Awaitable, Optional, Sequence
from urllib.parse import urlparse

import pulumi
import pulumi_libvirt as libvirt

from webcluster.model import StackConfig
from webcluster.topology import Node, Topology
from webcluster.validation import SSH_PORT

from ..secrets import SshAccess
from .base import ROOT_DISK_MIB, CloudInit, Machine, NodeVm, connection, proxy

DEFAULT_HOST = "default"
# terraform-provider-libvirt v0.8.1 updates these in place (libvirt/resource_libvirt_domain.go:
# `network_interface` and `cloudinit` have no ForceNew): a replaced Network would leave running
# guests on its deleted bridge, and a new seed would only be read at the next boot, with no step
# re-run. Replacing the domain instead boots it on the new network with the new seed (a new
# cloud-init instance-id, so the new addresses apply), and its new id re-runs its steps.
DOMAIN_REPLACE_ON = ["networkInterfaces[*].networkId", "cloudinit"]
POOL_NAME = "ha-web-cluster"
MIB = 1024 * 1024


def placement(config: StackConfig) -> dict[str, str]:
    """Node -> hypervisor host name (DEFAULT_HOST for `libvirt.uri`)."""
    return {n.name: config.libvirt.placement.get(n.name, DEFAULT_HOST) for n in Topology(config).nodes}


def host_uri(config: StackConfig, host: str) -> str:
    return config.libvirt.uri if host == DEFAULT_HOST else config.libvirt.hosts[host]


def ssh_hop(uri: str) -> Optional[tuple[str, int, str]]:
    """(host, port, user) of a `qemu+ssh://` URI - the hop to a remote hypervisor host - else None.

    The same host, port and user the libvirt provider dials: validation (`libvirt.uri`) admits
    only `+ssh` URIs with a user and without a port, so the port is always 22.
    """
    parsed = urlparse(uri)
    if not parsed.scheme.endswith("+ssh") or not parsed.hostname:
        return None
    return parsed.hostname, SSH_PORT, parsed.username or ""


def host_address_xslt(address: str) -> str:
    """libvirt gives the host the network's first address; the cluster uses that one (cluster1), so move it."""
    return _identity_stylesheet(f'  <xsl:template match="/network/ip/@address"><xsl:attribute name="address">{address}</xsl:attribute></xsl:template>\n')


FIRST_NIC_SLOT = 0x10  # clear of what libvirt auto-places on i440fx (host bridge, PIIX3, video at 0x02)
LAST_NIC_SLOT = 0x1F


def nic_slots(nic_names: Sequence[str]) -> list[int]:
    """PCI slots (bus 0) for a node's NICs, in order, whose kernel names cannot collide with a target name.

    udev names a virtio NIC in slot N `ensN` with the alternative name `enp0sN`, and the
    kernel refuses to rename a NIC to any existing name, its own altname included
    ("RTNETLINK answers: File exists"). Left to libvirt, the first NIC lands in slot 3, so
    cloud-init could never rename it to the seed's `enp0s3`. Found by the e2e run.
    """
    taken = set(nic_names)
    free = [s for s in range(FIRST_NIC_SLOT, LAST_NIC_SLOT + 1) if f"enp0s{s}" not in taken and f"ens{s}" not in taken]
    if len(free) < len(nic_names):
        raise ValueError(f"no free PCI slots for NICs {', '.join(nic_names)}")
    return free[: len(nic_names)]


def nic_address_xslt(slots: Sequence[int]) -> str:
    """Give the domain's interfaces (in declared order) fixed PCI addresses; the provider has no field for it."""
    templates = "".join(
        f'  <xsl:template match="/domain/devices/interface[{i}]"><xsl:copy><xsl:apply-templates select="node()[not(self::address)]|@*"/>'
        f"<address type=\"pci\" domain=\"0x0000\" bus=\"0x00\" slot=\"0x{slot:02x}\" function=\"0x0\"/></xsl:copy></xsl:template>\n"
        for i, slot in enumerate(slots, start=1)
    )
    return _identity_stylesheet(templates)


def _identity_stylesheet(templates: str) -> str:
    """An XSLT that copies the document unchanged except where `templates` match."""
    return (
        '<?xml version="1.0"?>\n'
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
        '  <xsl:output omit-xml-declaration="yes" indent="yes"/>\n'
        '  <xsl:template match="node()|@*"><xsl:copy><xsl:apply-templates select="node()|@*"/></xsl:copy></xsl:template>\n'
        f"{templates}"
        "</xsl:stylesheet>\n"
    )


def network_args(config: StackConfig, network: str, is_default_host: bool) -> libvirt.NetworkArgs:
    """external: NAT through the host (its address = the gateway); internal, heartbeat: isolated, no DHCP."""
    net = getattr(config.cluster.networks, network)
    host_ip: Optional[str] = None
    if network == "external" and net.gateway is not None:
        host_ip = str(net.gateway)
    elif network == "internal" and is_default_host:
        host_ip = str(Topology(config).libvirt_host_address)
    return libvirt.NetworkArgs(
        name=f"hawc-{network}",
        mode="nat" if network == "external" and host_ip else "none",
        addresses=[str(net.cidr)] if host_ip else None,
        dhcp=libvirt.NetworkDhcpArgs(enabled=False),  # the master director's dnsmasq serves DHCP
        dns=libvirt.NetworkDnsArgs(enabled=network == "external" and host_ip is not None),
        autostart=True,
        xml=libvirt.NetworkXmlArgs(xslt=host_address_xslt(host_ip)) if host_ip else None,
    )


@dataclass(frozen=True)
class _Host:
    provider: libvirt.Provider
    pool: libvirt.Pool
    base_image: libvirt.Volume
    networks: dict[str, libvirt.Network]


class LibvirtPlatform(pulumi.ComponentResource):
    """Pools, base images and networks per hypervisor host; one VM per node."""

    def __init__(self, name: str, config: StackConfig, ssh: SshAccess, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ha-web-cluster:platform:Libvirt", name, None, opts)
        self._config = config
        self._ssh = ssh
        self._placement = placement(config)
        hop = ssh_hop(config.libvirt.uri)
        self._proxy = proxy(*hop) if hop else None
        topo = Topology(config)
        self._hosts: dict[str, _Host] = {}
        for host in sorted(set(self._placement.values())):
            networks = sorted({nic.network for n in topo.nodes if self._placement[n.name] == host for nic in n.nics})
            self._hosts[host] = self._declare_host(host, networks)
        self.register_outputs({"hosts": {h: host_uri(config, h) for h in self._hosts}, "hostAddress": str(Topology(config).libvirt_host_address)})

    def _declare_host(self, host: str, networks: list[str]) -> _Host:
        prefix = "" if host == DEFAULT_HOST else f"{host}-"
        provider = libvirt.Provider(f"libvirt-{host}", uri=host_uri(self._config, host), opts=pulumi.ResourceOptions(parent=self))
        opts = pulumi.ResourceOptions(parent=self, provider=provider, delete_before_replace=True)
        pool = libvirt.Pool(f"{prefix}pool", name=POOL_NAME, type="dir", target=libvirt.PoolTargetArgs(path=self._config.libvirt.pool_path), opts=opts)
        url = self._config.base_image_url
        base = libvirt.Volume(f"{prefix}base-image", name=posixpath.basename(urlparse(url).path) or "base.qcow2", pool=pool.name, source=url, format="qcow2", opts=opts)
        nets = {n: libvirt.Network(f"{prefix}network-{n}", network_args(self._config, n, host == DEFAULT_HOST), opts=opts) for n in networks}
        return _Host(provider, pool, base, nets)

    def machine(self, node: Node, cloud_init: CloudInit, parent: pulumi.Resource, boot_after: Sequence[Awaitable[pulumi.Resource]] = ()) -> Machine:
        host = self._hosts[self._placement[node.name]]
        vm = NodeVm(node, parent)
        opts = pulumi.ResourceOptions(parent=vm, provider=host.provider, delete_before_replace=True)
        root = libvirt.Volume(f"{node.name}-root", name=f"{node.name}-root.qcow2", pool=host.pool.name, base_volume_id=host.base_image.id, size=ROOT_DISK_MIB * MIB, format="qcow2", opts=opts)
        data = [
            libvirt.Volume(f"{node.name}-data{i}", name=f"{node.name}-data{i}.qcow2", pool=host.pool.name, size=size * MIB, format="qcow2", opts=opts)
            for i, size in enumerate(node.data_disks_mib, start=1)
        ]
        seed = libvirt.CloudInitDisk(
            f"{node.name}-seed",
            name=f"{node.name}-seed.iso",
            pool=host.pool.name,
            user_data=cloud_init["user-data"],
            meta_data=cloud_init["meta-data"],
            network_config=cloud_init["network-config"],
            opts=opts,
        )
        domain = libvirt.Domain(
            node.name,
            name=node.name,
            type=self._config.libvirt.domain_type,
            memory=node.memory_mib,
            vcpu=node.vcpus,
            autostart=True,
            qemu_agent=False,
            disks=[libvirt.DomainDiskArgs(volume_id=v.id) for v in (root, *data)],
            network_interfaces=[
                libvirt.DomainNetworkInterfaceArgs(network_id=host.networks[nic.network].id, mac=nic.mac, wait_for_lease=False) for nic in node.nics
            ],
            cloudinit=seed.id,
            xml=libvirt.DomainXmlArgs(xslt=nic_address_xslt(nic_slots([nic.name for nic in node.nics]))),
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_type="serial", target_port="0")],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(boot_after), replace_on_changes=DOMAIN_REPLACE_ON)),
        )
        return vm.finish(Machine(node.name, (domain,), domain.id, connection(str(node.internal_address), self._ssh, proxy=self._proxy)))

    def outputs(self) -> dict[str, Any]:
        return {"libvirtHostAddress": str(Topology(self._config).libvirt_host_address)}
