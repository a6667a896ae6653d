"""Network-namespace primitives (iproute2), shared by the config checks and the lab.

Every name we create starts with a prefix we own, so cleanup can find exactly what we
made (and nothing else), even after a crash.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

NETNS_ETC = Path("/etc/netns")


class CommandError(RuntimeError):
    pass


def run(cmd: Sequence[str], check: bool = True, timeout: float = 30, input: Optional[str] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise CommandError(f"{' '.join(cmd)} -> {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["ip", *args], check=check)


def list_netns() -> list[str]:
    out = run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def exists(ns: str) -> bool:
    return ns in list_netns()


def add_netns(ns: str, hosts: Optional[str] = None) -> None:
    """Create a namespace with lo up; `hosts` becomes its /etc/hosts (ip netns exec bind-mounts it)."""
    if not exists(ns):
        ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    if hosts is not None:
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts)


def del_netns(ns: str) -> None:
    if exists(ns):
        # Processes still inside keep it alive but invisible: kill only those inside this namespace.
        for pid in pids_in(ns):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        ip("netns", "del", ns, check=False)
    etc = NETNS_ETC / ns
    if etc.exists():
        for f in etc.iterdir():
            f.unlink()
        etc.rmdir()


def pids_in(ns: str) -> list[int]:
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def veth_into(ns: str, inside: str, outside: str, bridge: Optional[str] = None, mac: Optional[str] = None) -> None:
    """A veth pair: `inside` in the namespace (renamed as the model's NIC), `outside` in the root namespace."""
    if ip("link", "show", outside, check=False).returncode == 0:
        ip("link", "del", outside, check=False)
    tmp = f"{outside[:14]}i"  # carries the caller's prefix, so a crash leaves nothing unowned
    ip("link", "add", outside, "type", "veth", "peer", "name", tmp)
    ip("link", "set", tmp, "netns", ns)
    ip("-n", ns, "link", "set", tmp, "name", inside)
    if mac:
        ip("-n", ns, "link", "set", inside, "address", mac)
    ip("-n", ns, "link", "set", inside, "up")
    if bridge:
        ip("link", "set", outside, "master", bridge)
    ip("link", "set", outside, "up")


def add_bridge(name: str) -> None:
    if ip("link", "show", name, check=False).returncode != 0:
        ip("link", "add", name, "type", "bridge")
    # Forward link-local multicast (VRRP) at once; no STP delay on a lab bridge.
    ip("link", "set", name, "type", "bridge", "forward_delay", "0", "stp_state", "0")
    ip("link", "set", name, "up")


def del_link(name: str) -> None:
    if ip("link", "show", name, check=False).returncode == 0:
        ip("link", "del", name, check=False)


def links_with_prefix(prefix: str) -> list[str]:
    out = run(["ip", "-o", "link", "show"], check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return [n for n in names if n.startswith(prefix)]


def add_address(ns: str, dev: str, cidr: str) -> None:
    proc = ip("-n", ns, "addr", "add", cidr, "dev", dev, check=False)
    if proc.returncode != 0 and "File exists" not in proc.stderr:
        raise CommandError(proc.stderr.strip())


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@contextmanager
def throwaway(ns: str, hosts: Optional[str] = None, interfaces: Sequence[str] = (), addresses: Sequence[tuple[str, str]] = ()) -> Iterator[str]:
    """A namespace for one check, removed afterwards (also on failure)."""
    del_netns(ns)
    add_netns(ns, hosts)
    outside: list[str] = []
    try:
        for i, name in enumerate(interfaces):
            peer = f"{ns[:10]}x{i}"
            veth_into(ns, name, peer)
            outside.append(peer)
        for dev, cidr in addresses:
            add_address(ns, dev, cidr)
        yield ns
    finally:
        for peer in outside:
            del_link(peer)
        del_netns(ns)
