"""Corosync + Pacemaker on the directors (haStack: pacemaker), corosync-qnetd on the quorum arbitrator.

The seed switched fencing off and ignored quorum, which is how split brains happen.
This stack keeps what users see (the VIPs survive the loss of the master, then of
standby1, and come back to the master) and makes it safe:

- Quorum: votequorum plus a quorum device. corosync-qnetd runs on a node that is not a
  director (the NAS by default) and gives its votes (directors - 1, algorithm `lms`) to
  the partition it can see, so a last director that still reaches it stays quorate
  without `no-quorum-policy=ignore`. While the arbitrator is down, quorum needs every
  director; a further failure stops the VIPs instead of splitting them. No `wait_for_all`
  with the device: votequorum re-arms it at every moment without quorum (there is one at
  each join, while the device votes again) and then waits for every director, so a
  director coming back while another is down would stop the VIPs everywhere. Without an
  arbitrator it stays (a majority of directors decides; two_node implies it).
- Fencing: one fence device per director (fence_virsh or fence_vbox), never run on the
  director it fences; it logs in with an SSH key from a root-only file (`identity_file`;
  see :mod:`.fence` for the host's side), so the CIB holds no secret.
- The quorum device's TLS: qnetd trusts client certificates of its own CA. Instead of
  copying a CA certificate, a request and a signed certificate between nodes (what
  corosync-qdevice-net-certutil -Q does over root SSH), every node derives the same CA
  key from the `qdeviceSeed` secret and issues itself the certificate it needs. So each
  step runs on one node, over the same SSH connection as every other step.
- The CIB is a crm shell file loaded on the master once every director is in the
  cluster (`crm configure load update`: applying it twice changes nothing, a changed file
  is applied to the running cluster).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from ..model import Director
from ..topology import Topology
from . import fence, placeholders, serving
from .builder import NodeBuilder
from .node_metrics import VIP_ALERT, VIP_ALERT_ID, add_vip_alert
from .plan import Step, StepRef

COROSYNC_CONF = "/etc/corosync/corosync.conf"
# The corosyncKey secret's text is the key: its 172 base64 characters carry the 1024 random
# bits corosync asks for, and the file sits at its real path for every consumer.
AUTHKEY = "/etc/corosync/authkey"
PACEMAKER_DIR = "/etc/ha-web-cluster/pacemaker"
CIB_CRM = f"{PACEMAKER_DIR}/cib.crm"
HACLUSTER_PASSWORD = f"{PACEMAKER_DIR}/hacluster.password"
FENCE_PASSWORD = fence.FENCE_PASSWORD
FENCE_KEY = fence.FENCE_KEY
QDEVICE_SEED = f"{PACEMAKER_DIR}/qdevice.seed"
QNETD_DROPIN = "/etc/systemd/system/corosync-qnetd.service.d/ha-web-cluster.conf"

QNETD_STEP = "80-qnetd"
PACEMAKER_STEP = "52-pacemaker"

# Resource names: the seed's where it had them (crm status reads as in the thesis).
VIP_GROUP = "grupo1"
HAPROXY = "haproxy"
HAPROXY_CLONE = "haproxy-clone"
BACKENDS = "backends-up"  # keeps the node attribute serving.ATTRIBUTE (HAProxy's view of the backends)
QNETD_CA_CN = "QNet CA"  # names corosync's own certutil scripts use
QNETD_SERVER_CN = "Qnetd Server"  # what corosync-qdevice expects of qnetd's certificate


@dataclass(frozen=True)
class RingNode:
    name: str
    nodeid: int
    address: str  # on the heartbeat network (knet link 0)


@dataclass(frozen=True)
class VipResource:
    name: str
    ip: str
    prefix: int
    nic: str


@dataclass(frozen=True)
class Preference:
    node: str
    score: int


@dataclass(frozen=True)
class FenceDevice:
    name: str
    agent: str
    target: str  # the director it powers off
    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Arbitrator:
    name: str
    address: str  # internal address the directors' qdevice connects to


# --------------------------------------------------------------------------- facts


def ring_nodes(topo: Topology) -> list[RingNode]:
    """Directors in config order: node ids follow the list, not the priorities, so reordering priorities never renumbers a node."""
    return [RingNode(d.name, i + 1, str(d.heartbeat)) for i, d in enumerate(topo.cluster.directors)]


def arbitrator(topo: Topology) -> Optional[Arbitrator]:
    host = topo.cluster.pacemaker.qnetd_host
    if host is None:
        return None
    return Arbitrator(host, str(topo.node(host).internal_address))


def vip_resources(topo: Topology) -> list[VipResource]:
    """The seed's IPVirtual_1 (external) and IPVirtual_2 (internal), started in that order by their group."""
    c = topo.cluster
    return [
        VipResource("IPVirtual_1", str(c.vips.external), c.networks.external.cidr.prefixlen, "enp0s3"),
        VipResource("IPVirtual_2", str(c.vips.internal), c.networks.internal.cidr.prefixlen, "enp0s8"),
    ]


