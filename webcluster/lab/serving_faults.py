"""Issue #17 in the lab: faults after which the master can no longer serve, and faults that must move nothing.

Each fault hits the director holding the VIPs (or the Docker hosts) while a client probes the
service and a HolderWatch samples the VIP holders. A fault that leaves the master unable to
serve must move both VIPs to the next director, and back once repaired; the others must move
nothing. Every run measures the time until the service answers again and fails if two
directors ever held a VIP at once. The same code runs for both HA stacks: `lab test`
(scenarios), tests/test_lab*.py and `lab bench` (figures).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..waiting import wait_until
from . import apache, faults, pacemaker, probe
from .context import LabContext
from .holders import HolderWatch
from .state import sandbox

FAULT_TABLE = "hawc_lab_fault"  # nft table a fault adds in a director and removes again
PROBE_INTERVAL = 0.2


# --------------------------------------------------------------------------- the client's view


class ServiceProbe:
    """Requests from the client namespace every PROBE_INTERVAL s in a thread: (sent, answered, ok) each."""

    def __init__(self, lab: LabContext):
        self.url = lab.url(lab.topo.cluster.haproxy.services[0].port)
        self.results: list[tuple[float, float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            ok = probe.get(self.url, timeout=1).ok
            self.results.append((sent, time.monotonic(), ok))
            self._stop.wait(max(0.0, PROBE_INTERVAL - (time.monotonic() - sent)))

    def ok_since(self, t: float) -> bool:
        return any(ok and sent >= t for sent, _, ok in list(self.results))

    def back_after(self, t0: float) -> float:
        """Seconds from t0 until the service answered again after its last failed probe (0.0: it never stopped)."""
        after = [r for r in list(self.results) if r[0] >= t0]
        failed = [i for i, r in enumerate(after) if not r[2]]
        if not failed:
            return 0.0
        nxt = [r for r in after[failed[-1] + 1:] if r[2]]
        return (nxt[0][1] - t0) if nxt else float("nan")

    def longest_gap(self, t0: float) -> float:
        """The longest time between two successive answers around t0 (the probe interval when nothing was lost)."""
        answered = [done for sent, done, ok in list(self.results) if ok]
        before = [a for a in answered if a < t0][-1:]
        times = before + [a for a in answered if a >= t0]
        return max((b - a for a, b in zip(times, times[1:])), default=float("nan"))

    def __enter__(self) -> "ServiceProbe":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- the faults


def _set_nic(lab: LabContext, node: str, nic: str, up: bool) -> None:
    """`lab cut NODE --link NET` / `lab plug`: the network of the named NIC."""
    net = next(n.network for n in lab.topo.node(node).nics if n.name == nic)
    (faults.plug if up else faults.cut)(lab, node, net)


def _block_backends(lab: LabContext, node: str) -> None:
    """Drop everything the node sends to the Docker hosts (its NICs stay up)."""
    hosts = ", ".join(str(b.address) for b in lab.topo.cluster.backends)
    rules = f"table inet {FAULT_TABLE} {{\n\tchain out {{\n\t\ttype filter hook output priority 0; policy accept;\n\t\tip daddr {{ {hosts} }} drop\n\t}}\n}}\n"
    sandbox(node).run(["nft", "-f", "-"], input=rules)


def _unblock_backends(lab: LabContext, node: str) -> None:
    sandbox(node).run(["nft", "delete", "table", "inet", FAULT_TABLE], check=False)


def _containers(lab: LabContext) -> list[tuple[str, str]]:
    return [(b.name, c.name) for b in lab.topo.cluster.backends for c in b.containers]


def _stop_containers(lab: LabContext) -> None:
    for _, c in _containers(lab):
        faults.stop(lab, c)  # `docker stop` of php:apache


def _start_containers(lab: LabContext) -> None:
    from . import processes

    for host, c in _containers(lab):
        if not processes.alive(lab.state, host, apache.role(c)):
            faults.start(lab, c)


def _all_up(lab: LabContext) -> bool:
    try:
        return set(lab.stats()[0].values()) == {"UP"}
    except RuntimeError:
        return False


@dataclass(frozen=True)
class Fault:
    """A fault on the lab; `moves`: whether the VIPs must leave the master for the next director."""

    label: str
    moves: bool
    inject: Callable[[LabContext, str], None]
    repair: Callable[[LabContext, str], None]


def _last_host(lab: LabContext) -> str:
    return lab.topo.cluster.backends[-1].name


FAULTS: dict[str, Fault] = {
    "internal NIC down": Fault("internal NIC (enp0s8) of the master down", True, lambda lab, d: _set_nic(lab, d, "enp0s8", False), lambda lab, d: _set_nic(lab, d, "enp0s8", True)),
    "external NIC down": Fault("external NIC (enp0s3) of the master down", True, lambda lab, d: _set_nic(lab, d, "enp0s3", False), lambda lab, d: _set_nic(lab, d, "enp0s3", True)),
    "backends unreachable": Fault("the master's traffic to the Docker hosts dropped", True, _block_backends, _unblock_backends),
    "all containers stopped": Fault("every container stopped (docker stop)", False, lambda lab, _d: _stop_containers(lab), lambda lab, _d: _start_containers(lab)),
    "Docker host cut": Fault("one Docker host cut off", False, lambda lab, _d: lab.cut(_last_host(lab)), lambda lab, _d: lab.restore(_last_host(lab))),
}


# --------------------------------------------------------------------------- one run


@dataclass
class FaultRun:
    fault: str
    back_s: float  # fault (or, when nothing could serve, repair) to the service answering again; 0.0: never stopped
    moves: list[str]  # the external VIP's holders in turn
    took_s: Optional[float] = None  # fault to the next director holding both VIPs (faults that move them)
    gap_s: float = float("nan")  # the longest time between two answers of the service around the fault
    notes: list[str] = field(default_factory=list)


def _timeout(lab: LabContext) -> float:
    """Takeover bound: the stack's own, plus the hold of the backend check and HAProxy's detection."""
    base = pacemaker.FAILOVER_TIMEOUT if lab.pacemaker else 10.0
    return base + lab.topo.cluster.serving_check.hold_s + 10


def _holds_both(lab: LabContext, director: str) -> bool:
    return lab.vips_on(director) and lab.sole_holder(lab.vip) == director and lab.sole_holder(lab.internal_vip) == director


def run_fault(lab: LabContext, name: str) -> FaultRun:
    """Inject one fault on the running lab, measure, repair, and leave the VIPs on the master again."""
    fault = FAULTS[name]
    master, standby = lab.directors[0].name, lab.directors[1].name
    assert _holds_both(lab, master), f"{master} must hold both VIPs before the fault"
    hold = lab.topo.cluster.serving_check.hold_s
    with HolderWatch(lab) as watch, ServiceProbe(lab) as client:
        time.sleep(1.0)  # a baseline of samples and answers before the fault
        t0 = time.monotonic()
        fault.inject(lab, master)
        try:
            if fault.moves:
                took = wait_until(f"{standby} holds both VIPs alone", lambda: _holds_both(lab, standby), _timeout(lab), 0.02)
                wait_until("the service answers through the new holder", lambda: client.ok_since(t0 + took), 15, 0.1)
                run = FaultRun(name, client.back_after(t0), [], took)
            else:
                # Longer than the backend check's hold: a director that meant to move would have by then.
                time.sleep(hold + 6)
                run = FaultRun(name, client.back_after(t0), [])
        finally:
            t1 = time.monotonic()
            fault.repair(lab, master)
        if not fault.moves:
            wait_until("every server UP again", lambda: _all_up(lab), 30, 0.3)
            up = time.monotonic()
            wait_until("the service answers", lambda: client.ok_since(up), 15, 0.1)
            if client.back_after(t0) != 0.0:  # it stopped answering (nothing could serve): count from the repair
                run.back_s = client.back_after(t1)
            time.sleep(hold + 2)  # directors recovering a moment apart must not move anything either
        back = wait_until(f"{master} holds both VIPs again", lambda: _holds_both(lab, master), _timeout(lab), 0.05)
        if fault.moves:
            run.notes.append(f"repaired: {master} holds both VIPs again after {back:.1f} s")
        time.sleep(1.0)
    run.moves = watch.moves()
    run.gap_s = client.longest_gap(t0)
    return run


def assert_expected(lab: LabContext, run: FaultRun) -> list[str]:
    """What issue #17 asks of each fault; returns the scenario's notes."""
    fault = FAULTS[run.fault]
    master, standby = lab.directors[0].name, lab.directors[1].name
    stack = "pacemaker" if lab.pacemaker else "keepalived"
    if fault.moves:
        assert run.moves == [master, standby, master], f"{run.fault}: VIP holders in turn {run.moves}, expected {[master, standby, master]}"
        head = f"[{stack}] {fault.label}: {standby} took both VIPs in {run.took_s:.2f} s; service back after {run.back_s:.2f} s (0: no probe failed), longest gap between answers {run.gap_s:.2f} s"
    else:
        assert run.moves == [master], f"{run.fault}: the VIPs moved ({run.moves}); they must stay on {master}"
        what = "never stopped answering" if run.back_s == 0.0 else f"answered again {run.back_s:.2f} s after the repair"
        head = f"[{stack}] {fault.label}: the VIPs stayed on {master}; the service {what}, longest gap between answers {run.gap_s:.2f} s"
    assert run.back_s == run.back_s, f"{run.fault}: the service did not answer again"  # NaN
    return [head, *run.notes, "never two holders of a VIP"]


