"""Running host commands with a bounded time, and timestamped progress lines.

Every external command of the e2e run goes through :func:`run`, so no wait is unbounded
and a failure names the command and its output.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ..netns import exec_argv

STATE = Path("/var/lib/hawc-e2e")  # everything the e2e run keeps on the host
PREFIX = "hwe"  # namespace, bridge and tap names
_T0 = time.monotonic()


class CommandFailed(RuntimeError):
    """A host command exited non-zero or ran out of time."""


def log(message: str) -> None:
    """One progress line with the time since start (long phases print as they go)."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


def run(
    cmd: Sequence[str], timeout: float = 600, check: bool = True, input: Optional[bytes] = None, netns: Optional[str] = None
) -> subprocess.CompletedProcess:
    """Run `cmd` (inside `netns` if given), at most `timeout` seconds; output captured."""
    argv = exec_argv(netns, cmd) if netns else list(cmd)
    try:
        result = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if check and result.returncode != 0:
        tail = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
        raise CommandFailed(f"exit {result.returncode}: {' '.join(argv)}\n{tail}")
    return result


def exit_on_sigterm() -> None:
    """Turn SIGTERM (a CI job's timeout, `kill PID`) into SystemExit, so the run's `finally`
    still stops the guests and removes the namespace."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
