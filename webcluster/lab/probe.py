"""HTTP from the lab's client namespace (the seed's client on the external network)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Optional

from ..statscsv import csv_rows
from .state import CLIENT, HYPERVISOR, netns_name

CONTAINER_RE = re.compile(r'<p id="container">Contenedor: ([^<]*)</p>')


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def container(self) -> Optional[str]:
        if "x-served-by" in self.headers:
            return self.headers["x-served-by"]
        m = CONTAINER_RE.search(self.body)
        return m.group(1) if m else None

    def cookie(self, name: str) -> Optional[str]:
        m = re.search(rf"{name}=([^;]*)", self.headers.get("set-cookie", ""))
        return m.group(1) if m else None


def get(url: str, auth: Optional[tuple[str, str]] = None, cookie: Optional[str] = None, timeout: float = 5, ns: str = CLIENT,
        data: Optional[str] = None, cacert: Optional[str] = None) -> Response:
    """One request with curl inside a lab namespace (a POST of `data` when given); credentials go
    on stdin, never on the command line. `cacert`: an https URL's certificate is verified with it."""
    argv = ["curl", "-sS", "-i", "--max-time", str(timeout), "--noproxy", "*"]
    if cacert:
        argv += ["--cacert", cacert]
    if data is not None:
        argv += ["--data-raw", data]
    stdin = None
    if auth:
        argv += ["-K", "-"]
        stdin = f'user = "{auth[0]}:{auth[1]}"\n'
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    argv.append(url)
    proc = subprocess.run(
        ["ip", "netns", "exec", netns_name(ns), *argv],
        capture_output=True, timeout=timeout + 5, input=stdin.encode() if stdin else None,
    )
    if proc.returncode != 0:
        return Response(0, {}, "", proc.stderr.decode(errors="replace").strip())
    return _parse(proc.stdout.decode(errors="replace"))


def _parse(raw: str) -> Response:
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    while head.startswith("HTTP/1.1 100") and body:
        head, _, body = body.partition("\n\n")
    lines = head.splitlines()
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Response(status, headers, body)


@dataclass(frozen=True)
class ServerState:
    backend: str
    server: str
    status: str  # UP, DOWN, MAINT, ...


def _stats_rows(host: str, port: int, uri: str, auth: tuple[str, str], timeout: float) -> list[dict[str, str]]:
    """The stats page's CSV export, a dict a row. Asked from the hypervisor host's namespace: the
    firewalls keep the client out (adminNetworks)."""
    resp = get(f"http://{host}:{port}{uri};csv", auth=auth, ns=HYPERVISOR, timeout=timeout)
    if resp.status != 200:
        raise RuntimeError(f"stats page at {host}:{port} answered {resp.status} {resp.error}")
    return csv_rows(resp.body)


def stats_csv(host: str, port: int, uri: str, auth: tuple[str, str], timeout: float = 5) -> tuple[list[ServerState], str]:
    """Server states from the stats page's CSV export, plus the page's description (the director's name)."""
    rows = _stats_rows(host, port, uri, auth, timeout)
    servers = [ServerState(r["pxname"], r["svname"], r["status"].split()[0]) for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")]
    html = get(f"http://{host}:{port}{uri}", auth=auth, ns=HYPERVISOR, timeout=timeout).body
    m = re.search(r"Statistics Report for pid \d+[^:<]*: ([^<]*)<", html)
    return servers, (m.group(1).strip() if m else "")


def server_aborts(host: str, port: int, uri: str, auth: tuple[str, str], backend: str, timeout: float = 5) -> dict[str, int]:
    """Server -> transfers the server aborted (`srv_abrt` of the stats CSV) in one backend, as the
    director answering at `host` counts them: where a TCP-mode request a client lost went."""
    rows = _stats_rows(host, port, uri, auth, timeout)
    return {r["svname"]: int(r["srv_abrt"] or 0) for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}