def scenario_for(name: str) -> Callable[[LabContext], list[str]]:
    def run(lab: LabContext) -> list[str]:
        return assert_expected(lab, run_fault(lab, name))

    run.__name__ = "serving_" + name.lower().replace(" ", "_")
    run.__doc__ = f"Issue #17: {FAULTS[name].label}; " + ("the VIPs move to the next director and back." if FAULTS[name].moves else "the VIPs stay where they are.")
    return run


# --------------------------------------------------------------------------- lab bench


@dataclass
class ServingRow:
    stack: str
    fault: str
    back_s: list[float]
    took_s: list[float]
    gap_s: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.back_s)

    @property
    def worst(self) -> float:
        return max(self.back_s)


def measure(lab: LabContext, trials: int, progress: Callable[[str], None]) -> list[ServingRow]:
    """Every fault `trials` times on the running lab; the scenario's expectations hold on each trial."""
    stack = "pacemaker" if lab.pacemaker else "keepalived"
    rows = []
    for name in FAULTS:
        runs = [run_fault(lab, name) for _ in range(trials)]
        for r in runs:
            assert_expected(lab, r)
        row = ServingRow(stack, name, [r.back_s for r in runs], [r.took_s for r in runs if r.took_s is not None], [r.gap_s for r in runs])
        rows.append(row)
        progress(f"serving {stack}, {name}: service back after median {row.median:.2f} s, max {row.worst:.2f} s")
    return rows
