"""A bounded HTTP load loop, run inside the client namespace: counts failures and gaps.

Standalone (stdlib only) so it can run as `ip netns exec <client> python3 load.py ...`.
Prints one JSON object: requests, failures (by kind), the longest time without a
successful response, and which container served each success. With --stream: the small
steady probe load of `lab watch`, running totals as JSON lines.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import signal
import threading
import time
from collections import Counter
from typing import Optional
from urllib.parse import urlsplit


def one_request(host: str, port: int, path: str, timeout: float, tls: Optional[ssl.SSLContext] = None) -> tuple[bool, str, str]:
    """One GET on a new connection; `tls`: over HTTPS, the server's certificate verified with it."""
    conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=tls) if tls else http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        served = resp.getheader("X-Served-By") or ""
        if 200 <= resp.status < 400:
            return True, "", served
        return False, f"http {resp.status}", served
    except Exception as exc:  # every failure kind is counted, none aborts the run
        return False, type(exc).__name__, ""
    finally:
        conn.close()


def tls_context(cafile: Optional[str]) -> ssl.SSLContext:
    """Verifies the server against `cafile` (the lab's CA), by IP address too."""
    return ssl.create_default_context(cafile=cafile)


def run(url: str, concurrency: int, requests: int, duration: float, timeout: float, cafile: Optional[str] = None) -> dict:
    parts = urlsplit(url)
    tls = tls_context(cafile) if parts.scheme == "https" else None
    host, port = parts.hostname, parts.port or (443 if tls else 80)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lock = threading.Lock()
    issued = 0
    failures: Counter = Counter()
    served: Counter = Counter()
    successes: list[float] = []
    start = time.monotonic()
    deadline = start + duration
    stopped = threading.Event()
    # SIGTERM ends the run early and still prints the counts (a test stops the load when its change is done).
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())

    def worker() -> None:
        nonlocal issued
        while True:
            with lock:
                if issued >= requests or time.monotonic() > deadline or stopped.is_set():
                    return
                issued += 1
            ok, kind, who = one_request(host, port, path, timeout, tls)
            now = time.monotonic()
            with lock:
                if ok:
                    successes.append(now)
                    served[who] += 1
                else:
                    failures[kind] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = time.monotonic()
    marks = [start] + sorted(successes) + [end]
    gap = max(b - a for a, b in zip(marks, marks[1:]))
    return {
        "requests": issued,
        "ok": len(successes),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "longest_gap_s": round(gap, 4),
        "elapsed_s": round(end - start, 3),
        "served_by": dict(served),
        "start_monotonic": start,
    }


STREAM_FAILURES_KEPT = 20


def stream(urls: list[str], rate: float, duration: float, timeout: float, every: float = 0.5) -> None:
    """A small steady probe load (`lab watch`): one request at a time per URL, at most `rate` a
    second each, until `duration` ends; every `every` s one JSON line of running totals per URL."""
    totals = {u: {"requests": 0, "ok": 0, "failed": 0, "last_error": "", "failures": []} for u in urls}
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker(url: str) -> None:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        while time.monotonic() < deadline:
            started, began = time.monotonic(), time.time()
            ok, kind, _ = one_request(parts.hostname, parts.port or 80, path, timeout)
            with lock:
                t = totals[url]
                t["requests"] += 1
                t["ok" if ok else "failed"] += 1
                if not ok:
                    t["last_error"] = f"{time.strftime('%H:%M:%S')} {kind}"
                    # When (epoch) the last failures started and ended: the watcher tells a
                    # reset by a VIP move from the others.
                    t["failures"] = [*t["failures"], [round(began, 3), round(time.time(), 3), kind]][-STREAM_FAILURES_KEPT:]
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))

    for url in urls:
        threading.Thread(target=worker, args=(url,), daemon=True).start()
    while time.monotonic() < deadline:
        time.sleep(every)
        with lock:
            line = json.dumps({"t": time.monotonic(), "totals": totals})
        try:
            print(line, flush=True)
        except BrokenPipeError:  # the watcher is gone
            return


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url", nargs="+")
    p.add_argument("-c", "--concurrency", type=int, default=10)
    p.add_argument("-n", "--requests", type=int, default=5000)
    p.add_argument("--duration", type=float, default=120.0, help="hard upper bound in seconds")
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--cacert", help="CA file an https URL's certificate is verified with")
    p.add_argument("--stream", type=float, metavar="RATE", help="probe every URL at most RATE times a second, printing running totals (lab watch)")
    a = p.parse_args()
    if a.stream:
        stream(a.url, a.stream, a.duration, a.timeout)
    else:
        print(json.dumps(run(a.url[0], a.concurrency, a.requests, a.duration, a.timeout, a.cacert)))


if __name__ == "__main__":
    main()
