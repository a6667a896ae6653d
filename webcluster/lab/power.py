"""The lab's power switch: what fence_lab (webcluster.lab.fence_lab) operates.

A service of the lab in the root namespaces (node processes.HOST in the lab state, so
`lab down` stops it like any daemon), where the nodes' cables are. Its `off` powers a
node off for real, in this order:

1. every cable out (network.set_links): from then on the node can tell nobody anything;
2. every process of the node killed: the process groups of the daemons the lab state
   records (checked to still be in the node's network namespace: a PID may be reused),
   then whatever else still runs in that namespace (what Pacemaker started: HAProxy,
   resource agents);
3. the VIPs removed from its NICs (a machine that is off holds no address).

Only then it answers "done", and appends the fencing to a journal (tests compare its
times with the moment a survivor took the VIPs). One request at a time: two fencings
never interleave.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .. import netns
from . import network, processes
from .fence_lab import ask
from .state import LAB_ROOT, LabState, netns_name, sandbox

ROLE = "power-switch"  # its role in the lab state, on node processes.HOST
SOCKET = LAB_ROOT / "fence.sock"
JOURNAL = LAB_ROOT / "logs" / "fence-journal.jsonl"  # `lab down` removes logs/


# --------------------------------------------------------------------------- powering off


def _netns_inode(node: str) -> Optional[int]:
    try:
        return os.stat(f"/run/netns/{netns_name(node)}").st_ino
    except OSError:
        return None


def _in_netns(pid: int, inode: Optional[int]) -> bool:
    """Whether pid still is a process of that node (a recorded PID may have been reused since)."""
    try:
        return inode is not None and os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except OSError:
        return False


def kill_node_processes(state: LabState, node: str, timeout: float = 5.0) -> int:
    """SIGKILL the node's recorded daemons (process groups), then anything else in its network namespace."""
    inode = _netns_inode(node)
    recorded = [p.pid for p in state.processes if p.node == node and _in_netns(p.pid, inode)]
    for pid in recorded:
        processes.signal_group(pid, signal.SIGKILL)
    killed = set(recorded)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rest = netns.pids_in(netns_name(node))
        if not rest:
            return len(killed)
        for pid in rest:
            killed.add(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"processes of {node} survived SIGKILL: {netns.pids_in(netns_name(node))}")


def drop_addresses(node: str, addresses: Sequence[str]) -> list[str]:
    """Remove these addresses from the node's NICs; returns what was removed (address/prefix)."""
    ns = netns_name(node)
    dropped = []
    for line in netns.run(["ip", "-n", ns, "-o", "-4", "addr", "show"], check=False).stdout.splitlines():
        fields = line.split()
        dev, cidr = fields[1], fields[3]
        if cidr.split("/")[0] in addresses:
            netns.run(["ip", "-n", ns, "addr", "del", cidr, "dev", dev], check=False)
            dropped.append(cidr)
    return dropped


def power_off(node: str, vips: Sequence[str], cause: str = "fenced") -> dict[str, Any]:
    """Power `node` off (see the module docstring for the order and why) and journal it: the one
    way the lab powers a node off, for fencing and for `lab power off` (cause says which)."""
    state = LabState.load()
    if state is None or node not in state.links:
        raise KeyError(f"{node} is not a node of the running lab")
    started = time.monotonic()
    network.set_links(state, node, up=False)
    killed = kill_node_processes(state, node)
    dropped = drop_addresses(node, vips)
    entry = {"node": node, "action": "off", "cause": cause, "started": started, "done": time.monotonic(), "links_down": state.links[node], "killed": killed, "vips_dropped": dropped}
    _journal(entry)
    return entry


def _journal(entry: dict[str, Any]) -> None:
    JOURNAL.parent.mkdir(parents=True, exist_ok=True)
    with open(JOURNAL, "a") as f:
        f.write(json.dumps(entry) + "\n")