def preferences(topo: Topology) -> list[Preference]:
    """Location scores = VRRP priorities: the same order of succession as keepalived, master first.

    Resource stickiness is 0, so the VIPs return to a recovered higher-priority director.
    """
    return [Preference(d.name, d.priority) for d in topo.directors]


def vip_alert_path(topo: Topology) -> Optional[str]:
    """The alert agent every director has at the same path (node_metrics.add_vip_alert), when node metrics are on."""
    return VIP_ALERT if topo.cluster.node_metrics.enabled else None


def fence_host(topo: Topology) -> str:
    c = topo.cluster
    return c.pacemaker.fence_host or str(c.networks.external.gateway)


def fence_devices(topo: Topology) -> list[FenceDevice]:
    """One device per director; none when fencing is explicitly off."""
    pm = topo.cluster.pacemaker
    agent = pm.fence_agent(topo.config.hypervisor)
    if agent is None:
        return []
    common = {"ip": fence_host(topo), "username": pm.fence_user, **fence.credentials(topo), **pm.fence_params}
    devices = []
    for d in topo.cluster.directors:
        params = {**common, "plug": pm.fence_vms.get(d.name, d.name), "pcmk_host_list": d.name}
        devices.append(FenceDevice(f"fence-{d.name}", agent, d.name, tuple(sorted(params.items()))))
    return devices


# --------------------------------------------------------------------------- the stack


