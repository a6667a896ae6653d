"""Start and stop the lab's daemons, by the PIDs we recorded (never by name)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .. import netns
from . import apache
from ..render.director import HAPROXY_CFG, HAPROXY_PIDFILE, HAPROXY_STATE
from ..sandbox import pid_alive, proc_stat, spawn
from .state import CLIENT, LAB_ROOT, LabState, Process, netns_name, sandbox

HOST = "host"  # the node name of the lab's own services, which run in the root namespaces (the fence switch)
# As Debian's haproxy.service runs it: master-worker in the foreground (-Ws), the master's PID in the
# pid file the rendered reload script signals (-p), the master CLI (-S).
HAPROXY = ["haproxy", "-Ws", "-f", HAPROXY_CFG, "-p", HAPROXY_PIDFILE, "-S", "/run/haproxy-master.sock"]


# Pid files a daemon checks before it starts. keepalived refuses to start ("daemon is already running",
# exit 0) while the PID in its file is alive, and with this machine's pid_max (32768) a busy lab hands a
# SIGKILLed keepalived's PID to another process within minutes. Apache (a container) the same ("httpd
# (pid N) already running", exit 0): a SIGKILLed Apache started by an earlier lab command stays a zombie
# until PID 1 reaps it, and a zombie's PID answers kill(pid, 0). systemd removes a unit's pid file when
# its process is gone; the lab does the same before it starts the daemon again.
PID_FILES = {
    "keepalived": ("/run/keepalived.pid", "/run/keepalived/vrrp.pid", "/run/keepalived/checkers.pid",
                   "/run/keepalived/bfd.pid", "/run/vrrp.pid", "/run/checkers.pid"),
    # Not a pid file: the servers' state a reload saved. The rendered haproxy.service drop-in removes
    # it before a start (ExecStartPre), so a start never brings back a drain from some earlier reload.
    "haproxy": (HAPROXY_STATE,),
}


def module_argv(module: str, *args: str) -> list[str]:
    """A module of this package run as a lab process (`python -m`), whatever the current directory."""
    return ["env", f"PYTHONPATH={Path(__file__).resolve().parents[2]}", sys.executable, "-m", module, *args]


def log_path(node: str, role: str) -> Path:
    return LAB_ROOT / "logs" / f"{node}.{role.replace(':', '-')}.log"


def inside(node: str, argv: Sequence[str]) -> list[str]:
    """argv run in the node's namespaces: the root ones for HOST, the client's network namespace
    (it has no private mounts), a node's sandbox."""
    if node == HOST:
        return list(argv)
    if node == CLIENT:
        return netns.exec_argv(netns_name(CLIENT), argv)
    return sandbox(node).argv(argv)


def start(state: LabState, node: str, role: str, argv: Sequence[str]) -> Process:
    """Start argv inside the node, or in the root namespaces for HOST (its own session, so the whole
    process group can be signalled); a daemon already running (not a zombie) is left alone."""
    old = state.find(node, role)
    if old and alive(state, node, role):
        return old
    remove_stale_pid_files(node, role)
    log = log_path(node, role)
    popen = spawn(inside(node, argv), log)
    proc = Process(node=node, role=role, pid=popen.pid, argv=list(argv), log=str(log), started=start_time(popen.pid) or 0)
    state.replace(proc)
    state.save()
    return proc


def pid_file(node: str, path: str) -> Path:
    """Where a pid file in a node's /run (or another of its private directories) lives on the host."""
    return sandbox(node).path(path)


def pid_files(role: str) -> tuple[str, ...]:
    """The pid files a daemon (or a container's Apache) checks before it starts."""
    container = apache.container_of(role)
    return (apache.pid_path(container),) if container else PID_FILES.get(role, ())


def remove_stale_pid_files(node: str, role: str) -> None:
    """The pid files of a daemon that is not running (start() checked), as systemd removes them."""
    if node not in (HOST, CLIENT):
        for path in pid_files(role):
            pid_file(node, path).unlink(missing_ok=True)


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start_time(pid: int) -> Optional[int]:
    """When the process with this PID started (clock ticks since boot); None if there is none."""
    try:
        return int(proc_stat(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def is_recorded_process(proc: Process) -> bool:
    """Whether proc.pid still is the process the lab started, not one the PID was reused for."""
    return not proc.started or start_time(proc.pid) == proc.started


def send(state: LabState, node: str, role: str, sig: int) -> Optional[Process]:
    """Signal a recorded process's group, without waiting (never a process its PID was reused
    for); the process (None if never started)."""
    proc = state.find(node, role)
    if proc is not None and is_recorded_process(proc):
        signal_group(proc.pid, sig)
    return proc


def stop(state: LabState, node: str, role: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
    """Signal a daemon's process group and wait (bounded) until its leader is gone."""
    proc = send(state, node, role, sig)
    if proc is None:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(proc):
            return True
        time.sleep(0.02)
    signal_group(proc.pid, signal.SIGKILL)
    return _gone(proc)


def retire(state: LabState, node: str, role: str) -> None:
    """Stop a helper that is not one of the node's daemons (a delayer) and drop it from the state,
    so `lab status` and `heal` do not count it as a daemon that should be running."""
    stop(state, node, role)
    state.forget(node, role)
    state.save()


def _gone(proc: Process) -> bool:
    """Dead, or a zombie (a daemon started by an earlier lab command is no child of ours to reap),
    or its PID now another process's."""
    _reap(proc.pid)
    return not pid_alive(proc.pid) or is_zombie(proc.pid) or not is_recorded_process(proc)


def restart(state: LabState, node: str, role: str) -> Process:
    proc = state.find(node, role)
    if proc is None:
        raise KeyError(f"{node}/{role} was never started")
    stop(state, node, role)
    return start(state, node, role, proc.argv)


def alive(state: LabState, node: str, role: str) -> bool:
    proc = state.find(node, role)
    if proc is None:
        return False
    return not _gone(proc)


def is_zombie(pid: int) -> bool:
    try:
        return proc_stat(pid)[0] == "Z"
    except (OSError, IndexError):
        return False
