"""Where HAProxy's messages go, and how many times: the rendered `global` log lines run by a real
HAProxy, their `/dev/log` replaced by a socket of the test's. On a director that socket is the
journal's (Debian's haproxy.service bind-mounts /dev/log into the chroot), which stores every
datagram: Debian's stock pair of lines (`local0`, then `local1 notice`) stored every notice twice."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

from conftest import free_port
from webcluster.render.director import HAPROXY_CFG
from webcluster.render.plan import ClusterPlan

LISTEN_S = 3.0  # the server goes DOWN at the first check (inter 100 fall 1); the rest catches a late copy


def global_log_lines(plan: ClusterPlan) -> list[str]:
    cfg = str(plan.nodes["cluster1"].files[HAPROXY_CFG].content)
    glob = cfg.split("\nglobal\n", 1)[1].split("\n\n", 1)[0]
    return [line for line in glob.splitlines() if line.strip().startswith("log ")]


def test_each_message_reaches_the_log_socket_once(dev_plan: ClusterPlan, tmp_path: Path) -> None:
    lines = global_log_lines(dev_plan)
    assert lines and all("/dev/log" in line for line in lines)
    sock_path = tmp_path / "log"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sock_path))
    receiver.settimeout(0.2)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "global\n" + "".join(line.replace("/dev/log", str(sock_path)) + "\n" for line in lines)
        + "defaults\n\tlog global\n\tmode http\n\toption log-health-checks\n\ttimeout connect 100\n\ttimeout client 1s\n\ttimeout server 1s\n\ttimeout check 100\n"
        + f"frontend web\n\tbind 127.0.0.1:{free_port()}\n\tdefault_backend probe\n"  # HAProxy runs only with a listener
        + f"backend probe\n\tserver gone 127.0.0.1:{free_port()} check inter 100 fall 1\n"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got: list[str] = []
    try:
        end = time.monotonic() + LISTEN_S
        while time.monotonic() < end:
            try:
                got.append(receiver.recv(65536).decode(errors="replace"))
            except socket.timeout:
                continue
    finally:
        proc.kill()
        proc.wait(10)
        receiver.close()
    down = [m for m in got if re.search(r"Server probe/gone is DOWN", m)]
    assert len(down) == 1, f"the server's DOWN message arrived {len(down)} times: {down}"
