"""What TLS at the directors costs, measured in the lab: requests/s through the VIP over HTTP and
HTTPS in the same run, from the master director (as the seed's ab runs), on the same page:

- h2load (nghttp2-client), connections kept open: plain HTTP/1.1, HTTPS with HTTP/1.1, HTTPS with
  h2 (ALPN) - the steady-state cost of encryption;
- ab, a new connection per request: plain HTTP vs HTTPS - the cost of a handshake per request.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Callable

from .context import LabContext
from .state import netns_name

PAGE = "/index.php"
CONCURRENCY = (1, 10)
H2LOAD_RE = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
H2LOAD_DONE_RE = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout")
H2LOAD_STATUS_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


@dataclass(frozen=True)
class HttpsRow:
    tool: str  # h2load (kept-open connections) or ab (one per request)
    protocol: str  # "HTTP/1.1", "HTTPS HTTP/1.1", "HTTPS h2"
    concurrency: int
    requests: int
    rps: float
    failed: int


def parse_h2load(out: str) -> tuple[float, int]:
    """(requests/s, requests that failed or did not answer 2xx) from h2load's report."""
    rps, done, status = H2LOAD_RE.search(out), H2LOAD_DONE_RE.search(out), H2LOAD_STATUS_RE.search(out)
    if not (rps and done and status):
        raise RuntimeError(f"h2load report not understood: {out[-400:]}")
    total, succeeded = int(done.group(1)), int(status.group(1))
    return float(rps.group(1)), total - succeeded


def h2load(ns: str, url: str, n: int, c: int, h1: bool) -> tuple[float, int]:
    argv = ["ip", "netns", "exec", ns, "h2load", "-n", str(n), "-c", str(c), "-T", "10", "-N", "10"] + (["--h1"] if h1 else []) + [url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"h2load {url} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return parse_h2load(proc.stdout)


def measure(lab: LabContext, requests: int, progress: Callable[[str], None]) -> list[HttpsRow]:
    from .bench import ab

    service = next(s for s in lab.topo.cluster.haproxy.services if s.tls_port is not None and s.storage == "nfs")
    master = netns_name(lab.directors[0].name)
    plain, secure = f"http://{lab.vip}:{service.port}{PAGE}", f"https://{lab.vip}:{service.tls_port}{PAGE}"
    rows = []
    for c in CONCURRENCY:
        for protocol, url, h1 in (("HTTP/1.1", plain, True), ("HTTPS HTTP/1.1", secure, True), ("HTTPS h2", secure, False)):
            rps, failed = h2load(master, url, requests, c, h1)
            rows.append(HttpsRow("h2load", protocol, c, requests, rps, failed))
        for protocol, url in (("HTTP/1.1", plain), ("HTTPS HTTP/1.1", secure)):
            rps, _, failed = ab(master, url, requests, c)
            rows.append(HttpsRow("ab", protocol, c, requests, rps, failed))
        progress(f"https c={c}: " + ", ".join(f"{r.tool} {r.protocol} {r.rps:.0f}/s" for r in rows if r.concurrency == c))
    return rows


def summary(rows: list[HttpsRow]) -> list[str]:
    out = [f"HTTP vs HTTPS through the VIP ({PAGE}, requests/s; h2load: connections kept open, ab: one per request)"]
    for r in rows:
        out.append(f"  {r.tool:<6} {r.protocol:<15} c={r.concurrency:<3} {r.rps:8.1f}/s  failed {r.failed}/{r.requests}")
    for tool in dict.fromkeys(r.tool for r in rows):
        for c in CONCURRENCY:
            sel = {r.protocol: r.rps for r in rows if r.tool == tool and r.concurrency == c}
            out.append(f"  {tool} c={c}: HTTPS HTTP/1.1 / HTTP = {sel['HTTPS HTTP/1.1'] / sel['HTTP/1.1']:.2f}" + (f", HTTPS h2 / HTTP = {sel['HTTPS h2'] / sel['HTTP/1.1']:.2f}" if "HTTPS h2" in sel else ""))
    return out
