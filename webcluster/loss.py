"""How many requests a backend failure may cost, the one rule the lab scenarios and the e2e checks assert."""

from __future__ import annotations


def loss_budget(mode: str, in_flight: int, silent: bool = False) -> int:
    """Requests a failure may cost. A server that dies or closes (a stopped or killed container)
    costs none in HTTP mode: HAProxy replays the GETs it lost on another server. In TCP mode, at
    most those already forwarded to it (a layer-4 proxy cannot replay them), at most the client's
    requests in flight. A `silent` server (its host cut off or powered off: no reset, no answer)
    costs the requests in flight on it in both modes: they end in a response timeout, and a
    response timeout is never replayed, since the server may still have run them (issue #13)."""
    return in_flight if silent or mode != "http" else 0
