"""VirtualBox through VBoxManage, each object a `command.local.Command` with its delete.

No usable Pulumi provider exists for VirtualBox, so this platform runs VBoxManage on the
machine that runs Pulumi: the base image converted to VDI once, per node a cloned root
disk, blank data disks and a cloud-init seed ISO (built in Python), then a headless VM.
The external network is the seed's NAT network with its port forwards; the internal and
heartbeat networks are VirtualBox internal networks, which exist as soon as a NIC names
them. Only directors sit on the NAT network, so Pulumi reaches them through per-node SSH
forwards on localhost (``virtualbox.sshBasePort`` + node index) and every other node
through the master director as a bastion.

Any change to a command's text replaces it (delete, then create): VBoxManage objects
cannot be edited in place by re-running their create command. Any other input change
(stdin, the interpreter) re-runs create in place, and a failed create is retried on what it
left, so every create starts by looking at what exists (see vboxmanage.py). Scripts run
under /bin/sh, named explicitly (vboxmanage.INTERPRETER).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Awaitable, Optional, Sequence

import pulumi

from webcluster.model import StackConfig
from webcluster.topology import Node, Topology

from ..command import local, remote
from ..secrets import SshAccess
from . import vboxmanage as vbm
from .base import ROOT_DISK_MIB, CloudInit, Machine, NodeVm, connection, proxy
from .iso9660 import build_iso

INTERNAL_NETWORKS = {"internal": "hawc-internal", "heartbeat": "hawc-heartbeat"}
LOCALHOST = "127.0.0.1"


def forwarded_urls(config: StackConfig) -> dict[str, str]:
    """What each host port forward serves, as a URL on the VirtualBox host."""
    stats = config.cluster.haproxy.stats
    return {f.name: f"http://localhost:{f.host_port}" + (stats.uri if f.guest_port == stats.port else "/") for f in config.virtualbox.port_forwards}


def forward_bind(config: StackConfig, guest_port: int) -> str:
    """Host address a forward listens on: every one for the services; only the host's loopback for the
    stats page, since the guests see every forwarded connection come from the NAT network's gateway,
    which adminNetworks admits (the host's LAN would otherwise reach the stats page through it)."""
    return LOCALHOST if guest_port == config.cluster.haproxy.stats.port else ""


class VirtualBoxPlatform(pulumi.ComponentResource):
    """The NAT network, its forwards and the base VDI; one VM per node."""

    def __init__(self, name: str, config: StackConfig, ssh: SshAccess, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ha-web-cluster:platform:VirtualBox", name, None, opts)
        self._config = config
        self._ssh = ssh
        vb = config.virtualbox
        self._folder = vb.base_folder
        self._base_vdi = vbm.join(self._folder, "images", "base.vdi")
        qcow2 = vbm.join(self._folder, "images", "base.qcow2")
        self._base = self._command("base-image", vbm.base_image(config.base_image_url, qcow2, self._base_vdi), self)
        ext = config.cluster.networks.external
        self._nat = self._command("nat-network", vbm.nat_network(vb.nat_network, str(ext.cidr)), self)
        vip = str(config.cluster.vips.external)
        self._forwards = [
            self._command(f"forward-{f.name}", vbm.port_forward(vb.nat_network, f.name, forward_bind(config, f.guest_port), f.host_port, vip, f.guest_port), self, [self._nat])
            for f in vb.port_forwards
        ]
        topo = Topology(config)
        self._ssh_ports = Topology(config).virtualbox_ssh_ports
        self._ssh_forwards = {
            node: self._command(
                f"forward-ssh-{node}", vbm.port_forward(vb.nat_network, f"ssh-{node}", LOCALHOST, port, str(_external(topo.node(node))), 22), self, [self._nat]
            )
            for node, port in self._ssh_ports.items()
        }
        self._bastion = topo.master.name
        self.register_outputs({"natNetwork": vb.nat_network, "sshPorts": self._ssh_ports})

    def _command(
        self,
        name: str,
        script: vbm.Script,
        parent: pulumi.Resource,
        depends_on: Sequence[pulumi.Resource] = (),
        stdin: Optional[pulumi.Input[str]] = None,
        triggers: Sequence[pulumi.Input[Any]] = (),
    ) -> local.Command:
        """A VBoxManage object: a changed command text replaces it; a changed stdin re-runs create in place."""
        digest = hashlib.sha256(script.create.encode()).hexdigest()
        return local.Command(
            name,
            create=script.create,
            delete=script.delete,
            stdin=stdin,
            triggers=[digest, *triggers],
            add_previous_output_in_env=False,
            interpreter=vbm.INTERPRETER,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), delete_before_replace=True),
        )

    def machine(self, node: Node, cloud_init: CloudInit, parent: pulumi.Resource, boot_after: Sequence[Awaitable[pulumi.Resource]] = ()) -> Machine:
        vm = NodeVm(node, parent)
        disks_dir = vbm.join(self._folder, "disks")
        root_path = vbm.join(disks_dir, f"{node.name}-root.vdi")
        root = self._command(f"{node.name}-root", vbm.clone_disk(self._base_vdi, root_path, ROOT_DISK_MIB), vm, [self._base], triggers=[self._base.id])
        data_paths = [vbm.join(disks_dir, f"{node.name}-data{i}.vdi") for i in range(1, len(node.data_disks_mib) + 1)]
        data = [self._command(f"{node.name}-data{i}", vbm.blank_disk(p, size), vm) for i, (p, size) in enumerate(zip(data_paths, node.data_disks_mib), start=1)]
        seed_path = vbm.join(disks_dir, f"{node.name}-seed.iso")
        iso = pulumi.Output.all(**{k: cloud_init[k] for k in ("user-data", "meta-data", "network-config")}).apply(
            lambda docs: base64.b64encode(build_iso(docs)).decode()
        )
        seed = self._command(f"{node.name}-seed", vbm.seed_iso(seed_path), vm, stdin=iso)
        nics = [vbm.nic_options(i, nic.mac, *self._attachment(nic.network)) for i, nic in enumerate(node.nics)]
        media = [root, *data, seed]
        machine = self._command(
            f"{node.name}-vm",
            vbm.vm(node, self._folder, nics, root_path, data_paths, seed_path),
            vm,
            [self._nat, *media, *boot_after],
            triggers=[m.id for m in media],
        )
        ssh_path = self._ssh_forwards[node.name if node.name in self._ssh_forwards else self._bastion]
        return vm.finish(Machine(node.name, (machine, ssh_path), machine.id, self._connection(node)))

    def _attachment(self, network: str) -> tuple[str, str]:
        if network == "external":
            return "natnetwork", self._config.virtualbox.nat_network
        return "intnet", INTERNAL_NETWORKS[network]

    def _connection(self, node: Node) -> remote.ConnectionArgs:
        if node.name in self._ssh_ports:
            return connection(LOCALHOST, self._ssh, port=self._ssh_ports[node.name])
        hop = proxy(LOCALHOST, self._ssh_ports[self._bastion], self._ssh.user, self._ssh.private_key)
        return connection(str(node.internal_address), self._ssh, proxy=hop)

    def outputs(self) -> dict[str, Any]:
        return {"forwardedUrls": forwarded_urls(self._config), "sshPorts": self._ssh_ports}


def _external(node: Node):
    return next(nic.address for nic in node.nics if nic.network == "external")
