"""How many requests a backend failure may cost, the one rule the lab scenarios and the e2e checks
assert; and which failures a VIP move, not the failure under test, caused."""

from __future__ import annotations

from typing import Callable, Iterable, Protocol, TypeVar


def loss_budget(mode: str, in_flight: int, silent: bool = False) -> int:
    """Requests a failure may cost. A server that dies or closes (a stopped or killed container)
    costs none in HTTP mode: HAProxy replays the GETs it lost on another server. In TCP mode, at
    most those already forwarded to it (a layer-4 proxy cannot replay them), at most the client's
    requests in flight when it dies at once (a gracefully stopped Apache also resets what waits in
    its listen queue: the lab's containers_stopped counts those on the server instead). A `silent` server (its host cut off or powered off: no reset, no answer)
    costs the requests in flight on it in both modes: they end in a response timeout, and a
    response timeout is never replayed, since the server may still have run them (issue #13)."""
    return in_flight if silent or mode != "http" else 0


# A failed request counts as reset by a VIP move when the VIP changed hands this close to it:
# keepalived's gratuitous ARP is heard (or a holder change seen) a moment after the move.
VIP_MOVE_SLACK_S = 2.0


class Timed(Protocol):
    start: float  # epoch
    end: float


F = TypeVar("F", bound=Timed)


def split_vip_move_casualties(failures: Iterable[F], moves_between: Callable[[float, float], list[float]],
                              lane: Callable[[F], str] = lambda _f: "") -> tuple[list[F], list[F]]:
    """(failures of their own, failures reset by a VIP move while they were in flight).

    Moving a VIP resets every TCP connection in flight to it (the new holder has no socket for
    them): no proxy can save those, so they are reported apart, never hidden. A move takes the
    blame for at most one failure per `lane` (a client sending one request at a time: one lane per
    probed service), the first one in time; `moves_between(start, end)` gives the moves' epochs."""
    own: list[F] = []
    moved: list[F] = []
    blamed: set[tuple[float, str]] = set()
    for f in sorted(failures, key=lambda f: f.start):
        key = lane(f)
        move = next((m for m in moves_between(f.start - VIP_MOVE_SLACK_S, f.end + VIP_MOVE_SLACK_S) if (m, key) not in blamed), None)
        if move is None:
            own.append(f)
        else:
            blamed.add((move, key))
            moved.append(f)
    return own, moved
