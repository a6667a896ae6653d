"""How many requests a backend failure may cost, the one rule the lab scenarios and the e2e checks assert."""

from __future__ import annotations


def loss_budget(mode: str, in_flight: int) -> int:
    """Requests a failure may cost: none in HTTP mode (layer-7 retries replay them); in TCP mode
    at most those already forwarded to the failing server (a layer-4 proxy cannot replay them),
    which is at most the client's requests in flight."""
    return 0 if mode == "http" else in_flight
