"""Replaying the program's remote commands on the guests, in an order the dependency graph allows.

Each step runs as pulumi-command would run it: one SSH session to the connection's host
running the recorded ``create`` command with the recorded ``stdin``; a step starts once
every step it depends on has succeeded, and independent steps run at the same time (as
the engine does). A guest boots as soon as its Domain could be created: at once, or when
the steps its Domain depends on are done (DHCP clients wait for the master's dnsmasq), as
the engine would create it.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from .recording import PlanRecording, RemoteStep
from .shell import log
from .ssh import Target, ssh

DIAL_S = 900  # how long a step keeps dialling a booting guest (Pulumi: 60 x 10 s)
STEP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class StepResult:
    name: str
    guest: str
    ok: bool
    seconds: float
    output: str  # tail of stdout + stderr
    started: float = 0.0  # time.monotonic() when it started (for the timeline plot)


def target_of(step: RemoteStep) -> Target:
    return Target(step.host, step.user, step.port, step.proxy)


def run_step(step: RemoteStep) -> StepResult:
    start = time.monotonic()
    result = ssh(target_of(step), step.command, stdin=step.stdin, timeout=STEP_TIMEOUT_S, dial_for=DIAL_S)
    text = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode:
        text += f"\n[exit {result.returncode}{', ssh lost the session' if result.returncode == 255 else ''}]"
    return StepResult(step.name, step.guest, result.returncode == 0, time.monotonic() - start, text[-4000:], start)


def replay(plan: PlanRecording, ensure_guest: Callable[[str], None], parallel: int = 16) -> list[StepResult]:
    """Run every step once; stops scheduling at the first failure and returns the results so far."""
    done: set[str] = set()
    results: list[StepResult] = []
    running: dict[Future, str] = {}
    failed = False
    pending = set(plan.steps)
    pool = ThreadPoolExecutor(max_workers=parallel)
    try:
        while (pending and not failed) or running:
            if not failed:
                booted = {g.name for g in plan.guests.values() if g.boot_after <= done}
                for guest in sorted(booted):
                    ensure_guest(guest)
                # A step also waits for its VM, and so for what the VM's creation waits for.
                for name in sorted(n for n in pending if plan.steps[n].after <= done and plan.steps[n].guest in booted):
                    if len(running) >= parallel:
                        break
                    step = plan.steps[name]
                    log(f"step {name} started")
                    running[pool.submit(run_step, step)] = name
                    pending.discard(name)
            if not running:
                if pending and not failed:
                    raise RuntimeError(f"no step can start: {sorted(pending)}")
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                running.pop(future)
                r = future.result()
                results.append(r)
                log(f"step {r.name} {'ok' if r.ok else 'FAILED'} in {r.seconds:.1f}s")
                if r.ok:
                    done.add(r.name)
                else:
                    failed = True
                    log(f"output of {r.name}:\n{r.output}")
    except BaseException:
        # Interrupted (SIGTERM, Ctrl-C): do not wait out the running sessions; the caller's
        # cleanup stops the guests, which ends them.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results
