"""The HA stack switch: which files and steps move the VIPs between directors.

One implementation per stack, chosen once in :func:`ha_stack_for`; nothing else in
the renderer asks which stack is in use.
"""

from __future__ import annotations

import math
from typing import Mapping, Protocol

from ..model import Director
from ..topology import Topology
from . import placeholders, serving
from .builder import NodeBuilder
from .node_metrics import TEXTFILE_DIR, VIP_METRIC, add_vip_notify
from .plan import Step, StepRef

KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
CHECK_HAPROXY = "/etc/keepalived/check_haproxy.sh"


class HaStackRenderer(Protocol):
    def add_director(self, b: NodeBuilder, director: Director, haproxy_step: StepRef) -> Step:
        """Add this stack's files and steps to a director; return the step after which it can hold the VIPs."""

    def add_other_nodes(self, builders: Mapping[str, NodeBuilder]) -> None:
        """Add what the stack needs on nodes that are not directors (pacemaker's quorum arbitrator)."""


class KeepalivedStack:
    """keepalived VRRP: sync group VG1 (VI_1 external + VI_2 internal), VI_3 on the heartbeat."""

    def __init__(self, topo: Topology):
        self.topo = topo

    def _standby_rank(self, director: Director) -> int:
        """0 for the highest-priority standby, 1 for the next. A master that merely ranks lower (its
        backends check failed) is preempted by every standby after preempt_delay; equal delays made
        both standbys take the VIPs at once (the lab saw two holders for 40 ms). One second more per
        rank lets the higher one take them and be heard first."""
        return [d.name for d in self.topo.directors[1:]].index(director.name)

    def add_director(self, b: NodeBuilder, director: Director, haproxy_step: StepRef) -> Step:
        c = self.topo.cluster
        vrrp = c.vrrp
        interval_ms = vrrp.check_interval_ms
        # Probes spaced interval_ms apart, the last one ending well inside keepalived's run
        # interval (a script still running at the next run is skipped, not queued).
        run_ms = vrrp.script_interval_s * 1000
        polls = max(1, math.floor((run_ms - interval_ms) / interval_ms))
        check = b.file(
            CHECK_HAPROXY,
            "director/check_haproxy.sh.j2",
            mode=0o755,
            port=c.haproxy.tuning.health_port,
            polls=polls,
            interval_ms=interval_ms,
            interval_s=f"{interval_ms / 1000:g}",
            run_interval_s=vrrp.script_interval_s,
        )
        peers = [d for d in c.directors if d.name != director.name]
        instances = [
            {"name": "VI_1", "interface": "enp0s3", "router_id": vrrp.router_ids["external"], "vip": f"{c.vips.external}/{c.networks.external.cidr.prefixlen}", "track": True},
            {"name": "VI_2", "interface": "enp0s8", "router_id": vrrp.router_ids["internal"], "vip": f"{c.vips.internal}/{c.networks.internal.cidr.prefixlen}", "track": True},
            {"name": "VI_3", "interface": "enp0s9", "router_id": vrrp.router_ids["heartbeat"], "vip": f"{c.vips.heartbeat}/{c.networks.heartbeat.cidr.prefixlen}", "track": False},
        ]
        # Adverts go unicast to the peer directors only, and adverts from anybody else are ignored:
        # multicast on the client-facing network let any host there take the VIP.
        for inst, network in zip(instances, ("external", "internal", "heartbeat")):
            inst["src"] = str(getattr(director, network))
            inst["peers"] = [str(getattr(p, network)) for p in peers]
        backends_check = serving.add_check_script(b)
        notify = add_vip_notify(b, instances)
        advert = vrrp.advert_interval if vrrp.version == 3 else max(1, round(vrrp.advert_interval))
        conf = b.file(
            KEEPALIVED_CONF,
            "director/keepalived.conf.j2",
            mode=0o600,  # the VRRP password (version 2); keepalived runs as root
            director=director,
            vrrp=vrrp,
            state="MASTER" if director.name == self.topo.master.name else "BACKUP",
            advert_int=f"{advert:g}",
            vrrp_password=placeholders.secret("vrrpAuthPass"),
            check_script=CHECK_HAPROXY,
            instances=instances,
            notify=notify,
            backends_script=backends_check,
            backends_weight=serving.weight(self.topo.directors),
            # keepalived ignores preempt_delay on an instance that starts as MASTER (and says so)
            preempt_delay=None if director.name == self.topo.master.name else c.serving_check.hold_s + self._standby_rank(director),
        )
        return b.step(
            "50-keepalived",
            "keepalived VRRP (VIPs follow the highest-priority director whose HAProxy is alive)",
            "steps/director/50-keepalived.sh.j2",
            files=[conf, check, backends_check, *([notify] if notify else [])],
            after=[haproxy_step],
            priority=director.priority,
            notify=notify,
            instances=instances,
            metric_files=f"{TEXTFILE_DIR}/{VIP_METRIC}_",
        )

    def add_other_nodes(self, builders: Mapping[str, NodeBuilder]) -> None:
        """VRRP runs on the directors alone."""


def ha_stack_for(topo: Topology) -> HaStackRenderer:
    if topo.config.ha_stack.value == "pacemaker":
        from .pacemaker import PacemakerStack

        return PacemakerStack(topo)
    return KeepalivedStack(topo)
