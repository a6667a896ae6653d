"""The lab's added latency (webcluster/lab/latency.py): NFQUEUE rules plus the delayer, on two
throwaway namespaces joined by a veth pair, measured with ping. Not the lab: no lock needed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from webcluster import netns
from webcluster.lab import latency

ROOT = Path(__file__).resolve().parents[1]
A, B = "hawc-lat-a", "hawc-lat-b"  # every namespace and link this test creates starts with hawc-lat
ADDR = {A: "10.199.0.1", B: "10.199.0.2"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


@pytest.fixture
def pair() -> Iterator[None]:
    for ns in (A, B):
        netns.del_netns(ns)
        netns.add_netns(ns)
    try:
        netns.ip("link", "add", "hawc-lat-x", "type", "veth", "peer", "name", "hawc-lat-y")
        for ns, dev in ((A, "hawc-lat-x"), (B, "hawc-lat-y")):
            netns.ip("link", "set", dev, "netns", ns)
            netns.ip("-n", ns, "link", "set", dev, "name", "eth0")
            netns.ip("-n", ns, "link", "set", "eth0", "up")
            netns.add_address(ns, "eth0", f"{ADDR[ns]}/24")
        yield
    finally:
        for ns in (A, B):
            netns.del_netns(ns)


def rtts(count: int = 4) -> list[float]:
    out = netns.run(netns.exec_argv(B, ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "3", ADDR[A]]), check=False, timeout=30).stdout
    return [float(m) for m in re.findall(r"time=([\d.]+) ms", out)]


def test_message_layout_round_trips() -> None:
    """A packet message as the kernel sends it yields its id; a netlink error is raised."""
    packet = latency.message(latency.NFQNL_MSG_PACKET, 7, [(latency.NFQA_PACKET_HDR, b"\x00\x00\x01\x02\x08\x00\x03")])
    assert list(latency.packet_ids(packet)) == [258]
    error = (20).to_bytes(4, "little") + latency.NLMSG_ERROR.to_bytes(2, "little") + bytes(10) + (-1).to_bytes(4, "little", signed=True)
    with pytest.raises(OSError):
        list(latency.packet_ids(error))


def test_every_packet_through_the_nic_is_delayed_both_ways_and_only_while_the_rules_exist(pair: None) -> None:
    """And the delayer runs real-time and reports how late it was: what it adds beyond the delay is
    what a test of a timer (corosync's token) must not mistake for the latency it asked for."""
    assert max(rtts(2)) < 50
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    delayer = subprocess.Popen(netns.exec_argv(A, [sys.executable, "-m", "webcluster.lab.latency", "--delay-ms", "100", "--seconds", "60"]), stdout=subprocess.PIPE, text=True, env=env)
    try:
        subprocess.run(["sleep", "0.5"])
        for rule in latency._rules("-I", "eth0", latency.QUEUE):
            netns.run(netns.exec_argv(A, rule))
        delayed = rtts()
        assert len(delayed) == 4 and all(195 <= t < 400 for t in delayed), delayed  # 100 ms in, 100 ms out
        os.kill(delayer.pid, signal.SIGUSR1)  # stop_holding: the rules stay, the packets go through at once
        subprocess.run(["sleep", "0.3"])
        assert max(rtts(2)) < 50
        for rule in latency._rules("-D", "eth0", latency.QUEUE):
            netns.run(netns.exec_argv(A, rule))
        assert max(rtts(2)) < 50
        delayer.terminate()  # as `lab` stops it: it reports before it exits
        out, _ = delayer.communicate(timeout=20)
    finally:
        delayer.kill()
    report = re.search(r"delayed (\d+) packets by 100 ms \(at most ([\d.]+) ms late; real-time priority\)", out)
    assert report and int(report[1]) == 12 and float(report[2]) < 50, out  # 4 + 2 pings and their replies
