"""Real GlusterFS in the lab: glusterd per server namespace, XFS bricks on loop devices.

The rendered 20-peers and 30-volumes steps run unchanged on the first server; only the
brick disks differ (loop files instead of virtual disks), which the lab prepares itself
because the rendered 10-bricks step would look for blank disks on the host.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from .. import netns
from ..render.plan import ClusterPlan
from ..sandbox import Sandbox
from ..topology import ROLE_GLUSTER, Topology
from . import processes
from .state import LAB_ROOT, LabState, sandbox

BRICK_MIB = 320  # XFS's minimum is 300 MiB; the files are sparse
BRICKS = LAB_ROOT / "bricks"


def _loop_for(image: Path) -> str:
    out = netns.run(["losetup", "-j", str(image)], check=False).stdout.strip()
    if out:
        return out.split(":")[0]
    return netns.run(["losetup", "-f", "--show", str(image)]).stdout.strip()


def prepare_bricks(state: LabState, topo: Topology, ensure_dir: Callable[[LabState, str], None]) -> None:
    BRICKS.mkdir(parents=True, exist_ok=True)
    per_server = topo.cluster.gluster.bricks_per_server
    for node in topo.nodes_with_role(ROLE_GLUSTER):
        sb = sandbox(node.name)
        for i in range(1, per_server + 1):
            image = BRICKS / f"{node.name}-brick{i}.img"
            if not image.exists():
                with open(image, "wb") as f:
                    f.truncate(BRICK_MIB * 1024 * 1024)
                netns.run(["mkfs.xfs", "-q", "-i", "size=512", "-L", f"hwl{i}", str(image)])
            loop = _loop_for(image)
            if loop not in state.loop_devices:
                state.loop_devices.append(loop)
            target = f"/export/brick{i}"
            ensure_dir(state, target)
            sb.run(["sh", "-c", f"mountpoint -q {target} || mount {loop} {target}; mkdir -p {target}/data"])
    state.save()


def bring_up(state: LabState, topo: Topology, plan: ClusterPlan, step: Callable[[str], None], ensure_dir, run_step) -> None:
    servers = topo.nodes_with_role(ROLE_GLUSTER)
    prepare_bricks(state, topo, ensure_dir)
    for node in servers:
        processes.start(state, node.name, "glusterd", ["glusterd", "-N", "--log-file=/var/log/glusterfs/glusterd.log"])
    for node in servers:
        _wait_glusterd(sandbox(node.name))
    step(f"gluster: {len(servers)} glusterd on XFS loop bricks")
    first = servers[0].name
    run_step(plan, first, "20-peers", timeout=150)
    run_step(plan, first, "30-volumes", timeout=180)
    names = ", ".join(v.name for v in topo.cluster.gluster.volumes)
    step(f"gluster: rendered steps 20-peers and 30-volumes created and started {names}")


def _wait_glusterd(sb: Sandbox, timeout: float = 60) -> None:
    """Until glusterd answers; a CLI call that hangs (a busy machine: glusterd's start runs Python
    helpers) counts as not yet, within the same bound."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sb.run(["gluster", "--mode=script", "pool", "list"], check=False, timeout=10).returncode == 0:
                return
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.3)
    raise RuntimeError(f"glusterd in {sb.name} did not answer within {timeout:.0f} s")


def mount_volume(sb: Sandbox, source: str, target: str, options: str) -> None:
    """A real FUSE mount inside the Docker host's namespace (mount.glusterfs starts the client there)."""
    opts = ",".join(o for o in options.split(",") if o not in ("defaults", "_netdev"))
    argv = ["mount", "-t", "glusterfs"] + (["-o", opts] if opts else []) + [source, target]
    deadline = time.monotonic() + 60
    while True:
        if sb.run(["mountpoint", "-q", target], check=False).returncode == 0:
            return
        proc = sb.run(argv, check=False, timeout=60)
        if proc.returncode == 0 and sb.run(["mountpoint", "-q", target], check=False).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sb.name}: mount {source} {target} failed: {proc.stderr.strip()}")
        time.sleep(1)


def detach_loops(state: Optional[LabState]) -> None:
    devices = set(state.loop_devices if state else [])
    if BRICKS.exists():
        for image in BRICKS.glob("*.img"):
            out = netns.run(["losetup", "-j", str(image)], check=False).stdout.strip()
            if out:
                devices.add(out.split(":")[0])
    for dev in sorted(devices):
        subprocess.run(["losetup", "-d", dev], capture_output=True)
