"""The NAS (bond, RAID, NFS export) and the Gluster pool (bricks, peers, volumes)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..model import Raid
from ..topology import Topology
from . import gluster_tls
from .builder import NodeBuilder
from .firewall import address_list
from .plan import Step, StepRef

RAID_CONF = "/etc/ha-web-cluster/raid.conf"
# mdadm's PROGRAM: logs every RAID event to syslog under RAID_ALERT_TAG, then runs the alert command.
RAID_ALERT = "/usr/local/sbin/hawc-raid-alert"
RAID_ALERT_TAG = "hawc-raid"
RAID_ALERT_TIMEOUT_S = 60  # mdadm's monitor waits for its PROGRAM: a hung command must not stop it
MDMONITOR_DROPIN = "/etc/systemd/system/mdmonitor.service.d/ha-web-cluster.conf"
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
    b.step("20-raid", _raid_description(nas.raid), "steps/nas/20-raid.sh.j2", files=_raid_files(b), fs=nas.raid.filesystem,
           raid_conf=RAID_CONF, dropin=MDMONITOR_DROPIN)
    clients = [str(x.address) for x in b.topo.storage_clients("nfs")]
    exports = b.file("/etc/exports", "nas/exports.j2", export_path=nas.raid.mountpoint, clients=clients, options=nas.export_options)
    return b.step("30-nfs", "NFS export of the RAID filesystem", "steps/nas/30-nfs.sh.j2", files=[exports])


def _raid_description(raid: Raid) -> str:
    spares = f" + {raid.spare_disks} spare{'s' if raid.spare_disks > 1 else ''}" if raid.spare_disks else ""
    return f"RAID{raid.level} over {raid.disks} disks{spares} on {raid.mountpoint}, monitored by mdadm"


def _raid_files(b: NodeBuilder) -> list[str]:
    """The array's settings, and its monitoring: mdadm's PROGRAM and the monitor's unit drop-in."""
    c = b.topo.cluster
    raid = c.nas.raid
    alert = b.file(RAID_ALERT, "nas/raid-alert.sh.j2", mode=0o755, script=RAID_ALERT, tag=RAID_ALERT_TAG,
                   command=shlex.quote(raid.alert_command or ""), timeout_s=RAID_ALERT_TIMEOUT_S)
    dropin = b.file(MDMONITOR_DROPIN, "nas/mdmonitor.conf.j2")
    conf = b.file(RAID_CONF, "nas/raid.conf.j2", raid=raid, docroot_subdir=c.docker.docroot_subdir, program=RAID_ALERT)
    return [alert, dropin, conf]


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
    return b.step("10-bricks", f"{g.bricks_per_server} XFS bricks and glusterd", "steps/gluster/10-bricks.sh.j2", files=[timeout, *tls], bricks=g.bricks_per_server, dropin=timeout)


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
