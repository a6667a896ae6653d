"""The whole e2e run in phases (plan, image, guests, provisioning or restore, tests), timed, always cleaned up.

Provisioning happens once per (image, plan): afterwards every guest's state is saved as
an internal qcow2 snapshot and later runs restore it (a few seconds per guest) instead of
booting and replaying again. ``down`` removes guests, namespace and state of this tool only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from threading import Lock
from typing import Iterable, Optional

from webcluster.stackfile import load_stack_file, stack_path
from webcluster.topology import Topology

from . import guests, network, timeline
from .checks import CheckResult, Cluster, healthy, run_checks, watch_vip
from .image import GuestImage, ensure_image
from .qmp import QmpError
from .recording import PlanRecording, record
from .replay import StepResult, replay, target_of
from ..waiting import Timeout, wait_until
from .changes import plan_of_changed
from .shell import STATE, log
from .ssh import key_pair, ssh

from webcluster.render import render_cluster


@dataclass
class Report:
    phases: list[tuple[str, float]] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    error: str = ""
    boots: dict[str, float] = field(default_factory=dict)  # guest -> time.monotonic() it was started
    provision_start: float = 0.0

    def timed(self, name: str, start: float) -> None:
        self.phases.append((name, time.monotonic() - start))
        log(f"phase {name}: {self.phases[-1][1]:.1f}s")

    @property
    def ok(self) -> bool:
        return not self.error and all(s.ok for s in self.steps) and bool(self.checks) and all(c.ok for c in self.checks)

    def table(self) -> str:
        rows = [f"{'phase':<34} {'time':>8}"] + [f"{n:<34} {s:>7.1f}s" for n, s in self.phases]
        if self.steps:
            rows += ["", f"{'slowest steps':<34} {'time':>8}"]
            rows += [f"{s.name:<34} {s.seconds:>7.1f}s" for s in sorted(self.steps, key=lambda s: -s.seconds)[:5]]
        rows += ["", f"{'check':<34} {'result':<6} {'time':>7}  detail"]
        rows += [f"{c.name:<34} {'PASS' if c.ok else 'FAIL':<6} {c.seconds:>6.1f}s  {c.detail[:160]}" for c in self.checks]
        failed = [s for s in self.steps if not s.ok]
        if failed:
            rows += ["", f"failed step: {failed[0].name}"]
        if self.error:
            rows += ["", f"error: {self.error}"]
        rows += ["", f"e2e: {'PASS' if self.ok else 'FAIL'}"]
        return "\n".join(rows)


NOT_IN_KEY = ("triggers",)


def snapshot_key(image: GuestImage, plan: PlanRecording) -> str:
    """Changes when the image or anything the program declares for the guests or their steps does.

    Canonical JSON, not repr: a frozenset's repr follows the per-process string hash, so the
    same plan gave a new key in every run and the snapshots were never restored. A step's
    `triggers` stay out: they restate what the key already holds (the step's script and files,
    the VM), and leaving them out kept the key of the snapshots saved before they were recorded."""
    record = {"image": str(image.disk), "guests": {g: asdict(plan.guests[g]) for g in sorted(plan.guests)},
              "steps": [{k: v for k, v in asdict(s).items() if k not in NOT_IN_KEY} for s in plan.ordered()]}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=_sorted_set).encode()).hexdigest()


def _sorted_set(value: object) -> list:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def host_side(topology: Topology, plan: PlanRecording) -> network.HostSide:
    """The libvirt host's addresses: the external gateway, and libvirtHostAddress on the internal network."""
    nets = topology.cluster.networks
    external = f"{nets.external.gateway}/{nets.external.cidr.prefixlen}" if nets.external.gateway else None
    internal = f"{plan.outputs['libvirtHostAddress']}/{nets.internal.cidr.prefixlen}"
    return network.HostSide({"external": external, "internal": internal, "heartbeat": None})


class GuestStarter:
    """Starts each guest at most once, when first needed (thread-safe)."""

    def __init__(self, plan: PlanRecording, image: GuestImage, restore: str | None):
        self.order = sorted(plan.guests)
        self.plan, self.image, self.restore = plan, image, restore
        self.started: dict[str, float] = {}
        self.lock = Lock()

    def __call__(self, name: str) -> None:
        with self.lock:
            if name in self.started:
                return
            if not self.restore:
                guests.prepare(self.plan.guests[name], self.image)
            guests.start(self.order.index(name), self.plan.guests[name], self.image, self.restore)
            self.started[name] = time.monotonic()
            log(f"guest {name} started{' from snapshot' if self.restore else ''}")


