"""Shared fixtures: the repository's stack files, the dev plan, and the CLI as a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `pytest` as well as `python -m pytest` imports the package from the checkout

from webcluster import pki
from webcluster.render import ClusterPlan, https, render_cluster
from webcluster.stackfile import LoadedStack, load_stack_file

if TYPE_CHECKING:
    from webcluster.lab.context import LabContext

DEV_STACK = ROOT / "Pulumi.dev.yaml"
TOPOLOGIES = sorted((ROOT / "tests" / "topologies").glob("*.yaml"))


def run_cli(*args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
    """`python -m webcluster ARGS` from the repository root, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "webcluster", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="session")
def dev_stack() -> LoadedStack:
    return load_stack_file(DEV_STACK)


@pytest.fixture(scope="session")
def dev_plan(dev_stack: LoadedStack) -> ClusterPlan:
    return render_cluster(dev_stack.config)


@contextmanager
def running_lab(stack: Path) -> Iterator["LabContext"]:
    """The namespace lab of a stack file, up for the with block and removed after it (also when a
    test fails), the lab lock held throughout: a lab command running elsewhere finishes first."""
    from webcluster.lab import lifecycle
    from webcluster.lab.context import LabContext
    from webcluster.lab.state import exclusive

    def quiet(_msg: str) -> None:
        pass

    with exclusive():
        lifecycle.down(progress=quiet)
        try:
            lifecycle.up(load_stack_file(stack), str(stack), progress=quiet)
            yield LabContext.current()
        finally:
            lifecycle.down(progress=quiet)


@contextmanager
def bridged_namespaces(hub: str, holders: dict[str, str]) -> Iterator[None]:
    """Namespace `hub` with bridge br0, and one namespace per `holders` key whose eth0 (MAC =
    the value) is a port of br0: a LAN segment to hear and send ARP on. Removed afterwards."""
    from webcluster import netns

    try:
        netns.add_netns(hub)
        netns.ip("-n", hub, "link", "add", "br0", "type", "bridge")
        netns.ip("-n", hub, "link", "set", "br0", "up")
        for i, (ns, mac) in enumerate(holders.items()):
            netns.add_netns(ns)
            netns.ip("-n", hub, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            netns.ip("-n", hub, "link", "set", f"p{i}", "master", "br0", "up")
            netns.ip("-n", ns, "link", "set", "eth0", "address", mac, "up")
        yield
    finally:
        for ns in (hub, *holders):
            netns.del_netns(ns)


def free_ports(n: int) -> list[int]:
    """`n` distinct loopback ports nothing listens on (held together while chosen: no repeats)."""
    held: list[socket.socket] = []
    try:
        for _ in range(n):
            held.append(socket.socket())
            held[-1].bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def free_port() -> int:
    """A loopback port nothing listens on (a server HAProxy's checks see DOWN)."""
    return free_ports(1)[0]


def fake_programs(bin_dir: Path, programs: dict[str, str]) -> Path:
    """Tiny bash programs standing in for real ones (`name -> body`), in `bin_dir` (created) to put first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in programs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def haproxy_and_a_server() -> socket.socket:
    """For tests that run a real HAProxy on loopback: skips without haproxy; returns a listening
    loopback socket (a server HAProxy's checks see UP). The caller closes it."""
    if not shutil.which("haproxy"):
        pytest.skip("haproxy not installed")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


def https_pem(store: Path, renew: bool = False) -> tuple[str, str]:
    """For tests that run a real HAProxy with TLS: a server certificate for 127.0.0.1 and localhost
    in HAProxy's `crt` format (certificate, CA, key), and the CA that signed it, kept in `store`.
    `renew`: a new certificate (new serial) for the same key."""
    m = pki.ensure_server(store, ["127.0.0.1"], ["localhost"], "test CA", renew=renew)
    return https.pem_bundle(m[pki.SERVER_CERT] + m[pki.CA_KEY], m[pki.SERVER_KEY]), m[pki.CA_KEY]
