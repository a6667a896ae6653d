"""Issue #13 in the lab: a slow client (slowloris) cannot hold a connection to HAProxy open.

From the client namespace, a request header is sent one byte a second, never finished. Each
byte resets `timeout client`, so only `timeout http-request` (the whole header's deadline)
ends it: HAProxy must answer 408 and close within that time.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .context import LabContext
from .state import CLIENT, netns_name

SLACK_S = 1.5  # HAProxy's timers fire on its next wake-up; the trickle's own pace
PATIENCE_S = 6.0  # how much longer than the deadline the client keeps trickling

# A standalone client (stdlib only, run in the client namespace): trickles a header, reports when the server closed.
TRICKLE = r"""
import json, socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((host, port), timeout=5)
s.sendall(b"GET /index.php HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
start, answer, closed = time.monotonic(), b"", False
s.settimeout(1.0)
while time.monotonic() - start < limit and not closed:
    try:
        s.sendall(b"x")
    except OSError:
        closed = True
        break
    try:
        data = s.recv(4096)
        answer += data
        closed = not data
    except socket.timeout:
        pass
    except OSError:
        closed = True
print(json.dumps({"closed": closed, "after_s": round(time.monotonic() - start, 2), "answer": answer[:40].decode(errors="replace")}))
"""


def trickle(lab: LabContext, port: int, limit_s: float) -> dict:
    """Send a never-ending request header to the VIP; when (and with what) HAProxy cut it off."""
    argv = ["ip", "netns", "exec", netns_name(CLIENT), sys.executable, "-c", TRICKLE, lab.vip, str(port), str(limit_s)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit_s + 15)
    assert proc.returncode == 0, f"trickling client failed: {proc.stderr.strip()[-300:]}"
    return json.loads(proc.stdout)


def slow_client_cut_off(lab: LabContext) -> list[str]:
    """A request header sent a byte a second: HAProxy answers 408 and closes by `timeout http-request`."""
    deadline_s = lab.topo.cluster.haproxy.tuning.timeout_http_request_ms / 1000
    svc = lab.services_by("http", "nfs")[0]
    seen = trickle(lab, svc.port, deadline_s + PATIENCE_S)
    assert seen["closed"], f"{svc.name}: a header trickled for {seen['after_s']} s is still open (timeout http-request {deadline_s} s)"
    assert seen["after_s"] <= deadline_s + SLACK_S, f"{svc.name}: closed only after {seen['after_s']} s (timeout http-request {deadline_s} s)"
    assert seen["answer"].startswith("HTTP/1.1 408"), f"{svc.name}: answered {seen['answer']!r}"
    return [f"{svc.name}: a header sent a byte a second was cut off after {seen['after_s']} s with 408 (timeout http-request {deadline_s:g} s)"]


PROOFS = (slow_client_cut_off,)
