"""Requests in a loop, each response checked whole: its version markers must all be the same.

Standalone (stdlib only), run as `ip netns exec <client> python3 consistency.py URL...` until
SIGTERM or --duration; prints one JSON object: requests, failed, mixed (a response with markers
of two versions), and how many responses each version served. Markers: `A v3`, `B v3`, `C v3`;
none at all is `v0`, the release before the markers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

MARKER = re.compile(r"^[ABC] (v\d+)$", re.M)


def check(url: str, timeout: float) -> tuple[str, str]:
    """('ok', version) | ('mixed', versions) | ('failed', why)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        if resp.status != 200:
            return "failed", f"http {resp.status}"
        versions = sorted(set(MARKER.findall(body)))
        if len(versions) > 1:
            return "mixed", ",".join(versions)
        # No marker: a whole page of the release published before the markers (http.client raised
        # on a short body), e.g. a PHP worker whose realpath cache still resolves html/ to it.
        return "ok", versions[0] if versions else "v0"
    except Exception as exc:
        return "failed", type(exc).__name__
    finally:
        conn.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url", nargs="+")
    p.add_argument("-c", "--concurrency", type=int, default=4)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + a.duration
    lock = threading.Lock()
    counts: Counter = Counter()
    versions: Counter = Counter()
    problems: Counter = Counter()

    def worker(i: int) -> None:
        url = a.url[i % len(a.url)]
        while not stop.is_set() and time.monotonic() < deadline:
            kind, what = check(url, a.timeout)
            with lock:
                counts["requests"] += 1
                counts[kind] += 1
                (versions if kind == "ok" else problems)[what if kind == "ok" else f"{kind} {what}"] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"requests": counts["requests"], "failed": counts["failed"], "mixed": counts["mixed"], "versions": dict(versions), "problems": dict(problems)}))


if __name__ == "__main__":
    main()
