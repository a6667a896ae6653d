"""Stack outputs: where the cluster answers, how to log in, and what was deployed."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi

from webcluster.render import fence
from webcluster.topology import Node, Topology

from .hypervisor import Platform
from .secrets import ClusterSecrets


def url(address: ipaddress.IPv4Address | str, port: int, path: str = "/", scheme: str = "http") -> str:
    return f"{scheme}://{address}:{port}{path}"


def node_addresses(node: Node) -> dict[str, str]:
    """Network -> address (a bonded NAS lists its one address once)."""
    return {nic.network: str(nic.address) for nic in node.nics if nic.address is not None}


def fence_outputs(topology: Topology, public_key: pulumi.Output[str]) -> dict[str, Any]:
    """What the hypervisor host's fence user needs (docs/pacemaker.md): its authorized_keys line (public
    key only) and, for fence_virsh, the forced command that line names."""
    options = fence.key_options(topology)
    comment = f"hawc-fence@{topology.cluster.pacemaker.cluster_name}"
    outputs: dict[str, Any] = {"fenceAuthorizedKey": public_key.apply(lambda key: fence.authorized_keys_line(options, key, comment))}
    if fence.forces_command(topology):
        outputs["fenceCommand"] = fence.wrapper_script(topology)
        outputs["fenceCommandPath"] = fence.WRAPPER_PATH
    return outputs


def stack_outputs(topology: Topology, secrets: ClusterSecrets, platform: Platform) -> dict[str, Any]:
    config = topology.config
    c = topology.cluster
    vip = c.vips.external
    stats = c.haproxy.stats
    outputs: dict[str, Any] = {
        "hypervisor": config.hypervisor.value,
        "haStack": config.ha_stack.value,
        "externalVip": str(vip),
        "internalVip": str(c.vips.internal),
        "serviceUrls": {s.name: url(vip, s.port) for s in c.haproxy.services},
        # Each director's own listener is on its internal address (the external one holds only the VIP's).
        "statsUrls": {d.name: url(d.internal, stats.port, stats.uri) for d in topology.directors},
        "statsVipUrl": url(vip, stats.port, stats.uri),
        # The TLS frontends (the generated certificate's CA: the httpsCaCert output).
        "httpsUrls": {s.name: url(vip, s.tls_port, scheme="https") for s in c.haproxy.services if s.tls_port is not None},
        "statsUser": stats.user,
        "statsPassword": pulumi.Output.secret(secrets.values["statsPassword"]),
        "nodes": {n.name: node_addresses(n) for n in topology.nodes},
        "sshUser": secrets.ssh.user,
        "sshPublicKey": secrets.ssh.public_key,
    }
    if c.haproxy.https.stats_port is not None and outputs["httpsUrls"]:
        outputs["statsHttpsVipUrl"] = url(vip, c.haproxy.https.stats_port, stats.uri, scheme="https")
    if stats.metrics_uri:  # Prometheus scrape targets (basic_auth: statsUser, statsPassword)
        outputs["metricsUrls"] = {d.name: url(d.internal, stats.port, stats.metrics_uri) for d in topology.directors}
    if c.node_metrics.enabled:  # node-exporter, internal addresses: reachable from nodeMetrics.scrapers only
        outputs["nodeMetricsUrls"] = {n.name: url(n.internal_address, c.node_metrics.port, "/metrics") for n in topology.nodes}
    if "fencePassword" in secrets.values:  # the fence user on the hypervisor host needs it (fenceLogin: password)
        outputs["fencePassword"] = pulumi.Output.secret(secrets.values["fencePassword"])
    if "fenceSshKey" in secrets.public_keys:
        outputs.update(fence_outputs(topology, secrets.public_keys["fenceSshKey"]))
    if secrets.ssh.private_key is not None:
        outputs["sshPrivateKey"] = secrets.ssh.private_key  # `pulumi stack output sshPrivateKey --show-secrets`
    outputs.update(platform.outputs())
    return outputs
