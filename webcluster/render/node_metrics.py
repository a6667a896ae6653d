"""Node-level metrics (issue #15): Debian's prometheus-node-exporter on every node, bound to the
node's internal address (its firewall opens the port to `cluster.nodeMetrics.scrapers` only), and
the directors' VIP-holder metric, written for node-exporter's textfile collector by keepalived's
notify hook or, with Pacemaker, by an alert agent: event-driven, so nothing is spawned on a
CPU-starved director between transitions."""

from __future__ import annotations

from typing import Sequence

from ..topology import Node, Topology
from .builder import NodeBuilder
from .plan import Step

NODE_EXPORTER_STEP = "02-node-exporter"
NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"  # Debian's unit reads ARGS from it
NODE_EXPORTER_DROPIN = "/etc/systemd/system/prometheus-node-exporter.service.d/ha-web-cluster.conf"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's default textfile directory, named explicitly
VIP_NOTIFY = "/etc/keepalived/hawc-vip-notify.sh"
# How long the hook waits for keepalived to add or remove the VIP the state it was told implies.
VIP_NOTIFY_SETTLE_S = 5
VIP_METRIC = "hawc_vip_held"
VIP_ALERT = "/etc/ha-web-cluster/hawc-vip-alert"  # Pacemaker runs it as hacluster: outside the root-only secrets' directory
VIP_ALERT_ID = "hawc-vip-held"
PACEMAKER_DROPIN = "/etc/systemd/system/pacemaker.service.d/hawc-vip-held.conf"
ALERT_GROUP = "haclient"  # hacluster's group: the alert agent renames its files into the textfile directory


def listen_address(topo: Topology, node: Node) -> str:
    return f"{node.internal_address}:{topo.cluster.node_metrics.port}"


def exporter_args(topo: Topology, node: Node) -> list[str]:
    """node-exporter's command line: the internal address only, the textfile directory, the noisy collectors off."""
    m = topo.cluster.node_metrics
    args = [f"--web.listen-address={listen_address(topo, node)}", f"--collector.textfile.directory={TEXTFILE_DIR}"]
    return args + [f"--no-collector.{name}" for name in sorted(set(m.disabled_collectors))]


def add_node_exporter(b: NodeBuilder) -> Step | None:
    """/etc/default/prometheus-node-exporter, a systemd drop-in and the step that installs and starts it (after the firewall)."""
    topo = b.topo
    if not topo.cluster.node_metrics.enabled:
        return None
    node = topo.node(b.name)
    defaults = b.file(NODE_EXPORTER_DEFAULTS, "node-exporter/prometheus-node-exporter.j2", node=node, args=exporter_args(topo, node))
    dropin = b.file(NODE_EXPORTER_DROPIN, "node-exporter/service-dropin.conf.j2")
    address = str(node.internal_address)
    return b.step(
        NODE_EXPORTER_STEP,
        "prometheus-node-exporter on the internal address",
        "steps/common/02-node-exporter.sh.j2",
        files=[defaults, dropin],
        address=address,
        dropin=dropin,
        port=topo.cluster.node_metrics.port,
        textfile_dir=TEXTFILE_DIR,
    )


def add_vip_notify(b: NodeBuilder, instances: Sequence[dict[str, object]]) -> str | None:
    """keepalived's notify script: hawc_vip_held{vip,instance_name} 0|1 per VRRP instance (None: node metrics off)."""
    if not b.topo.cluster.node_metrics.enabled:
        return None
    vips = [{"name": i["name"], "vip": str(i["vip"]).split("/")[0], "interface": i["interface"]} for i in instances]
    return b.file(VIP_NOTIFY, "node-exporter/hawc-vip-notify.sh.j2", mode=0o755, instances=vips, textfile_dir=TEXTFILE_DIR, metric=VIP_METRIC, settle_s=VIP_NOTIFY_SETTLE_S)


def add_vip_alert(b: NodeBuilder, vips: Sequence[object]) -> tuple[str, str] | None:
    """Pacemaker's alert agent writing hawc_vip_held{vip,instance_name} 0|1 per VIP resource, and the
    pacemaker unit's drop-in that resets it from the NICs before pacemakerd starts (None: node metrics off).

    `vips` are the VIP primitives (name, ip, nic); instance_name is the resource's id."""
    if not b.topo.cluster.node_metrics.enabled:
        return None
    agent = b.file(
        VIP_ALERT,
        "director/pacemaker/hawc-vip-alert.sh.j2",
        mode=0o755,
        node=b.name,
        agent=VIP_ALERT,
        alert_id=VIP_ALERT_ID,
        vips=vips,
        group=ALERT_GROUP,
        textfile_dir=TEXTFILE_DIR,
        metric=VIP_METRIC,
    )
    return agent, b.file(PACEMAKER_DROPIN, "director/pacemaker/pacemaker.service.conf.j2", agent=agent)
