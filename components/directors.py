"""The load-balancer tier: dnsmasq and NAT on the master, HAProxy everywhere, keepalived or Pacemaker."""

from __future__ import annotations

from typing import Any

from webcluster.topology import ROLE_DIRECTOR, Topology

from .tier import Tier


class DirectorTrio(Tier):
    """The 2-3 directors; they hold the VIPs, so every other node's first step waits for them."""

    TYPE = "ha-web-cluster:directors:DirectorTrio"
    ROLES = (ROLE_DIRECTOR,)

    def describe(self, topology: Topology) -> dict[str, Any]:
        c = topology.cluster
        self.master = topology.master.name
        self.ha_stack = topology.config.ha_stack.value
        self.vips = {"external": str(c.vips.external), "internal": str(c.vips.internal)}
        self.directors = {d.name: str(d.external) for d in topology.directors}
        return {"master": self.master, "haStack": self.ha_stack, "vips": self.vips, "directors": self.directors}
