"""The hypervisor switch's small interface: machines, networks, and SSH to each machine.

Tier components only see :class:`Platform` and :class:`Machine`; which package creates
the VM (pulumi-libvirt, or VBoxManage through pulumi-command) is decided in
:func:`components.hypervisor.platform_class`, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Mapping, Optional, Protocol, Sequence

import pulumi

from webcluster.model import StackConfig
from webcluster.topology import Node

from ..command import remote
from ..secrets import SshAccess

# Root disk of every VM: the cloud image grows into it on first boot (Docker images need room).
ROOT_DISK_MIB = 10 * 1024
# SSH comes up a while after the VM starts (cloud-init's first boot, TCG emulation): keep dialling.
DIAL_ATTEMPTS = 60
DIAL_TIMEOUT_S = 10

CloudInit = Mapping[str, pulumi.Input[str]]  # "user-data" | "meta-data" | "network-config" -> text


@dataclass(frozen=True)
class Machine:
    """A VM as the configuration steps see it."""

    name: str
    ready: tuple[pulumi.Resource, ...]  # steps wait for these (the VM, and the SSH path to it)
    instance_id: pulumi.Output[str]  # changes when the VM is replaced: its steps must run again
    connection: remote.ConnectionArgs


class Platform(Protocol):
    """Machines with their disks and NICs in model order, on the cluster's networks, reachable over SSH."""

    def machine(self, node: Node, cloud_init: CloudInit, parent: pulumi.Resource, boot_after: Sequence[Awaitable[pulumi.Resource]] = ()) -> Machine:
        """Declare the node's VM (children of a per-node component under `parent`); it starts after `boot_after`."""

    def outputs(self) -> dict[str, Any]:
        """Stack outputs only this hypervisor has (e.g. host-forwarded URLs)."""


class PlatformClass(Protocol):
    """The hypervisor's platform constructor (its config rules live in webcluster.validation)."""

    def __call__(self, name: str, config: StackConfig, ssh: SshAccess, opts: Optional[pulumi.ResourceOptions] = None) -> Platform: ...


class NodeVm(pulumi.ComponentResource):
    """Groups one node's hypervisor resources (disks, seed, VM) under its tier."""

    def __init__(self, node: Node, parent: pulumi.Resource):
        super().__init__("ha-web-cluster:compute:Vm", node.name, None, pulumi.ResourceOptions(parent=parent))
        self.node = node

    def finish(self, machine: Machine) -> Machine:
        self.register_outputs({"name": machine.name, "instanceId": machine.instance_id})
        return machine


def connection(host: str, ssh: SshAccess, port: int = 22, proxy: Optional[remote.ProxyConnectionArgs] = None) -> remote.ConnectionArgs:
    """SSH settings for one node; without a private key the SSH agent (SSH_AUTH_SOCK) is used."""
    return remote.ConnectionArgs(
        host=host,
        port=port,
        user=ssh.user,
        private_key=ssh.private_key,
        proxy=proxy,
        dial_error_limit=DIAL_ATTEMPTS,
        per_dial_timeout=DIAL_TIMEOUT_S,
    )


def proxy(host: str, port: int, user: str, private_key: Optional[pulumi.Output[str]] = None) -> remote.ProxyConnectionArgs:
    """A bastion hop (a director, or a remote hypervisor host reached with the SSH agent)."""
    return remote.ProxyConnectionArgs(
        host=host, port=port, user=user, private_key=private_key, dial_error_limit=DIAL_ATTEMPTS, per_dial_timeout=DIAL_TIMEOUT_S
    )
