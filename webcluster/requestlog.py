"""HAProxy's request log lines (`option httplog`, `option tcplog`), read field by field.

A client only sees a status code or a cut connection; HAProxy's line for the same request names
the server, the timers (where the time went) and the termination state (who ended it, and in
which phase). The lab's log receiver and the e2e's journal reader both explain failures with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_HEAD = r"\[[^\]]+\] (?P<frontend>\S+) (?P<backend>[^/\s]+)/(?P<server>\S+) "
# httplog: [accept date] frontend backend/server Tq/Tw/Tc/Tr/Ta status bytes cookies(2)
# termination-state actconn/feconn/beconn/srv_conn/retries queues "request"
HTTPLOG = re.compile(_HEAD + r"(?P<timers>-?\d+/-?\d+/-?\d+/-?\d+/\+?-?\d+) (?P<status>-?\d+) \S+ \S+ \S+ (?P<termination>\S+) (?P<conns>\S+)")
# tcplog: [accept date] frontend backend/server Tw/Tc/Tt bytes termination-state actconn/feconn/beconn/srv_conn/retries queues
TCPLOG = re.compile(_HEAD + r"(?P<timers>-?\d+/-?\d+/\+?-?\d+) \+?\d+ (?P<termination>\S+) (?P<conns>\S+)")
# The first letter of a termination state: who ended the session. '-' ended normally, C/c is the
# client's doing (an abort, a client timeout); any other (S/s server, P proxy, R resource,
# I internal, D killed as its server went DOWN, K killed by an admin) failed the request.
CLIENT_OR_NORMAL = "-Cc"


@dataclass(frozen=True)
class RequestLog:
    director: str
    frontend: str
    backend: str
    server: str
    timers: str  # httplog Tq/Tw/Tc/Tr/Ta, tcplog Tw/Tc/Tt (ms)
    status: Optional[int]  # HTTP status; None in TCP mode
    termination: str  # e.g. sH--: the server's response timed out
    retries: str  # the connection retries (+N: redispatched)

    def failed(self) -> bool:
        """A 5xx or no status at all in HTTP mode; in TCP mode a session not ended by the client or normally."""
        if self.status is not None:
            return self.status >= 500 or self.status < 0
        return self.termination[:1] not in CLIENT_OR_NORMAL

    def __str__(self) -> str:
        status = "tcp" if self.status is None else str(self.status)
        return f"{self.director}: {self.frontend} -> {self.backend}/{self.server} {status} {self.termination} timers {self.timers} retries {self.retries}"


def parse(line: str, director: Optional[str] = None) -> Optional[RequestLog]:
    """One request's line, or None for another message (health checks, starts). The director is
    `director`, or else the line's first word (the lab receiver's prefix)."""
    http = HTTPLOG.search(line)
    m = http or TCPLOG.search(line)
    if not m:
        return None
    who = director if director is not None else line.split(" ", 1)[0]
    status = int(m["status"]) if http else None
    return RequestLog(who, m["frontend"], m["backend"], m["server"], m["timers"], status, m["termination"], m["conns"].split("/")[-1])


def failures(lines: list[str], director: Optional[str] = None) -> list[RequestLog]:
    """The failed requests among log lines."""
    found = (parse(line, director) for line in lines)
    return [r for r in found if r and r.failed()]
