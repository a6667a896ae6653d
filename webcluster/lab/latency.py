"""Added latency (and loss) on NICs of lab nodes: what `tc qdisc ... netem delay ... loss` would do.

The lab's kernel has no sch_netem (nor fq, nor loadable modules), so the lab delays packets
with netfilter's NFQUEUE instead: iptables rules in the node's own network namespace hand
every packet leaving (OUTPUT -o NIC) and entering (PREROUTING -i NIC) that NIC to a queue,
and this module, a lab process inside the same namespace, gives each its ACCEPT verdict
`delay` after it arrived, in arrival order. The kernel keeps the packet meanwhile (only
metadata is copied), so nothing about it changes but its timing. The rules use
`--queue-bypass` and the queue fails open, so a delayer that is gone or overwhelmed lets
packets through instead of cutting the link.

Standard library only: the nfnetlink_queue protocol (linux/netfilter/nfnetlink_queue.h)
over a raw netlink socket.
"""

from __future__ import annotations

import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

if TYPE_CHECKING:
    from .state import LabState

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
QUEUE = 7405  # the lab's queue number (corosync's knet port is 5405)
ROLE = "latency"  # the delayer's role in the lab state
REALTIME_PRIORITY = 50  # SCHED_FIFO: above ordinary processes, below corosync (99), as the kernel's netem would be


# --------------------------------------------------------------------------- nfnetlink_queue


def message(kind: int, queue: int, attrs: Sequence[tuple[int, bytes]], flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    """One netlink message of the queue subsystem: nlmsghdr, nfgenmsg (res_id = queue number), attributes."""
    body = struct.pack("BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue)
    for kind_attr, data in attrs:
        attr = struct.pack("HH", 4 + len(data), kind_attr) + data
        body += attr + b"\0" * (-len(attr) % 4)
    return struct.pack("IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def packet_ids(data: bytes) -> Iterator[int]:
    """The ids of the queued packets in a batch of netlink messages; raises on a netlink error."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            (errno,) = struct.unpack_from("i", data, offset + 16)
            if errno:
                raise OSError(-errno, "nfnetlink_queue refused a request")
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            pos, end = offset + 20, offset + length  # past nlmsghdr and nfgenmsg
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("HH", data, pos)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", data, pos + 4)[0]
                pos += (alen + 3) & ~3
        offset += (length + 3) & ~3


def bind(queue: int) -> socket.socket:
    """A netlink socket bound to the queue: metadata only, failing open when full."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((0, 0))
    requests = [
        [(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))],
        [(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))],
        [(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)), (NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))],
    ]
    for seq, attrs in enumerate(requests, 1):
        sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        list(packet_ids(sock.recv(65536)))  # the ack; raises on an error
    return sock


def delay_queue(queue: int, delay: float, seconds: float) -> tuple[int, float]:
    """Hold every packet of the queue for `delay`, then accept it; stop after `seconds` (bounded).
    Returns how many, and the largest lateness of a verdict (s): what the delayer added beyond `delay`."""
    sock = bind(queue)
    held: collections.deque[tuple[float, int]] = collections.deque()
    done, late = 0, 0.0
    hold = [delay]  # SIGUSR1 (see stop_holding) sets it to 0
    signal.signal(signal.SIGUSR1, lambda *_: hold.__setitem__(0, 0.0))
    stop = [time.monotonic() + seconds]  # SIGTERM: release what is held, report, exit
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, 0.0))
    while time.monotonic() < stop[0] or held:
        now = time.monotonic()
        while held and held[0][0] <= now:
            due, packet = held.popleft()
            sock.send(message(NFQNL_MSG_VERDICT, queue, [(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet))]))
            late = max(late, time.monotonic() - due)
            done += 1
        if now >= stop[0] and not held:
            break
        wait = max(0.0, min(held[0][0] - now if held else 0.05, 0.05))
        if select.select([sock], [], [], wait)[0]:
            arrived = time.monotonic()
            held.extend((arrived + hold[0], pid) for pid in packet_ids(sock.recv(1 << 16)))
    sock.close()
    return done, late


def run_realtime() -> bool:
    """SCHED_FIFO for this process, as netem's timer runs in the kernel: a busy CPU must not stretch the
    delay (a lab full of emulated daemons on two cores otherwise added tens of ms to it). False where not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        return True
    except (AttributeError, OSError):  # no SCHED_FIFO on this platform, or not allowed
        return False


# --------------------------------------------------------------------------- on a lab node


def _rules(op: str, nic: str, queue: int) -> list[list[str]]:
    target = ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
    return [["iptables", "-t", "mangle", op, "OUTPUT", "-o", nic, *target], ["iptables", "-t", "mangle", op, "PREROUTING", "-i", nic, *target]]


def delayer_argv(queue: int, delay: float, seconds: float) -> list[str]:
    """This module as a lab process holding the queue's packets for `delay` s, for at most `seconds`."""
    from . import processes

    return processes.module_argv("webcluster.lab.latency", "--queue", str(queue), "--delay-ms", str(round(delay * 1000)), "--seconds", str(seconds))


