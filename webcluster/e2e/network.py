"""The guests' networks: one network namespace holding a bridge per cluster network.

The namespace plays the libvirt host: it has the external gateway address (libvirt's NAT
network gives the host the gateway) and ``libvirtHostAddress`` on the internal network,
which is how the program's SSH connections reach every node. It has no route out, so
guest traffic never leaves it. QEMU runs inside it, so every tap device lives there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from .. import netns
from .shell import PREFIX, run

NETNS = f"{PREFIX}-net"


def bridge_name(network: str) -> str:
    return f"{PREFIX}-{network}"[:15]


def tap_name(guest_index: int, nic_index: int) -> str:
    return f"{PREFIX}-{guest_index}-{nic_index}"


def ns(*cmd: str) -> None:
    run(list(cmd), timeout=30, netns=NETNS)


@dataclass(frozen=True)
class HostSide:
    """The namespace's own address per network (None: it only bridges that network)."""

    addresses: Mapping[str, Optional[str]]  # network -> "a.b.c.d/prefix"


def create(host: HostSide) -> None:
    """Namespace and bridges (idempotent: an existing namespace is removed first)."""
    destroy()
    netns.add_netns(NETNS)
    for network, address in host.addresses.items():
        br = bridge_name(network)
        ns("ip", "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
        ns("ip", "link", "set", br, "up")
        if address:
            netns.add_address(NETNS, br, address)


def add_tap(tap: str, network: str) -> None:
    """A tap for one guest NIC, on its network's bridge; QEMU opens it by name."""
    run(["ip", "link", "del", tap], timeout=10, netns=NETNS, check=False)
    ns("ip", "tuntap", "add", "dev", tap, "mode", "tap")
    ns("ip", "link", "set", tap, "master", bridge_name(network))
    ns("ip", "link", "set", tap, "up")


def destroy() -> None:
    """Remove the namespace and everything in it (bridges, taps); harmless when absent."""
    netns.del_netns(NETNS)
