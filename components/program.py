"""The Pulumi program: config -> model -> rendered cluster -> VMs, tier components, steps, outputs.

Everything that can be wrong with the configuration fails here with the model's own
messages before the first resource is declared.
"""

from __future__ import annotations

from typing import Mapping

import pulumi

from webcluster.render import ClusterPlan, render_cluster
from webcluster.render import gluster_tls, https
from webcluster.render.placeholders import fill, keys_in
from webcluster.topology import Topology
from webcluster.validation import ConfigError

from . import preflight
from .backends import DockerBackends, WebContent
from .directors import DirectorTrio
from . import gluster_pki
from .gluster_pki import GlusterPki
from .https_pki import COMPONENT_NAME as COMPONENT_HTTPS, HttpsPki
from .hypervisor import platform_class
from .hypervisor.base import CloudInit
from .outputs import stack_outputs
from .secrets import ClusterSecrets, secrets_in
from .settings import read_stack
from .storage import GlusterPool, NasServer
from .tier import Deployment, Tier, TierArgs

# Declaration order. WebContent comes after DockerBackends because its step runs on a Docker
# host's VM; steps that wait for a later tier's step are resolved by the StepRegistry.
TIERS: tuple[tuple[str, type[Tier]], ...] = (
    ("directors", DirectorTrio),
    ("nas", NasServer),
    ("gluster", GlusterPool),
    ("backends", DockerBackends),
    ("content", WebContent),
)


def tier_args(d: Deployment) -> dict[str, TierArgs]:
    """Split nodes and steps among the tiers; each one must belong to exactly one tier."""
    topo = d.topology
    out: dict[str, TierArgs] = {}
    for name, cls in TIERS:
        nodes = tuple(n for n in topo.nodes if n.role in cls.ROLES)
        steps = tuple(s for s in d.plan.all_steps() if cls.owns_step(s, topo.node(s.node)))
        out[name] = TierArgs(d, nodes, steps)
    _check_partition(d, out.values())
    return out


def _check_partition(d: Deployment, args) -> None:
    nodes = [n.name for a in args for n in a.nodes]
    steps = [str(s.ref) for a in args for s in a.steps]
    if sorted(nodes) != sorted(n.name for n in d.topology.nodes) or sorted(steps) != sorted(str(s.ref) for s in d.plan.all_steps()):
        raise ValueError("tiers must own every node and step exactly once")


def cloud_init_for(plan: ClusterPlan, public_key: pulumi.Output[str]) -> dict[str, CloudInit]:
    """Each node's NoCloud documents with the SSH public key filled in."""

    def filled(text: str) -> pulumi.Input[str]:
        if not keys_in(text):
            return text
        return public_key.apply(lambda key: fill(text, {"sshPublicKey": key.strip()}))

    return {node: {name: filled(text) for name, text in docs.items()} for node, docs in plan.cloud_init.items()}


def main() -> Mapping[str, Tier]:
    try:
        config = read_stack().config
        platform_cls = platform_class(config)
        plan = render_cluster(config)
    except ConfigError as exc:
        raise pulumi.RunError(f"invalid configuration of stack {pulumi.get_stack()}:\n{exc}") from None
    preflight.check(config)
    topology = Topology(config)
    keys = secrets_in(plan)
    generated = {k for k in keys if not gluster_tls.is_tls_key(k) and not https.is_tls_key(k)}
    secrets = ClusterSecrets("secrets", generated, config.ssh_user, config.ssh_public_key)
    tls_nodes = gluster_tls.participants(topology)
    if tls_nodes:
        secrets.values.update(GlusterPki(gluster_pki.COMPONENT_NAME, tls_nodes).values)
    https_pki = HttpsPki(COMPONENT_HTTPS, topology) if https.enabled(topology) else None
    if https_pki is not None:
        secrets.values.update(https_pki.values)
    platform = platform_cls("platform", config, secrets.ssh)
    deployment = Deployment(topology, plan, platform, secrets, cloud_init_for(plan, secrets.ssh.public_key))
    args = tier_args(deployment)
    tiers = {name: cls(name, args[name]) for name, cls in TIERS}
    deployment.steps.seal()
    outputs = stack_outputs(topology, secrets, platform)
    if https_pki is not None and https_pki.ca_cert is not None:
        outputs["httpsCaCert"] = https_pki.ca_cert  # clients trust it: `curl --cacert`
    for key, value in outputs.items():
        pulumi.export(key, value)
    return tiers
