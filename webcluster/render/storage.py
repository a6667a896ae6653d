"""The NAS (bond, RAID, NFS export) and the Gluster pool (bricks, peers, volumes)."""

from __future__ import annotations

from dataclasses import dataclass

from ..topology import Topology
from . import gluster_tls
from .builder import NodeBuilder
from .firewall import address_list
from .plan import Step, StepRef

RAID_CONF = "/etc/ha-web-cluster/raid.conf"
VOLUMES_CONF = "/etc/ha-web-cluster/gluster/volumes.conf"
VOLUME_OPTIONS = "/etc/ha-web-cluster/gluster/volume-options.conf"
GLUSTERD_DROPIN = "/etc/systemd/system/glusterd.service.d/ha-web-cluster.conf"


# Upper bound of the move from the first-boot NIC to bond0 (45 s seen under software emulation).
BOND_SWITCH_TIMEOUT_S = 300


def add_nas(b: NodeBuilder) -> Step:
    """Returns the step after which the NFS export is served."""
    c = b.topo.cluster
    nas = c.nas
    bond_file = b.file(
        "/etc/network/interfaces.d/60-bond0",
        "nas/interfaces-bond0.j2",
        bond=nas.bond.model_copy(update={"mode": nas.bond.mode.value}),
        address=nas.address,
        prefix=c.networks.internal.cidr.prefixlen,
        gateway=c.vips.internal,
        domain=c.domain,
    )
    b.step("10-bond", f"bond0 ({nas.bond.mode.value})", "steps/nas/10-bond.sh.j2", files=[bond_file], mode=nas.bond.mode.value,
           slaves=nas.bond.interfaces, address=nas.address, switch_timeout_s=BOND_SWITCH_TIMEOUT_S)
    raid_conf = b.file(RAID_CONF, "nas/raid.conf.j2", raid=nas.raid, docroot_subdir=c.docker.docroot_subdir)
    b.step("20-raid", f"RAID{nas.raid.level} over {nas.raid.disks} disks on {nas.raid.mountpoint}", "steps/nas/20-raid.sh.j2", files=[raid_conf], fs=nas.raid.filesystem)
    clients = [str(x.address) for x in b.topo.storage_clients("nfs")]
    exports = b.file("/etc/exports", "nas/exports.j2", export_path=nas.raid.mountpoint, clients=clients, options=nas.export_options)
    return b.step("30-nfs", "NFS export of the RAID filesystem", "steps/nas/30-nfs.sh.j2", files=[exports])


@dataclass(frozen=True)
class VolumeView:
    name: str
    replica: int
    bricks: tuple[str, ...]
    options: tuple[tuple[str, str], ...]


def volume_views(topo: Topology) -> list[VolumeView]:
    """Volumes with their options; `auth.allow` (the pool and the Docker hosts that mount the
    volume) and, with TLS, `server.ssl`, `client.ssl` and `auth.ssl-allow`, unless the stack sets them."""
    g = topo.cluster.gluster
    views = []
    for v in g.volumes:
        allow = ",".join(address_list([s.address for s in g.servers] + [b.address for b in topo.storage_clients(v.name)]))
        options = tuple(sorted({"auth.allow": allow, **gluster_tls.volume_options(topo, v.name), **v.options}.items()))
        views.append(VolumeView(v.name, v.replica, tuple(f"{s.name}:/export/brick{v.brick}/data" for s in g.servers), options))
    return views


def add_gluster_server(b: NodeBuilder) -> Step:
    g = b.topo.cluster.gluster
    timeout = b.file(GLUSTERD_DROPIN, "gluster/glusterd-timeout.conf.j2", seconds=g.glusterd_start_timeout_s)
    tls = gluster_tls.add_files(b)  # in place before glusterd first starts
    return b.step("10-bricks", f"{g.bricks_per_server} XFS bricks and glusterd", "steps/gluster/10-bricks.sh.j2", files=[timeout, *tls], bricks=g.bricks_per_server)


def add_gluster_volumes(b: NodeBuilder, bricks_ready: list[StepRef]) -> Step:
    """On the first server: probe the peers, then create, start and tune the volumes."""
    topo = b.topo
    peers = [s.name for s in topo.cluster.gluster.servers if s.name != b.name]
    probe = b.step("20-peers", "peer probe of the other Gluster servers", "steps/gluster/20-peers.sh.j2", after=bricks_ready, peers=peers)
    views = volume_views(topo)
    vols = b.file(VOLUMES_CONF, "gluster/volumes.conf.j2", volumes=views)
    opts = b.file(VOLUME_OPTIONS, "gluster/volume-options.conf.j2", volumes=views)
    names = ", ".join(v.name for v in views)
    return b.step("30-volumes", f"create and start volumes {names}", "steps/gluster/30-volumes.sh.j2", files=[vols, opts], after=[probe.ref])
