"""A bounded HTTP load loop, run inside the client namespace: counts failures and gaps.

Standalone (stdlib only) so it can run as `ip netns exec <client> python3 load.py ...`.
Prints one JSON object: requests, failures (by kind), the longest time without a
successful response, and which container served each success.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def one_request(host: str, port: int, path: str, timeout: float) -> tuple[bool, str, str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
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


def run(url: str, concurrency: int, requests: int, duration: float, timeout: float) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lock = threading.Lock()
    issued = 0
    failures: Counter = Counter()
    served: Counter = Counter()
    successes: list[float] = []
    start = time.monotonic()
    deadline = start + duration

    def worker() -> None:
        nonlocal issued
        while True:
            with lock:
                if issued >= requests or time.monotonic() > deadline:
                    return
                issued += 1
            ok, kind, who = one_request(host, port, path, timeout)
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("-c", "--concurrency", type=int, default=10)
    p.add_argument("-n", "--requests", type=int, default=5000)
    p.add_argument("--duration", type=float, default=120.0, help="hard upper bound in seconds")
    p.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()
    print(json.dumps(run(a.url, a.concurrency, a.requests, a.duration, a.timeout)))


if __name__ == "__main__":
    main()
