"""The rolling order of the directors: a change that re-runs a step on every director reaches the
standbys first and the master, which holds the VIPs, last, one director at a time.

Written as dependencies between the directors' steps, so `pulumi up` itself rolls (it runs a
resource only after the resources it depends on), and the lab and the e2e replay the same order.
On a first deployment the same chain only delays the master's steps by the standbys' ones.
"""

from __future__ import annotations

from ..model import Director
from ..topology import Topology
from .plan import StepRef

# The directors' steps that roll: each waits for the same step on the director just below it in
# priority. Pacemaker's corosync/pacemaker steps do not: its cluster forms only with every director.
ROLLING_STEPS = ("30-dnsmasq", "40-haproxy", "50-keepalived")


def rolling_after(topo: Topology, director: Director, step: str) -> list[StepRef]:
    """The same step on the director just below this one in priority (none for the lowest)."""
    if step not in ROLLING_STEPS:
        raise ValueError(f"{step} is not one of the rolling steps {ROLLING_STEPS}")
    order = topo.directors  # highest priority (the master) first
    index = next(i for i, d in enumerate(order) if d.name == director.name)
    return [StepRef(order[index + 1].name, step)] if index + 1 < len(order) else []