# The steps of the last provisioning that succeeded, with its plan's key: what Pulumi's state would
# hold after a `pulumi up` that failed half-way, so `run --resume` can do what a second `pulumi up` does.
PROVISIONED = STATE / "provisioned.json"


def record_provisioned(key: str, results: list[StepResult], before: Iterable[str] = ()) -> None:
    """Save the steps done for the plan `key`: `before` plus the successful `results`."""
    done = set(before) | {r.name for r in results if r.ok}
    PROVISIONED.parent.mkdir(parents=True, exist_ok=True)
    PROVISIONED.write_text(json.dumps({"key": key, "done": sorted(done)}, indent=1) + "\n")


def provision(plan: PlanRecording, image: GuestImage, key: str, report: Report) -> None:
    start = report.provision_start = time.monotonic()
    starter = GuestStarter(plan, image, None)
    report.boots = starter.started
    report.steps = replay(plan, starter)
    record_provisioned(key, report.steps)
    report.timed(f"boot + provisioning ({len(plan.steps)} steps)", start)
    finish_provisioning(plan, key, report)


def finish_provisioning(plan: PlanRecording, key: str, report: Report) -> None:
    """Every step done: save every guest's snapshot under the plan's key; else fail the run."""
    if not all(s.ok for s in report.steps):
        raise RuntimeError("a step failed when replayed: the program is wrong, or a guest too starved to answer (see its output above); "
                           "`e2e run --keep --resume` runs the rest on the same guests, as a second `pulumi up` would")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(plan.guests)) as pool:
        list(pool.map(lambda g: guests.save_snapshot(g, guests.SNAPSHOT, key), sorted(plan.guests)))
    report.timed("snapshot save", start)


def resume_provisioning(plan: PlanRecording, key: str, report: Report) -> None:
    """A second `pulumi up` after one that failed: on the guests still running from it, the steps
    it did not finish (the failed one and those never started), in the plan's order; then the
    snapshots. Pulumi keeps no failed create in its state and runs it again; what succeeded stays."""
    record = json.loads(PROVISIONED.read_text()) if PROVISIONED.exists() else {}
    if record.get("key") != key:
        raise RuntimeError(f"nothing to resume: {PROVISIONED} records no provisioning of this plan")
    stopped = sorted(g for g in plan.guests if not guests.alive(g))
    if stopped:
        raise RuntimeError(f"nothing to resume: not running: {', '.join(stopped)} (a provisioning resumes on the guests it left)")
    done = set(record["done"]) & set(plan.steps)
    remaining = [s.name for s in plan.ordered() if s.name not in done]
    log(f"resuming the provisioning: {len(done)} steps done, {len(remaining)} to run: {', '.join(remaining)}")
    start = report.provision_start = time.monotonic()
    report.steps = replay(plan_of_changed(plan, remaining), lambda guest: None)
    record_provisioned(key, report.steps, done)
    report.timed(f"provisioning resumed ({len(remaining)} steps)", start)
    finish_provisioning(plan, key, report)


RESTORE_TIMEOUT_S = 600
# One SSH try after a restore. It was 15 s for the whole session while a just-restored director's
# sshd took 5-20 s for its banner alone (measured): every try failed, the restore "failed" and the
# run provisioned from scratch. ssh's own ConnectTimeout (ssh.CONNECT_TIMEOUT_S) bounds the dial within this.
SSH_TRY_S = 120


def restore(plan: PlanRecording, image: GuestImage, report: Report, names: Optional[Iterable[str]] = None) -> None:
    """Start `names` (default: every guest) from their snapshots and wait until each answers SSH."""
    start = time.monotonic()
    starter = GuestStarter(plan, image, guests.SNAPSHOT)
    chosen = sorted(plan.guests if names is None else names)
    for name in chosen:
        starter(name)
    first = {s.guest: s for s in reversed(plan.ordered()) if s.guest in chosen}
    # Ten guests load their saved memory (1-2 GiB each) at once before they run: on a slow day
    # here the first SSH answer took over 120 s. One bound for all of them.
    deadline = time.monotonic() + RESTORE_TIMEOUT_S
    for name, step in sorted(first.items()):
        wait_until(f"SSH to {name}", lambda: ssh(target_of(step), "true", timeout=SSH_TRY_S).returncode == 0, max(1.0, deadline - time.monotonic()), 1)
    report.timed("restore from snapshots", start)