@contextmanager
def added_latency(node: str, nic: str, delay: float, seconds: float, queue: int = QUEUE) -> Iterator[None]:
    """`delay` added to every packet through the node's NIC, both ways, for at most `seconds` (+ the delay):
    the delayer is a lab process of the node (started and stopped by PID), the rules go when the block ends."""
    from . import processes
    from .state import LabState, sandbox

    state = LabState.load()
    if state is None:
        raise RuntimeError("no lab is running")
    processes.start(state, node, ROLE, delayer_argv(queue, delay, seconds))
    box = sandbox(node)
    try:
        time.sleep(0.5)  # bound before the first packet is queued (until then --queue-bypass lets it through)
        for rule in _rules("-I", nic, queue):
            box.run(rule)
        yield
    finally:
        stop_holding(state, node)
        time.sleep(delay + 0.2)  # the packets still held get their verdict, the newer ones after them
        for rule in _rules("-D", nic, queue):
            box.run(rule, check=False)
        processes.retire(state, node, ROLE)


def stop_holding(state: "LabState", node: str) -> None:
    """The delayer passes new packets at once but behind those it holds: removing the rules while it
    still held some would let newer packets overtake them (a reordering netem never does)."""
    from . import processes

    processes.send(state, node, ROLE, signal.SIGUSR1)


# --------------------------------------------------------------------------- a whole network (`lab degrade`)

DEGRADE_QUEUE = QUEUE + 1  # + the network's index: a node on several degraded networks has a delayer per network
DEGRADE_MAX_S = 3600  # a delayer stops after this; the queue then fails open (no delay, the loss stays)


def degrade_chain(net: str) -> str:
    return f"hwl-degrade-{net}"


def degrade_rules(net: str, delay_ms: float, loss_pct: float, queue: int) -> list[list[str]]:
    """The chain's rules: drop loss_pct % at random, hand the rest to the delayer."""
    chain = ["iptables", "-t", "mangle", "-A", degrade_chain(net)]
    rules = []
    if loss_pct:
        rules.append([*chain, "-m", "statistic", "--mode", "random", "--probability", f"{loss_pct / 100:.4f}", "-j", "DROP"])
    if delay_ms:
        rules.append([*chain, "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"])
    return rules


def set_degraded(node: str, nic: str, net: str, delay_ms: float, loss_pct: float) -> None:
    """What netem on the NIC's cable would do, for the packets the node receives on it: the node's
    own chain (hooked into PREROUTING -i NIC) and delayer; both 0 removes them."""
    from .. import netns
    from . import processes
    from .state import NETWORKS, LabState

    state = LabState.load()
    if state is None:
        raise RuntimeError("no lab is running")
    chain, role = degrade_chain(net), f"{ROLE}:{net}"
    queue = DEGRADE_QUEUE + NETWORKS.index(net)

    def run(argv: list[str], check: bool = True) -> None:
        netns.run(processes.inside(node, argv), check=check)

    run(["iptables", "-t", "mangle", "-D", "PREROUTING", "-i", nic, "-j", chain], check=False)
    run(["iptables", "-t", "mangle", "-F", chain], check=False)
    run(["iptables", "-t", "mangle", "-X", chain], check=False)
    processes.retire(state, node, role)
    if not (delay_ms or loss_pct):
        return
    if delay_ms:
        processes.start(state, node, role, delayer_argv(queue, delay_ms / 1000, DEGRADE_MAX_S))
    run(["iptables", "-t", "mangle", "-N", chain])
    for rule in degrade_rules(net, delay_ms, loss_pct, queue):
        run(rule)
    if delay_ms:
        time.sleep(0.5)  # the delayer binds its queue before packets are queued (until then they bypass it)
    run(["iptables", "-t", "mangle", "-I", "PREROUTING", "-i", nic, "-j", chain])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webcluster.lab.latency", description="hold the packets of an NFQUEUE queue for a fixed delay")
    parser.add_argument("--queue", type=int, default=QUEUE)
    parser.add_argument("--delay-ms", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="stop after this long")
    args = parser.parse_args(argv)
    realtime = run_realtime()
    done, late = delay_queue(args.queue, args.delay_ms / 1000, args.seconds)
    print(f"delayed {done} packets by {args.delay_ms} ms (at most {late * 1000:.1f} ms late; {'real-time' if realtime else 'normal'} priority)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
