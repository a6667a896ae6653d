"""Bridges, NICs and addresses of the lab, and the cable cuts of the failure scenarios."""

from __future__ import annotations

import ipaddress
from typing import Sequence

from .. import netns
from ..topology import Node, Topology
from .state import BRIDGES, CLIENT, HYPERVISOR, LINK_PREFIX, LabState, netns_name, outside_link, sandbox


def create_bridges() -> None:
    for bridge in BRIDGES.values():
        netns.add_bridge(bridge)
        # Keep the host's firewall out of the lab's bridged traffic (no host sysctl touched).
        netns.ip("link", "set", bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0")


def wire_node(state: LabState, topo: Topology, index: int, node: Node) -> None:
    """The node's NICs, named and addressed as in the model; DHCP NICs get only their MAC here."""
    sb = sandbox(node.name)
    links = []
    for i, nic in enumerate(node.nics):
        outside = outside_link(index, i)
        netns.veth_into(sb.name, nic.name, outside, bridge=BRIDGES[nic.network], mac=nic.mac)
        links.append(outside)
        if nic.dhcp:
            continue
        if nic.bond and i > 0:
            continue  # no bonding module on this kernel: the first slave carries the NAS address
        netns.add_address(sb.name, nic.name, f"{nic.address}/{nic.prefix}")
    gateway = _default_gateway(topo, node)
    if gateway:
        netns.ip("-n", sb.name, "route", "replace", "default", "via", gateway, check=False)
    state.links[node.name] = links


def _default_gateway(topo: Topology, node: Node) -> str | None:
    c = topo.cluster
    if node.role == "director":
        return str(c.networks.external.gateway) if c.networks.external.gateway else None
    if not any(n.dhcp for n in node.nics):
        return str(c.vips.internal)
    return None  # DHCP gives the router


def client_address(topo: Topology) -> ipaddress.IPv4Address:
    """The highest free address of the external network: the seed's client sits there."""
    c = topo.cluster
    net = c.networks.external.cidr
    used = {c.vips.external, c.networks.external.gateway} | {d.external for d in c.directors}
    for host in reversed(list(net.hosts())):
        if host not in used:
            return host
    raise RuntimeError(f"no free address for the client in {net}")


CLIENT_NIC = "eth0"  # the client's one NIC, on the external network


def create_client(state: LabState, topo: Topology) -> None:
    ns = netns_name(CLIENT)
    netns.add_netns(ns)
    addr = client_address(topo)
    netns.veth_into(ns, CLIENT_NIC, "hwl-client", bridge=BRIDGES["external"])
    netns.add_address(ns, CLIENT_NIC, f"{addr}/{topo.cluster.networks.external.cidr.prefixlen}")
    state.client_address = str(addr)
    state.links[CLIENT] = ["hwl-client"]


def create_host(state: LabState, topo: Topology) -> None:
    """A namespace with the hypervisor host's addresses, as the e2e network plays it: the external
    gateway and libvirt's host address on the internal network. The firewalls let it (and not the
    client) reach the stats page; it does not forward."""
    ns = netns_name(HYPERVISOR)
    netns.add_netns(ns)
    links = []
    gateway = topo.cluster.networks.external.gateway
    wanted = [("external", "eth0", gateway), ("internal", "eth1", topo.libvirt_host_address)]
    for network, nic, address in wanted:
        if address is None:
            continue
        outside = f"hwl-hv{nic[-1]}"
        netns.veth_into(ns, nic, outside, bridge=BRIDGES[network])
        netns.add_address(ns, nic, f"{address}/{topo.network_of(network).prefixlen}")
        links.append(outside)
    state.links[HYPERVISOR] = links


def node_links(state: LabState, topo: Topology, node: str, networks: Sequence[str] | None = None) -> list[str]:
    """The root-namespace ends of the node's NICs on these networks (all of its NICs for None)."""
    nics = topo.node(node).nics if node != CLIENT else []
    links = state.links.get(node, [])
    if networks is None:
        return list(links)
    if node == CLIENT:
        return list(links) if "external" in networks else []
    return [link for link, nic in zip(links, nics) if nic.network in networks]


def set_links(state: LabState, node: str, up: bool, links: Sequence[str] | None = None) -> None:
    """Unplug (or plug back) cables of a node, every one by default: the root-namespace ends go
    down, the node sees no carrier. The one way the lab cuts a link (scenarios, `lab cut`, the power switch)."""
    chosen = state.links.get(node, []) if links is None else links
    batch = "".join(f"link set {link} {'up' if up else 'down'}\n" for link in chosen)
    # One netlink batch: all cables go at once, as when a machine dies, not one by one.
    netns.run(["ip", "-batch", "-"], input=batch)


def links_down() -> set[str]:
    """The lab's root-namespace link ends whose cable is out (one `ip link` for all of them)."""
    out = netns.run(["ip", "-o", "link", "show"], check=False).stdout
    down = set()
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 2 and parts[1].strip().startswith(LINK_PREFIX) and "state DOWN" in parts[2]:
            down.add(parts[1].strip().split("@")[0])
    return down


def set_netem(links: Sequence[str], delay_ms: float = 0, loss_pct: float = 0) -> None:
    """Delay and drop packets leaving the bridge towards these NICs (tc netem), or clear that (both 0).
    On a bridge every packet leaves by one port per receiver, so a hop is delayed once."""
    for link in links:
        if delay_ms or loss_pct:
            netns.run(["tc", "qdisc", "replace", "dev", link, "root", "netem", "delay", f"{delay_ms:g}ms", "loss", f"{loss_pct:g}%"])
        else:
            netns.run(["tc", "qdisc", "del", "dev", link, "root"], check=False)


def addresses(node: str) -> list[str]:
    out = netns.run(["ip", "-n", netns_name(node), "-o", "-4", "addr", "show"], check=False).stdout
    return [line.split()[3] for line in out.splitlines() if " lo " not in line]


def holds(node: str, address: str) -> bool:
    return any(a.split("/")[0] == address for a in addresses(node))