def restored(plan: PlanRecording, image: GuestImage, report: Report) -> bool:
    """Restore the snapshots; a guest that never answers SSH after its restore (seen once here,
    cause unknown: it answered ping) costs a fresh provisioning, not the run."""
    start = time.monotonic()
    try:
        restore(plan, image, report)
        return True
    except Timeout as exc:
        log(f"restore failed ({exc}): provisioning from scratch instead")
        dump_guests_kernel_state()
        guests.stop_all()
        report.timed("restore from snapshots (failed)", start)
        return False


def recorded_stack(stack: str, report: Report) -> tuple[Topology, PlanRecording, GuestImage]:
    """The stack's model, its plan (the program under the mock engine) and the guest image (built or cached)."""
    start = time.monotonic()
    config = load_stack_file(stack_path(stack)).config
    topology = Topology(config)
    private, public = key_pair()
    plan = record(stack, private, public)
    log(f"recorded {len(plan.guests)} guests and {len(plan.steps)} remote commands from the program")
    report.timed("plan (program under the mock engine)", start)
    start = time.monotonic()
    image = ensure_image(render_cluster(config), config.cluster.docker.image)
    report.timed("guest image (build or cache)", start)
    return topology, plan, image


def e2e_run(stack: str, keep: bool, resume: bool = False) -> Report:
    """Provision (or restore from snapshots) and check; `resume`: finish the provisioning the last
    run left failed on the guests still running (`resume_provisioning`)."""
    report = Report()
    try:
        topology, plan, image = recorded_stack(stack, report)
        key = snapshot_key(image, plan)
        if resume:
            resume_provisioning(plan, key, report)
        else:
            guests.stop_all()
            network.create(host_side(topology, plan))
            guests.CHANGED_MARK.unlink(missing_ok=True)  # the guests start again from the plan's baseline
            if not (all(guests.snapshot_matches(g, key) for g in plan.guests) and restored(plan, image, report)):
                provision(plan, image, key, report)
        start = time.monotonic()
        watch = watch_vip(topology, plan)
        try:
            cluster = Cluster(topology, plan, watch)
            # Saving the snapshots paused every guest, and a restore resumes them from that moment:
            # the servers and the VIP settle first, so no check meets a backend still coming back.
            healthy(cluster)
            report.timed("settle (every server UP for 30 s, the VIP steady)", start)
            start = time.monotonic()
            report.checks = run_checks(cluster, log)
        finally:
            watch.stop()
        report.timed("tests", start)
    except Exception as exc:  # noqa: BLE001 - reported in the table; cleanup below runs anyway
        report.error = f"{type(exc).__name__}: {exc}"
        log(report.error)
    finally:
        if not report.ok:
            dump_guests_kernel_state()
        if not keep:
            e2e_down(purge=False)
    return report


def dump_guests_kernel_state() -> None:
    """After a failure, every running guest's blocked tasks and memory go to its console.log
    (kept by `e2e down`): the one record of a guest that no longer answers SSH."""
    for name in guests.started():
        if guests.alive(name):
            try:
                guests.dump_kernel_state(name)
            except (OSError, QmpError) as exc:
                log(f"{name}: no kernel state ({exc})")
    time.sleep(2)  # the kernel prints asynchronously
    log(f"kernel state of the running guests: {guests.GUESTS}/*/console.log")


def write_results(report: Report, out: Path) -> list[Path]:
    """The table as text and, after a provisioning, the timeline PNG."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.txt"]
    written[0].write_text(report.table() + "\n")
    if report.steps:
        written.append(out / "timeline.png")
        timeline.plot(report.steps, report.boots, report.provision_start, written[-1])
    return written


def e2e_down(purge: bool) -> None:
    """Stop the guests this tool started (by PID), remove the namespace; `purge` also drops snapshots and images."""
    stopped = guests.stop_all()
    network.destroy()
    log(f"stopped {len(stopped)} guests, removed namespace {network.NETNS}")
    if purge:
        shutil.rmtree(guests.STATE, ignore_errors=True)
        log(f"removed {guests.STATE}")
