"""Seed test 4.1.4 on the real gv0: a Gluster server cut off, writes continue, the volume heals by itself."""

from __future__ import annotations

import re
import time

from . import probe
from ..waiting import wait_until
from .context import LabContext
from ..loss import loss_budget
from .scenarios import LOAD_CONCURRENCY
from .state import sandbox
from ..model import Service
from ..topology import Topology

PROBE_FILE = "hawc-heal-probe.txt"


def replica_volume(lab: LabContext):
    return next(v for v in lab.topo.cluster.gluster.volumes if v.replica > 1)


def ping_timeout(volume) -> str:
    """The volume's `network.ping-timeout` as set (Gluster's own default, 42, when the stack removed ours)."""
    return volume.options.get("network.ping-timeout", "42")


def pending_heals(lab: LabContext, server: str, volume: str) -> int:
    """Sum of `Number of entries` over the bricks (unreachable bricks count as pending)."""
    proc = sandbox(server).run(["gluster", "--mode=script", "volume", "heal", volume, "info"], check=False, timeout=30)
    counts = [int(n) for n in re.findall(r"Number of entries: (\d+)", proc.stdout)]
    bricks = proc.stdout.count("Brick ")
    if proc.returncode != 0 or len(counts) < bricks or not bricks:
        return 10**6
    return sum(counts)


STALL_LATENCY_S = 1.0  # a page normally takes ~0.04 s: one slower than this waited on the lost brick
SETTLED_S = 3.0  # served without a stall this long (past HAProxy's rise of the servers it marked DOWN)


def stall_after_cut(lab: LabContext, service: Service, ping_timeout_s: float, timeout: float = 90) -> float:
    """Seconds from the cut until the page is served steadily again, one request at a time.

    Cached metadata serves some pages before the client notices the lost brick, so the first good
    page proves nothing: the client may stall on it until `network.ping-timeout`. Probe past that,
    until the page has been served promptly for SETTLED_S with every server of the service UP, and
    return when the last stalled (failed or slow) probe ended; 0 if none stalled.
    """
    start = time.monotonic()
    backend = Topology.backend_section(service)
    last_stall_end = start
    stalled = False

    def settled() -> bool:
        nonlocal last_stall_end, stalled
        sent = time.monotonic()
        page = probe.get(lab.url(service.port, "/index.php"), timeout=10)
        now = time.monotonic()
        if not page.ok or now - sent > STALL_LATENCY_S:
            last_stall_end, stalled = now, True
            return False
        if now - start < ping_timeout_s or now - last_stall_end < SETTLED_S:
            return False
        states, _ = lab.stats()
        return all(status == "UP" for (section, _), status in states.items() if section == backend)

    wait_until(f"{service.name} serves steadily again", settled, timeout, 0.1)
    return last_stall_end - start if stalled else 0.0


def gluster_server_cut(lab: LabContext) -> list[str]:
    vol = replica_volume(lab)
    services = [s for s in lab.topo.cluster.haproxy.services if s.storage == vol.name]
    assert services, f"no service serves {vol.name}"
    servers = [s.name for s in lab.topo.cluster.gluster.servers]
    victim, witness = servers[0], servers[1]
    writer = next(b.name for b, c in lab.topo.containers() if c.docroot == vol.name)
    probe_path = f"{lab.topo.docroot(vol.name)}/{PROBE_FILE}"
    notes = []
    try:
        lab.cut(victim)
        cut_at = time.monotonic()
        stall = stall_after_cut(lab, services[0], float(ping_timeout(vol)))
        notes.append(f"{victim} cut: {services[0].name} served again after {stall:.1f} s")
        for svc in services:
            result = lab.load(lab.url(svc.port, "/index.php"), 500)
            assert result["failed"] <= loss_budget(svc.mode.value, LOAD_CONCURRENCY), f"{svc.name} with {victim} down: {result['failed']} failed {result['failures']}"
        notes.append(f"{', '.join(s.name for s in services)}: 500 requests each with {victim} down, within the loss budget (0 in HTTP mode)")
        stamp = f"written while {victim} was down at {cut_at:.0f}"
        sandbox(writer).run(["sh", "-c", f"echo '{stamp}' > {probe_path}"], timeout=60)
        read = sandbox(writer).run(["cat", probe_path], timeout=30).stdout.strip()
        assert read == stamp, f"read back {read!r}"
        notes.append(f"write to {vol.name} from {writer} succeeded with {victim} down")
        assert pending_heals(lab, witness, vol.name) > 0, "no pending heal recorded for the missing brick"
    finally:
        lab.restore(victim)
    healed = wait_until(f"{vol.name} healed", lambda: pending_heals(lab, witness, vol.name) == 0, 120, 1.0)
    brick_copy = sandbox(victim).run(["sh", "-c", f"cat /export/brick{vol.brick}/data/{lab.topo.cluster.docker.docroot_subdir}/{PROBE_FILE}"], check=False).stdout.strip()
    assert brick_copy.startswith("written while"), f"{victim}'s brick has {brick_copy!r} after the heal"
    notes.append(f"{victim} back: {vol.name} healed by itself in {healed:.1f} s, its brick has the file")
    sandbox(writer).run(["rm", "-f", probe_path], check=False, timeout=30)
    return notes
