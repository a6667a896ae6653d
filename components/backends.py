"""The web tier: Docker hosts (engine, docroot mounts, containers) and the web content they serve."""

from __future__ import annotations

from typing import Any

from webcluster.render.plan import Step
from webcluster.topology import ROLE_BACKEND, Node, Topology

from .tier import Tier, is_content_step


class DockerBackends(Tier):
    """Docker hosts and their php:apache containers."""

    TYPE = "ha-web-cluster:backends:DockerBackends"
    ROLES = (ROLE_BACKEND,)

    def describe(self, topology: Topology) -> dict[str, Any]:
        self.containers = {b.name: [f"{c.name}:{c.port}" for c in b.containers] for b in topology.cluster.backends}
        return {"containers": self.containers}


class WebContent(Tier):
    """The seed's pages (index.php, pi.php, imagen.html...) in every shared docroot in use. Owns no VM,
    and the role tiers leave its steps to it (Tier.owns_step)."""

    TYPE = "ha-web-cluster:content:WebContent"

    @classmethod
    def owns_step(cls, step: Step, node: Node) -> bool:
        return is_content_step(step)

    def describe(self, topology: Topology) -> dict[str, Any]:
        self.docroots = [topology.docroot(s) for s in topology.storages_in_use()]
        return {"docroots": self.docroots}