class PacemakerStack:
    """Files and steps of the Corosync + Pacemaker stack (see the module docstring for the why)."""

    def __init__(self, topo: Topology):
        self.topo = topo
        self.pm = topo.cluster.pacemaker
        self.arbitrator = arbitrator(topo)

    def add_director(self, b: NodeBuilder, director: Director, haproxy_step: StepRef) -> Step:
        """Steps 50-55 run in name order on each director; the master also loads the CIB once all have joined."""
        self._add_corosync(b, haproxy_step)
        if self.arbitrator:
            self._add_qdevice(b, self.arbitrator)
        pacemaker = self._add_pacemaker(b)
        if self.arbitrator:
            self._add_quorum_device_check(b, self.arbitrator)
        if director.name == self.topo.master.name:
            return self._add_cib(b)
        return pacemaker

    def add_other_nodes(self, builders: Mapping[str, NodeBuilder]) -> None:
        """corosync-qnetd on the arbitrator."""
        if self.arbitrator:
            self._add_qnetd(builders[self.arbitrator.name])

    # ------------------------------------------------------------------ directors
    def _add_corosync(self, b: NodeBuilder, haproxy_step: StepRef) -> Step:
        """After HAProxy: once Pacemaker runs, it manages the haproxy unit the step before installed."""
        nodes = ring_nodes(self.topo)
        conf = b.file(
            COROSYNC_CONF,
            "director/pacemaker/corosync.conf.j2",
            pm=self.pm,
            nodes=nodes,
            arbitrator=self.arbitrator,
            two_node=len(nodes) == 2 and self.arbitrator is None,
            authkey=AUTHKEY,
        )
        key = b.raw(AUTHKEY, placeholders.secret("corosyncKey"), mode=0o400)
        return b.step(
            "50-corosync",
            f"corosync: knet ring on the heartbeat network, crypto on, token {self.pm.token_ms} ms",
            "steps/director/50-corosync.sh.j2",
            files=[conf, key],
            after=[haproxy_step],
            conf=COROSYNC_CONF,
            authkey=AUTHKEY,
        )

    def _add_qdevice(self, b: NodeBuilder, arbitrator: Arbitrator) -> Step:
        """Started before qnetd exists (see _add_qnetd): it keeps trying to connect."""
        return b.step(
            "51-qdevice",
            f"corosync-qdevice: quorum votes from qnetd on {arbitrator.name} (TLS, algorithm lms)",
            "steps/director/51-qdevice.sh.j2",
            files=[self._seed_file(b)],
            arbitrator=arbitrator,
            **self._pki_context(),
        )

    def _add_pacemaker(self, b: NodeBuilder) -> Step:
        """Also installs the program the backends-up clone runs (it must be there before the CIB names it)."""
        files = [b.raw(HACLUSTER_PASSWORD, placeholders.secret("haclusterPassword"), mode=0o600), serving.add_attribute_program(b)]
        agent = self.pm.fence_agent(self.topo.config.hypervisor)
        if agent:
            path, key = fence.secret_file(self.topo)
            files.append(b.raw(path, placeholders.secret(key), mode=0o600))
        vip_alert = add_vip_alert(b, vip_resources(self.topo))
        return b.step(
            PACEMAKER_STEP,
            "pacemaker: cluster resource manager (HAProxy, the VIPs and the fence devices are its resources)",
            "steps/director/52-pacemaker.sh.j2",
            files=files + list(vip_alert or ()),
            password_file=HACLUSTER_PASSWORD,
            fence_agent=agent,
            vip_alert=vip_alert[0] if vip_alert else None,
            dropin=vip_alert[1] if vip_alert else None,
        )

    def _add_cib(self, b: NodeBuilder) -> Step:
        """On the master only: the CIB is cluster-wide, loaded once every director has joined."""
        devices = fence_devices(self.topo)
        cib = b.file(
            CIB_CRM,
            "director/pacemaker/cib.crm.j2",
            pm=self.pm,
            vips=vip_resources(self.topo),
            group=VIP_GROUP,
            haproxy=HAPROXY,
            clone=HAPROXY_CLONE,
            preferences=preferences(self.topo),
            fence_devices=devices,
            links=serving.link_monitors(),
            backends=BACKENDS,
            backends_program=serving.BACKENDS_UP,
            backends_attribute=serving.ATTRIBUTE,
            backends_weight=serving.weight(self.topo.directors),
            hold_s=self.topo.cluster.serving_check.hold_s,
            vip_alert=vip_alert_path(self.topo),
            vip_alert_id=VIP_ALERT_ID,
        )
        directors = [n.name for n in ring_nodes(self.topo)]
        return b.step(
            "53-cib",
            "Pacemaker configuration: VIP group on a director with a running HAProxy, fencing, quorum policy",
            "steps/director/53-cib.sh.j2",
            files=[cib],
            after=[StepRef(name, PACEMAKER_STEP) for name in directors],
            cib=CIB_CRM,
            directors=directors,
            group=VIP_GROUP,
            fence_devices=[d.name for d in devices],
        )

    def _add_quorum_device_check(self, b: NodeBuilder, arbitrator: Arbitrator) -> Step:
        """Proof that this director's qdevice reached qnetd over TLS; it can only run once the arbitrator serves."""
        return b.step(
            "55-quorum-device",
            f"quorum device connected to qnetd on {arbitrator.name}",
            "steps/director/55-quorum-device.sh.j2",
            after=[StepRef(arbitrator.name, QNETD_STEP)],
            arbitrator=arbitrator,
        )

    # ------------------------------------------------------------------ arbitrator
    def _add_qnetd(self, b: NodeBuilder) -> Step:
        """qnetd needs the internal network's router (the VIP) to install packages, so it comes after the directors:
        the cluster starts quorate on the directors' own votes and the qdevices connect when qnetd appears."""
        dropin = b.file(QNETD_DROPIN, "arbitrator/corosync-qnetd.service.conf.j2")
        return b.step(
            QNETD_STEP,
            f"corosync-qnetd: quorum arbitrator of cluster {self.pm.cluster_name} (TLS required)",
            "steps/arbitrator/80-qnetd.sh.j2",
            files=[self._seed_file(b), dropin],
            dropin=QNETD_DROPIN,
            **self._pki_context(),
        )

    # ------------------------------------------------------------------ shared
    def _seed_file(self, b: NodeBuilder) -> str:
        return b.raw(QDEVICE_SEED, placeholders.secret("qdeviceSeed"), mode=0o600)

    def _pki_context(self) -> dict[str, str]:
        return {"seed": QDEVICE_SEED, "cluster_name": self.pm.cluster_name, "ca_cn": QNETD_CA_CN, "server_cn": QNETD_SERVER_CN}
