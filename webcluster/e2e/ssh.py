"""SSH from the namespace to a guest, as pulumi-command's remote connection does it.

The key pair is generated once and kept under the state directory: the program is run
with it (``sshPrivateKey`` secret, ``sshPublicKey``), so cloud-init authorises it, and
saved snapshots stay usable across runs.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Optional

from ..netns import exec_argv
from . import network
from .shell import STATE, run

KEY = STATE / "ssh" / "id_ed25519"
CONNECT_TIMEOUT_S = 60
# A session outlives 2 min of silence: the NAS bond switch takes its network away for ~45 s under TCG.
# ConnectTimeout also bounds sshd's banner: 10 s cut off a busy emulated director's sshd for good
# (each abandoned attempt keeps an sshd child for LoginGraceTime and counts against MaxStartups).
OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
           "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=12")
DIAL_ERROR = re.compile(r"Connection (refused|timed out|closed|reset)|No route to host|Network is unreachable|kex_exchange_identification|banner exchange")


def key_pair() -> tuple[str, str]:
    """(private, public) OpenSSH text of the run's key, created on first use."""
    if not KEY.exists():
        KEY.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hawc-e2e", "-f", str(KEY)], timeout=30)
    return KEY.read_text(), KEY.with_suffix(".pub").read_text()


@dataclass(frozen=True)
class Target:
    host: str
    user: str = "debian"
    port: int = 22
    proxy: Optional[dict[str, Any]] = None  # pulumi-command's connection.proxy, unwrapped

    def argv(self, command: str) -> list[str]:
        args = exec_argv(network.NETNS, ["ssh", "-i", str(KEY), *OPTIONS, "-p", str(self.port)])
        if self.proxy:
            p = self.proxy
            args += ["-J", f"{p.get('user', self.user)}@{p['host']}:{int(p.get('port') or 22)}"]
        return [*args, f"{self.user}@{self.host}", command]


def ssh(target: Target, command: str, stdin: str = "", timeout: float = 120, dial_for: float = 0) -> subprocess.CompletedProcess:
    """Run `command` on the guest; while dialling fails (up to `dial_for` seconds) try again, as Pulumi redials."""
    deadline = time.monotonic() + dial_for
    while True:
        try:
            result = subprocess.run(target.argv(command), input=stdin.encode(), capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            result = subprocess.CompletedProcess([], 124, b"", f"timed out after {timeout:.0f}s".encode())
        dial_failed = result.returncode == 255 and not result.stdout and DIAL_ERROR.search(result.stderr.decode(errors="replace"))
        if not dial_failed or time.monotonic() > deadline:
            return result
        time.sleep(3)


def root(target: Target, script: str, timeout: float = 120, dial_for: float = 0) -> subprocess.CompletedProcess:
    """A shell script run as root on the guest (for checks; steps use the program's own command)."""
    return ssh(target, "sudo -n /bin/bash -s", stdin=script, timeout=timeout, dial_for=dial_for)