def power_on(state: LabState, node: str, ready: Callable[[str], None] = lambda _role: None, boot: Callable[[], None] = lambda: None,
             links: Optional[Sequence[str]] = None) -> bool:
    """The lab's power button: cables in (these links, all by default), then every daemon the lab
    recorded for the node that is not running, in the recorded order (`ready(role)` after each:
    wait until it answers). A node that was off boots: an empty /run and /dev/shm, then `boot()`
    (its mounts) before the daemons. Returns whether it was off."""
    network.set_links(state, node, up=True, links=links)
    was_off = not netns.pids_in(netns_name(node))
    if was_off:
        sandbox(node).clear_runtime()
        boot()
    for proc in [p for p in state.processes if p.node == node]:
        processes.start(state, node, proc.role, proc.argv)
        ready(proc.role)
    if was_off:
        _journal({"node": node, "action": "on", "done": time.monotonic()})
    return was_off


def journal(action: str = "off") -> list[dict[str, Any]]:
    """Every power-off (or power-on) carried out, oldest first (times: time.monotonic(), the same clock in every process)."""
    entries = [json.loads(line) for line in JOURNAL.read_text().splitlines()] if JOURNAL.exists() else []
    return [e for e in entries if e.get("action", "off") == action]


def powered_off() -> set[str]:
    """The nodes whose last power action was `off` (fenced, or `lab power off`) and that are not on again."""
    last: dict[str, str] = {}
    for line in JOURNAL.read_text().splitlines() if JOURNAL.exists() else []:
        entry = json.loads(line)
        last[entry["node"]] = entry["action"]
    return {node for node, action in last.items() if action == "off"}


def cables_in(state: LabState, node: str) -> bool:
    return any("state DOWN" not in netns.run(["ip", "-o", "link", "show", link], check=False).stdout for link in state.links.get(node, []))


def power_state(node: str) -> str:
    """`off` once the node's cables are out and nothing runs in it (what power_off leaves)."""
    state = LabState.load()
    on = state is not None and cables_in(state, node)
    return "on" if on or netns.pids_in(netns_name(node)) else "off"


# --------------------------------------------------------------------------- the service


def handle(request: dict[str, str], vips: Sequence[str]) -> dict[str, Any]:
    action, node = request.get("action", ""), request.get("node", "")
    try:
        if action == "off":
            return {"ok": True, **power_off(node, vips)}
        if action == "status":
            return {"ok": True, "power": power_state(node)}
        if action == "list":
            state = LabState.load()
            return {"ok": True, "nodes": sorted(state.links) if state else []}
        if action in ("monitor", "validate-all"):
            return {"ok": LabState.load() is not None}
        return {"ok": False, "error": f"unsupported action {action!r}"}
    except Exception as exc:  # noqa: BLE001 - the agent must get an answer, whatever went wrong
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # root only: whoever can connect can power nodes off
    try:
        srv.bind(str(path))
    finally:
        os.umask(old)
    srv.listen(8)
    return srv


def serve(path: Path, vips: Sequence[str]) -> None:
    """Answer requests one at a time, each on its own connection; log every request and reply."""
    with _listen(path) as srv:
        while True:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(10)
                try:
                    request = json.loads(conn.makefile("rb").readline() or b"{}")
                except (OSError, ValueError):
                    continue
                reply = handle(request, vips)
                print(json.dumps({"request": request, "reply": reply}), flush=True)
                try:
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:
                    pass


def start(state: LabState, vips: Sequence[str], timeout: float = 15.0) -> None:
    """Start the switch (recorded in the lab state) and wait, bounded, until it answers."""
    argv = processes.module_argv("webcluster.lab.power", "--socket", str(SOCKET), "--vips", ",".join(vips))
    processes.start(state, processes.HOST, ROLE, argv)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ask(SOCKET, {"action": "monitor"}, timeout=5).get("ok"):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the lab's power switch did not answer on {SOCKET} within {timeout:.0f} s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webcluster.lab.power", description="the namespace lab's power switch (fence_lab's other end)")
    parser.add_argument("--socket", type=Path, default=SOCKET)
    parser.add_argument("--vips", default="", help="comma-separated addresses a powered-off node loses")
    args = parser.parse_args(argv)
    serve(args.socket, [v for v in args.vips.split(",") if v])
    return 0


if __name__ == "__main__":
    sys.exit(main())
