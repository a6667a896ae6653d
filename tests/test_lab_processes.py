"""The lab's process records against PID reuse: pid_max is 32768 on this machine, and a CI run
spawns enough processes to wrap it, so the PID of a daemon the lab recorded (one a fencing killed)
can belong to another process by the time the lab looks at it again. Once, `lab heal` then took a
stranger for the director's corosync, started nothing and waited 30 s for it, twice.

No lab needed: the records point at processes these tests start themselves (in the root
namespaces, node HOST), and the state is never saved.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from webcluster.lab import processes
from webcluster.lab.state import LabState, Process


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen]:
    """A process the lab did not start (what a reused PID now names)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def record(pid: int, started: int) -> LabState:
    state = LabState(stack="t", stack_file="t")
    state.save = lambda: None  # type: ignore[method-assign]  # never the running lab's state file
    state.replace(Process(node=processes.HOST, role="daemon", pid=pid, argv=["sleep", "60"], log="/dev/null", started=started))
    return state


def test_start_time_tells_two_processes_with_the_same_pid_apart(stranger: subprocess.Popen) -> None:
    started = processes.start_time(stranger.pid)
    assert started is not None and started > 0
    assert processes.start_time(stranger.pid) == started
    assert processes.start_time(2**22 + 1) is None  # above any pid_max: no such process


def test_a_reused_pid_is_not_the_recorded_daemon(stranger: subprocess.Popen) -> None:
    started = processes.start_time(stranger.pid)
    assert started is not None
    assert processes.alive(record(stranger.pid, started), processes.HOST, "daemon")
    reused = record(stranger.pid, started + 1)
    assert not processes.alive(reused, processes.HOST, "daemon")
    assert processes.stop(reused, processes.HOST, "daemon", timeout=1)  # the daemon is gone...
    assert stranger.poll() is None  # ...and the process that has its PID now was not signalled


def test_start_runs_the_daemon_again_when_its_pid_was_reused(stranger: subprocess.Popen, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "log_path", lambda node, role: tmp_path / f"{node}.{role}.log")
    started = processes.start_time(stranger.pid)
    assert started is not None
    state = record(stranger.pid, started + 1)
    new = processes.start(state, processes.HOST, "daemon", ["sleep", "60"])
    try:
        assert new.pid != stranger.pid and processes.alive(state, processes.HOST, "daemon")
        assert new.started == processes.start_time(new.pid)
        assert stranger.poll() is None
    finally:
        os.killpg(new.pid, signal.SIGKILL)
