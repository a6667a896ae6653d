"""A rolling container change in the lab: every container replaced, one Docker host at a time.

The drained roll runs the Docker host's rendered ``hawc-rotation`` (the script the containers
step runs around ``hawc-containers``) inside the host's namespace, against the directors' real
HAProxies; only the replacement itself is the lab's stand-in for ``docker rm -f`` + ``docker run``
(SIGKILL to the container's Apache, then a new one). The plain roll does the same replacement
without the rotation, as the containers step did before: what that costs is the difference.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Optional

from ..render import render_cluster
from ..render.backend import ROTATION
from ..waiting import wait_until
from . import apache, faults
from .context import LabContext
from .state import sandbox

ROTATION_STEPS_BEFORE = ("drain", "idle")
ROTATION_STEPS_AFTER = ("up", "ready")


@dataclass
class Roll:
    """What a roll did: per Docker host, seconds taken and the rotation script's output."""

    drained: bool
    hosts: list[tuple[str, float]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(t for _, t in self.hosts)


def rotation_scripts(lab: LabContext) -> dict[str, str]:
    """Each Docker host's rendered rotation script (the lab's nodes see /etc, not /usr/local/sbin)."""
    plan = render_cluster(lab.topo.config)
    return {b.name: str(plan.nodes[b.name].files[ROTATION].content) for b in lab.topo.cluster.backends}


def rotation(lab: LabContext, backend: str, action: str, script: Optional[str] = None) -> str:
    """Run the host's rendered rotation script (`drain`, `idle`, `up`, `ready`); its output."""
    d = lab.topo.cluster.docker
    limit = d.drain_timeout_s + d.ready_timeout_s + 30
    script = script if script is not None else rotation_scripts(lab)[backend]
    proc = sandbox(backend).run(["bash", "-s", action], check=False, timeout=limit, input=script)
    if proc.returncode != 0:
        raise RuntimeError(f"{backend}: hawc-rotation {action} failed ({proc.returncode}): {proc.stdout.strip()} {proc.stderr.strip()}")
    return proc.stdout


def replace_containers(lab: LabContext, backend: str) -> None:
    """`docker rm -f` (SIGKILL) then `docker run`, as hawc-containers does for a changed definition."""
    for name in lab.containers_of(backend):
        faults.stop_process(lab, backend, apache.role(name), signal.SIGKILL, timeout=5)
        faults.start_process(lab, backend, apache.role(name))


def roll(lab: LabContext, drained: bool, up_timeout: float = 30) -> Roll:
    """Replace every container, host by host in the model's order (the steps' dependency chain)."""
    result = Roll(drained)
    scripts = rotation_scripts(lab)
    for b in lab.topo.cluster.backends:
        t0 = time.monotonic()
        if drained:
            result.output += [rotation(lab, b.name, a, scripts[b.name]) for a in ROTATION_STEPS_BEFORE]
        replace_containers(lab, b.name)
        if drained:
            result.output += [rotation(lab, b.name, a, scripts[b.name]) for a in ROTATION_STEPS_AFTER]
        else:  # the next host only once this one serves again, or the roll takes a whole service down
            mine = lab.containers_of(b.name)
            wait_until(f"{mine} UP", lambda: all(lab.server_states(c) == {"UP"} for c in mine), up_timeout, 0.2)
        result.hosts.append((b.name, time.monotonic() - t0))
    return result
