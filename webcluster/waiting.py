"""The one bounded poll loop: the lab scenarios, the benchmark and the e2e checks all wait with it."""

from __future__ import annotations

import time
from typing import Callable


class Timeout(AssertionError):
    """A wait that ran out: in a scenario or check it is a failed expectation, not a crash."""


def wait_until(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Poll (bounded) until predicate holds; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise Timeout(f"timed out after {timeout:.0f} s waiting for: {what}")
        time.sleep(interval)
