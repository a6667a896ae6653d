"""The directors' HAProxy request logs in the lab: what rsyslog gives a real director.

The rendered haproxy.cfg logs to /dev/log from inside its chroot, so on a director it is
rsyslog's socket in /var/lib/haproxy/dev/log (Debian's rsyslog drop-in) that hears it. The
lab has no rsyslog: this service (node processes.HOST, like the power switch, so `lab down`
stops it) binds that socket in every director's private /var/lib/haproxy and writes each
message, prefixed with the director's name, to its own log. A failed request then names its
server, its timers and its termination state (`request_failures`), where a test only saw a
status code.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..requestlog import RequestLog, failures
from ..waiting import wait_until
from . import processes
from .state import LabState, sandbox

ROLE = "haproxy-log"  # its role in the lab state, on node processes.HOST
CHROOT = "/var/lib/haproxy"  # the rendered haproxy.cfg's `chroot` (tests/test_lab_haproxy_log.py holds them equal)
LOG_TARGET = "/dev/log"  # the rendered haproxy.cfg's `log` target, resolved inside the chroot
def socket_path(director: str) -> Path:
    """Where a director's HAProxy sends its log lines, on the host."""
    return sandbox(director).path(CHROOT + LOG_TARGET)


def _bind(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    os.chmod(path, 0o666)  # HAProxy writes as user haproxy after dropping root
    return sock


def serve(directors: Sequence[str]) -> None:
    """Receive every director's messages and print them, one line each, prefixed with its name."""
    sockets = {_bind(socket_path(d)): d for d in directors}
    while True:
        ready, _, _ = select.select(list(sockets), [], [])
        for sock in ready:
            message = sock.recv(65536).decode(errors="replace").rstrip("\n")
            print(f"{sockets[sock]} {message}", flush=True)


def start(state: LabState, directors: Sequence[str], timeout: float = 15.0) -> None:
    """Start the receiver before the directors' HAProxy (it logs to a socket that exists or nowhere)."""
    argv = processes.module_argv("webcluster.lab.haproxy_log", *directors)
    processes.start(state, processes.HOST, ROLE, argv)
    wait_until(f"the HAProxy log receiver's sockets (see {processes.log_path(processes.HOST, ROLE)})", lambda: all(socket_path(d).is_socket() for d in directors), timeout)


def log_offset() -> int:
    """The receiver log's size now: request_failures(since=...) then reads only what came after."""
    path = processes.log_path(processes.HOST, ROLE)
    return path.stat().st_size if path.exists() else 0


def request_failures(since: int = 0) -> list[RequestLog]:
    """Requests a director answered with a 5xx (or none at all) after byte `since` of the log."""
    path = processes.log_path(processes.HOST, ROLE)
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(since)
        text = f.read().decode(errors="replace")
    return failures(text.splitlines())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webcluster.lab.haproxy_log", description="the lab directors' HAProxy log receiver")
    parser.add_argument("directors", nargs="+")
    serve(parser.parse_args(argv).directors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
