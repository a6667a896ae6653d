"""Whether a director can serve, the same for both HA stacks (issue #17).

A director that lost its external or internal link, or whose HAProxy sees no server UP in
a backend, should not hold the VIPs while another director can serve. Link loss is
absolute (keepalived's interface tracking, Pacemaker's ethmonitor attributes); reaching the
backends is relative: a director that cannot reach them only loses against a director that
can, so when every director is in the same state (every container stopped) nothing moves.

Both stacks express "relative" the same way, as a bonus a healthy director has over a
failing one, larger than any gap between base priorities (the weight rule below), held for
`servingCheck.holdS` seconds before it moves anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..model import Director
from .builder import NodeBuilder

SERVING_PATH = "/backends"  # on HAProxy's loopback health frontend: 200 while every backend has a server UP
CHECK_BACKENDS = "/etc/keepalived/check_backends.sh"  # keepalived's chk_backends (bash: cheap every second)
BACKENDS_UP = "/etc/ha-web-cluster/backends-up"  # Pacemaker's attribute keeper; python3 -IS: what every Debian cloud image has (cloud-init is Python)
# How long both checks wait for HAProxy's answer. No answer in time is unknown, not a failure:
# "a director too busy for this cannot serve either" was disproved (emulated guests, 2 December:
# a starved director kept serving while its chk_backends timed out twice, and the VIP moved 8
# times). So this only bounds how long a busy director's check runs; kept at about the check
# interval (longer runs overlap keepalived's next start), and not shorter, so a slow but real 503
# still counts (an unknown between two 503s resets keepalived's `fall 2`).
ANSWER_TIMEOUT_S = 1.0
ATTRIBUTE = "hawc-backends-up"  # Pacemaker node attribute: 1 when every backend has a server UP


@dataclass(frozen=True)
class LinkMonitor:
    nic: str
    attribute: str  # ethmonitor's node attribute: 1 while the NIC has carrier


# The NICs the VIPs live on: external (VI_1 / IPVirtual_1) and internal (VI_2 / IPVirtual_2).
VIP_NICS = ("enp0s3", "enp0s8")


def link_monitors() -> list[LinkMonitor]:
    return [LinkMonitor(nic, f"ethmonitor-{nic}") for nic in VIP_NICS]


def weight(directors: Sequence[Director]) -> int:
    """The bonus of a director whose HAProxy reaches the backends: one more than the widest gap
    between base priorities, so a failing director ranks below every healthy one, while
    directors in the same state keep their order (150/100/90: 61; failing master 89 < 90)."""
    prios = [d.priority for d in directors]
    return max(prios) - min(prios) + 1


def keepalived_order_problem(directors: Sequence[Director]) -> tuple[int, str] | None:
    """keepalived clamps a priority to 1..254: with the weight subtracted, two failing directors
    must not both end at 1 (their order would be lost). Returns (index, message) of the director
    that would, else None."""
    w = weight(directors)
    ranked = sorted(range(len(directors)), key=lambda i: directors[i].priority)
    if len(ranked) < 3:
        return None
    second = ranked[1]
    if directors[second].priority - w < 2:
        return second, (
            f"{directors[second].priority} minus the backend-check weight {w} (highest - lowest priority + 1) "
            "falls to keepalived's floor of 1 with the lowest director's: bring the priorities closer together"
        )
    return None


def add_check_script(b: NodeBuilder) -> str:
    """keepalived's chk_backends: one request to HAProxy's own answer, in bash (keepalived runs it
    every second; a Python start per second was a large share of an emulated director's CPU).
    Fails only on HAProxy's explicit 503; no answer is unknown (exit 0)."""
    return b.file(CHECK_BACKENDS, "director/check_backends.sh.j2", mode=0o755, port=b.topo.cluster.haproxy.tuning.health_port, uri=SERVING_PATH, timeout_s=f"{ANSWER_TIMEOUT_S:g}")


def add_attribute_program(b: NodeBuilder) -> str:
    """Pacemaker's backends-up: the same answer, kept as a node attribute by one long-running process."""
    return b.file(
        BACKENDS_UP,
        "director/backends-up.py.j2",
        mode=0o755,
        port=b.topo.cluster.haproxy.tuning.health_port,
        uri=SERVING_PATH,
        timeout_s=ANSWER_TIMEOUT_S,
        hold_s=b.topo.cluster.serving_check.hold_s,
        nics=list(VIP_NICS),
    )
