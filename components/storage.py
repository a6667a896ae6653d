"""The storage tiers: the NAS (RAID, filesystem, bond, NFS export) and the Gluster pool (bricks, peers, volumes)."""

from __future__ import annotations

from typing import Any

from webcluster.topology import ROLE_GLUSTER, ROLE_NAS, Topology

from .tier import Tier


class NasServer(Tier):
    """The NFS server: its VM carries the RAID member disks."""

    TYPE = "ha-web-cluster:storage:NasServer"
    ROLES = (ROLE_NAS,)

    def describe(self, topology: Topology) -> dict[str, Any]:
        nas = topology.cluster.nas
        self.address = str(nas.address)
        self.export = f"{nas.name}:{nas.raid.mountpoint}"
        self.raid = f"RAID{nas.raid.level} over {nas.raid.disks} x {nas.raid.disk_size_mib} MiB"
        return {"address": self.address, "export": self.export, "raid": self.raid}


class GlusterPool(Tier):
    """The Gluster servers: their VMs carry the brick disks; the first one creates the volumes."""

    TYPE = "ha-web-cluster:storage:GlusterPool"
    ROLES = (ROLE_GLUSTER,)

    def describe(self, topology: Topology) -> dict[str, Any]:
        g = topology.cluster.gluster
        self.servers = [s.name for s in g.servers]
        self.volumes = {v.name: f"replica {v.replica}" if v.replica > 1 else "distribute" for v in g.volumes}
        return {"servers": self.servers, "volumes": self.volumes}
