"""Who claims the external VIP on the client's network, heard passively for as long as the
checks run: every ARP frame sent with the VIP as its sender address (keepalived's gratuitous
ARPs on a takeover and every 10 s after, and its replies).

Why: a check's arping sees who holds the VIP at the moment it asks; a flap of a few seconds
between two polls goes unseen, yet it resets the connections in flight (CI once failed the
Docker-host check on a stats-page read reset by peer). With the watch, a failed check says
whether the VIP moved while it ran, and a check can wait for a steady VIP before its fault.

Run as a module inside the network namespace, it prints one line per claim: `<epoch> <mac>`.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Optional

from ..netns import exec_argv
from .recording import ROOT

ETH_P_ARP = 0x0806
LIFETIME_S = 4 * 3600  # the listener's own bound, should its parent die without stopping it


def claimer(frame: bytes, address: str) -> Optional[str]:
    """The sender MAC (lower case) of an Ethernet ARP frame whose sender IP is `address`, else None."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    if socket.inet_ntoa(frame[28:32]) != address:
        return None
    return ":".join(f"{b:02x}" for b in frame[22:28])


def listen(interface: str, address: str, seconds: float) -> None:
    """Print `<epoch> <mac>` for every claim of `address` heard on `interface`, for `seconds`."""
    # ARP frames only: the load's traffic on the same bridge never reaches this process.
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((interface, 0))
        s.settimeout(1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                frame = s.recv(2048)
            except socket.timeout:
                continue
            mac = claimer(frame, address)
            if mac:
                print(f"{time.time():.3f} {mac}", flush=True)


class VipWatch:
    """The listener running in `netns`, its claims collected by a reader thread.
    `names`: MAC (lower case, as `claimer` gives it) -> node name, for messages."""

    def __init__(self, netns: str, interface: str, address: str, names: dict[str, str]):
        self.names = names
        self.claims: list[tuple[float, str]] = []  # (epoch, node name or MAC)
        argv = exec_argv(netns, [sys.executable, "-m", __name__, interface, address, str(LIFETIME_S)])
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)  # `webcluster` importable
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            stamp, mac = line.decode().split()
            self.claims.append((float(stamp), self.names.get(mac, mac)))

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._reader.join(5)

    def holders_since(self, since: float) -> list[str]:
        """Who claimed the VIP since `since` (epoch), in order, repeats folded: ["cluster1"] when it
        stayed put, ["cluster1", "standby1", "cluster1"] when it moved away and back."""
        moves: list[str] = []
        for stamp, who in list(self.claims):
            if stamp >= since and (not moves or moves[-1] != who):
                moves.append(who)
        return moves

    def moves_between(self, start: float, end: float) -> list[float]:
        """When (epoch) the VIP changed hands (a claim by another node than the claim before it)
        between `start` and `end`: each move resets the connections in flight to the VIP."""
        moves: list[float] = []
        last = None
        for stamp, who in list(self.claims):
            if last is not None and who != last and start <= stamp <= end:
                moves.append(stamp)
            last = who
        return moves

    def steady(self, seconds: float) -> bool:
        """Nobody but one node claimed the VIP in the last `seconds`."""
        return len(set(self.holders_since(time.time() - seconds))) <= 1


if __name__ == "__main__":
    listen(sys.argv[1], sys.argv[2], float(sys.argv[3]))
