"""Issue #13's HTTP behaviour, run: the real HAProxy with the haproxy.cfg the project renders for
a stack, moved to loopback, in front of tiny Python HTTP servers standing in for the containers.

- The redirect switch: off (the default), the plain HTTP ports serve and the TLS frontends send
  no Strict-Transport-Security; on, the plain HTTP ports answer a 308 to the service's TLS port
  (same host, path and query; an IPv6 Host keeps its address; a POST too, reaching no server; a
  request without a Host goes to the certificate's DNS name) and the TLS frontends send HSTS.
- Replays: a request whose server timed out (`timeout server`) is answered 504 and is never sent
  to a second server, GET or POST; a connection a server refuses is retried on another one; a
  server that closes without answering (an empty response) has a GET replayed on another server,
  never a POST (502, run once).

What is changed in the rendered config to run it here (`on_loopback`), and nothing else: the
addresses (the external VIP is 127.0.0.1, the director's internal address 127.0.0.2; every port
comes from the stack config, set to free ports), the paths (admin socket, server-state file,
certificate), the containers' addresses (each `host:port` -> its stand-in's loopback port), the
stats password placeholder, and the global lines that need root, syslog or a daemon (chroot,
user, group, daemon, master-worker, `log /dev/log`): HAProxy runs as `haproxy -db`, one process,
stopped by its PID.
"""

from __future__ import annotations

import csv
import http.client
import io
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from conftest import free_ports, https_pem
from webcluster.model import StackConfig
from webcluster.render import https, render_cluster
from webcluster.render.placeholders import secret
from webcluster.validation import check
from webcluster.waiting import wait_until

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None or shutil.which("openssl") is None, reason="needs haproxy and openssl")

CFG = "/etc/haproxy/haproxy.cfg"
VIP, DIRECTOR_INTERNAL = "127.0.0.1", "127.0.0.2"  # the external VIP and cluster1's internal address, on loopback
HTTP_SERVICES = ("haproxy-http", "haproxy-http_g")
TIMEOUT_SERVER_MS = 1000
STALL_S = 5.0  # a stalled stand-in answers after this at the latest (well past TIMEOUT_SERVER_MS)


# --------------------------------------------------------------------------- the containers' stand-ins


@dataclass
class Requests:
    """What every stand-in received (health checks, `GET /`, left out), whether they stall, and
    which of them close without answering."""

    stall: threading.Event = field(default_factory=threading.Event)
    empty: set[str] = field(default_factory=set)  # stand-ins that read a request and close, no answer
    release: threading.Event = field(default_factory=threading.Event)  # ends every stall at teardown
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (stand-in, method, path)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, backend: str, method: str, path: str) -> None:
        with self.lock:
            self.seen.append((backend, method, path))

    def of(self, tag: str) -> list[tuple[str, str, str]]:
        """The requests whose path carries `tag` (every request a test sends has its own)."""
        with self.lock:
            return [r for r in self.seen if f"id={tag}" in r[2]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a stalled answer to a connection HAProxy already closed


def stand_in(name: str, requests: Requests) -> _Server:
    """A container on a free loopback port: `GET /` (HAProxy's health check) answers at once;
    any other request is recorded, then (while `requests.stall` is set) held past the server
    timeout, then answered 200 with the stand-in's name; or, while `name` is in `requests.empty`,
    read and recorded, and the connection closed without a byte of answer."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path != "/":
                requests.record(name, self.command, self.path)
                if name in requests.empty:
                    self.close_connection = True  # the server closes it: HAProxy reads an empty response
                    return
                if requests.stall.is_set():
                    requests.release.wait(STALL_S)
            body = f"served by {name}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_POST = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


# --------------------------------------------------------------------------- the rendered config on loopback


def stack(redirect: bool, tuning: dict[str, int]) -> tuple[StackConfig, dict[str, int], dict[str, int]]:
    """The seed's stack with every director port a free loopback port (the rendered redirect
    names the TLS port, so the TLS ports are set in the config, not rewritten afterwards), the
    redirect switch, and tuning overrides. Returns it with each HTTP service's plain and TLS port."""
    seed = StackConfig()
    ports = iter(free_ports(2 * len(seed.cluster.haproxy.services) + 4))
    services, plain, tls = [], {}, {}
    for s in seed.cluster.haproxy.services:
        row = s.model_dump(mode="json", by_alias=True, exclude_none=True) | {"port": next(ports)}
        if s.tls_port is not None:
            row["tlsPort"] = next(ports)
            plain[s.name], tls[s.name] = row["port"], row["tlsPort"]
        services.append(row)
    haproxy = {
        "services": services,
        "https": {"redirect": redirect, "statsPort": next(ports)},
        "stats": {"port": next(ports), "runtimeApiPort": next(ports)},
        "tuning": {"healthPort": next(ports), **tuning},
    }
    config = StackConfig.model_validate({"cluster": {"haproxy": haproxy}})
    errors = [p for p in check(config) if p.severity == "error"]
    assert not errors, errors
    assert sorted(plain) == sorted(HTTP_SERVICES), plain
    return config, plain, tls


def _sub(pattern: str, replacement: str | Callable[[re.Match], str], text: str) -> str:
    """re.sub on lines that must be there: a template change that drops one fails here, loudly."""
    out, n = re.subn(pattern, replacement, text, flags=re.M)
    assert n, f"nothing in the rendered haproxy.cfg matches {pattern!r}"
    return out


def on_loopback(rendered: str, tmp: Path, stand_ins: dict[str, int]) -> str:
    """The rendered haproxy.cfg runnable here (see the module docstring); `stand_ins` maps each
    server's `host:port` to its stand-in's loopback port."""
    cfg = rendered
    for line in ("chroot", "user", "group", "daemon", "master-worker"):
        cfg = _sub(rf"^\t{line}\b.*\n", "", cfg)
    cfg = _sub(r"^\tlog /dev/log\tlocal0\n", "\tlog stdout format raw local0\n", cfg)
    cfg = _sub(r"^\tstats socket /\S+", f"\tstats socket {tmp / 'admin.sock'}", cfg)
    cfg = _sub(r"^\tserver-state-file \S+", f"\tserver-state-file {tmp / 'server-state'}", cfg)
    cfg = cfg.replace(https.CERT_FILE, str(tmp / "site.pem"))
    cfg = _sub(r"192\.168\.1\.200:", f"{VIP}:", cfg)
    cfg = _sub(r"10\.0\.100\.1:", f"{DIRECTOR_INTERNAL}:", cfg)
    cfg = _sub(r"^(\tserver \S+ )(\S+:\d+)", lambda m: f"{m.group(1)}127.0.0.1:{stand_ins[m.group(2)]}", cfg)
    cfg = cfg.replace(secret("statsPassword"), "test-stats-password")
    listening = re.findall(r"^\t(?:bind|server|stats socket) .*", cfg, re.M)
    leftover = [line for line in listening if re.search(r"(?<![\d.])(?!127\.)\d+\.\d+\.\d+\.\d+:|/run/|/etc/", line)]
    leftover += re.findall(r"@@hawc\S*|^\t(?:chroot|user|group|daemon|master-worker)\b.*|^\tlog /dev/log.*", cfg, re.M)
    assert not leftover, f"not moved to loopback: {leftover}"
    return cfg


@dataclass
class Running:
    config: StackConfig
    cfg: str  # the haproxy.cfg HAProxy runs
    plain: dict[str, int]  # HTTP service -> plain port
    tls: dict[str, int]  # HTTP service -> TLS port
    ca: Path
    admin: Path
    log: Path
    requests: Requests
    servers: dict[str, _Server]  # `host:port` of the rendered server lines -> its stand-in

    def runtime(self, command: str) -> str:
        """One command on HAProxy's admin socket (the Docker hosts' runtime API, locally)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.admin))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stat(self) -> dict[tuple[str, str], dict[str, str]]:
        """`show stat`: (proxy, server) -> its counters and status."""
        text = self.runtime("show stat").lstrip("# ")
        return {(row["pxname"], row["svname"]): row for row in csv.DictReader(io.StringIO(text)) if row.get("pxname")}

    def servers_of(self, backend: str) -> list[tuple[str, str]]:
        """(server name, `host:port`) of a rendered backend section, in order."""
        section = re.search(rf"^backend {re.escape(backend)}\n(.*?)(?:\n\n|\Z)", self.cfg, re.M | re.S).group(1)
        return re.findall(r"^\tserver (\S+) 127\.0\.0\.1:(\d+)", section, re.M)

    def log_tail(self) -> str:
        """HAProxy's log for a failure message, without the health checks' lines."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if "Health check for server" not in line]
        return "\n".join(lines[-30:])


@contextmanager
def running_haproxy(tmp: Path, redirect: bool = False, **tuning: int) -> Iterator[Running]:
    """HAProxy (`haproxy -db`, bound to loopback only) with the haproxy.cfg rendered for the
    seed's stack with these settings (`stack`), a stand-in per container, every server UP;
    stopped by PID, stand-ins closed, on the way out."""
    requests = Requests()
    servers: dict[str, _Server] = {}
    proc: Optional[subprocess.Popen] = None
    try:
        # The stand-ins first: the ports chosen for HAProxy afterwards cannot be theirs.
        for address in sorted({f"{b.name}:{k.port}" for b in StackConfig().cluster.backends for k in b.containers}):
            servers[address] = stand_in(address, requests)
        config, plain, tls = stack(redirect, tuning)
        rendered = str(render_cluster(config).nodes["cluster1"].files[CFG].content)
        cfg = on_loopback(rendered, tmp, {a: s.server_address[1] for a, s in servers.items()})
        pem, ca_pem = https_pem(tmp / "pki.json")
        (tmp / "site.pem").write_text(pem)
        (tmp / "ca.pem").write_text(ca_pem)
        (tmp / "haproxy.cfg").write_text(cfg)
        run = Running(config, cfg, plain, tls, tmp / "ca.pem", tmp / "admin.sock", tmp / "haproxy.log", requests, servers)
        with run.log.open("wb") as out:
            proc = subprocess.Popen(["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")], stdout=out, stderr=subprocess.STDOUT)

        def every_server_up() -> bool:
            assert proc.poll() is None, f"haproxy exited {proc.returncode}:\n{run.log_tail()}"
            try:
                rows = [r for (_, sv), r in run.stat().items() if sv not in ("FRONTEND", "BACKEND")]
            except OSError:  # the admin socket is not there yet
                return False
            return bool(rows) and all(r["status"] == "UP" for r in rows)

        wait_until("every server UP in the rendered HAProxy", every_server_up, 15, 0.1)
        yield run
    finally:
        requests.release.set()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for server in servers.values():
            server.shutdown()
            server.server_close()


def send(port: int, method: str, path: str, *, tls_ca: Optional[Path] = None, host: Optional[str] = "127.0.0.1",
         headers: Optional[dict[str, str]] = None, body: bytes = b"", version: str = "HTTP/1.1") -> tuple[int, dict[str, str], str, float]:
    """One request on a new connection, redirects not followed: status, headers (lower-case names),
    body and seconds taken. Over TLS the certificate is verified against `tls_ca`. The request,
    body included, goes out in one write, so HAProxy holds all of it when it picks a server (the
    condition for it to be able to replay it at all). `host` None: no Host header (with
    `version="HTTP/1.0"`, a request as an old client sends it)."""
    head = {**({"Host": host} if host is not None else {}), "Connection": "close",
            **({"Content-Length": str(len(body))} if body or method == "POST" else {}), **(headers or {})}
    request = f"{method} {path} {version}\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items()) + b"\r\n" + body
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as raw:
        conn = ssl.create_default_context(cafile=str(tls_ca)).wrap_socket(raw, server_hostname="127.0.0.1") if tls_ca else raw
        with conn:
            conn.sendall(request)
            response = http.client.HTTPResponse(conn, method=method)
            response.begin()
            text = response.read().decode(errors="replace")
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text, time.monotonic() - start


# --------------------------------------------------------------------------- 1. redirect and HSTS


@pytest.mark.parametrize("redirect", [False, True], ids=["redirect-off", "redirect-on"])
def test_the_plain_ports_redirect_to_the_tls_port_and_hsts_comes_only_with_the_redirect(tmp_path: Path, redirect: bool) -> None:
    assert StackConfig().cluster.haproxy.https.redirect is False  # the seed's plain ports serve unless switched on
    host = "www.ha-web-cluster.test"
    with running_haproxy(tmp_path, redirect=redirect) as run:
        plain, tls, max_age = run.plain, run.tls, run.config.cluster.haproxy.https.hsts_max_age_s
        for name in HTTP_SERVICES:
            tag = f"{name}-plain"
            status, headers, body, _ = send(plain[name], "GET", f"/a/page.php?id={tag}&x=1", host=f"{host}:{plain[name]}")
            if redirect:
                assert status == 308, (name, status, body)
                assert headers.get("location") == f"https://{host}:{tls[name]}/a/page.php?id={tag}&x=1", (name, headers)
                assert run.requests.of(tag) == [], "a redirected request reached a server"
                _the_redirect_keeps_the_method_the_ipv6_host_and_has_a_host_without_one(run, name)
            else:
                assert status == 200 and body.startswith("served by "), (name, status, body)
                assert "location" not in headers
                assert len(run.requests.of(tag)) == 1

            tag = f"{name}-tls"
            status, headers, body, _ = send(tls[name], "GET", f"/a/page.php?id={tag}", tls_ca=run.ca, host=f"{host}:{tls[name]}")
            assert status == 200 and body.startswith("served by "), (name, status, body)
            assert len(run.requests.of(tag)) == 1
            if redirect:
                assert headers.get("strict-transport-security") == f"max-age={max_age}", (name, headers)
            else:
                assert "strict-transport-security" not in headers, (name, headers)
        # Never HSTS over plain HTTP (RFC 6797 8.1: a browser ignores it there).
        status, headers, _, _ = send(plain["haproxy-http"], "GET", "/?id=plain-hsts", host=host)
        assert "strict-transport-security" not in headers


def _the_redirect_keeps_the_method_the_ipv6_host_and_has_a_host_without_one(run: Running, name: str) -> None:
    """The redirect on, service `name`'s plain port: a POST gets the same 308 (a 301 would turn it
    into a GET) and reaches no server; an IPv6 Host keeps its address, only its port changes; a
    request with no Host (HTTP/1.0) or an empty one goes to the certificate's DNS name, not to `https://:port`."""
    plain, tls = run.plain[name], run.tls[name]
    dns_name = run.config.cluster.haproxy.https.dns_name
    cases = [  # (tag, method, body, Host header or None, HTTP version, the host expected in the Location)
        (f"{name}-post", "POST", b"order=1&qty=2", f"www.ha-web-cluster.test:{plain}", "HTTP/1.1", "www.ha-web-cluster.test"),
        (f"{name}-ipv6", "GET", b"", f"[::1]:{plain}", "HTTP/1.1", "[::1]"),
        (f"{name}-ipv6-noport", "GET", b"", "[::1]", "HTTP/1.1", "[::1]"),
        (f"{name}-nohost", "GET", b"", None, "HTTP/1.0", dns_name),
        (f"{name}-nohost-post", "POST", b"order=3", None, "HTTP/1.0", dns_name),
        (f"{name}-emptyhost", "GET", b"", "", "HTTP/1.1", dns_name),
    ]
    for tag, method, body, host, version, expected in cases:
        path = f"/shop/cart.php?id={tag}&x=%2F1"
        status, headers, text, _ = send(plain, method, path, host=host, body=body, version=version)
        assert status == 308, (tag, status, text, run.log_tail())
        assert headers.get("location") == f"https://{expected}:{tls}{path}", (tag, headers)
        time.sleep(0.1)
        assert run.requests.of(tag) == [], f"{tag}: a redirected request reached a server"


# --------------------------------------------------------------------------- 2. no replay on a response timeout


def test_a_request_whose_server_timed_out_is_answered_504_and_never_replayed_but_a_refused_connection_is_retried(tmp_path: Path) -> None:
    with running_haproxy(tmp_path, timeoutServerMs=TIMEOUT_SERVER_MS) as run:
        assert run.config.cluster.haproxy.tuning.retries >= 1  # the retries exist: they must not apply here
        assert "\ttimeout server  1000\n" in run.cfg
        port = run.plain["haproxy-http"]
        run.requests.stall.set()  # every stand-in holds every request past `timeout server`
        for method, body in (("GET", b""), ("POST", b"order=1")):
            tag = f"timeout-{method}"
            status, _, text, took = send(port, method, f"/slow.php?id={tag}", body=body)
            time.sleep(0.3)  # a replay HAProxy had sent would have reached a stand-in by now
            got = run.requests.of(tag)
            assert status == 504, (method, status, text, run.log_tail())
            assert len(got) == 1, f"{method} after a response timeout reached the servers {len(got)} times: {got}\n{run.log_tail()}"
            assert took < 3 * TIMEOUT_SERVER_MS / 1000, f"{method} took {took:.1f} s: more than one server timeout"
        run.requests.stall.clear()

        # Contrast: a server that refuses connections (its container gone, before any health check
        # noticed: health checks off for it) while the others answer. The persistence cookie sends
        # the request to it first; HAProxy retries on another server, for every method.
        servers = run.servers_of("http-servers")
        for (dead, address), (method, body) in zip(servers[:2], (("GET", b""), ("POST", b"order=2"))):
            assert run.runtime(f"disable health http-servers/{dead}").strip() == ""
            gone = next(s for s in run.servers.values() if s.server_address[1] == int(address))
            gone.shutdown()
            gone.server_close()  # its port now refuses connections
            before = run.stat()
            tag = f"refused-{method}"
            status, _, text, _ = send(port, method, f"/page.php?id={tag}", body=body, headers={"Cookie": f"SERVERID={dead}"})
            got = run.requests.of(tag)
            assert status == 200 and text.startswith("served by "), (method, status, text, run.log_tail())
            assert len(got) == 1 and got[0][1] == method, got
            switched = int(run.stat()[("http-servers", dead)]["wredis"]) - int(before[("http-servers", dead)]["wredis"])
            assert switched == 1, f"the {method} was not first sent to {dead} and redispatched ({switched} redispatches): nothing was retried"


# --------------------------------------------------------------------------- 3. replay on an empty response: GET only


def test_an_empty_response_has_a_get_replayed_on_another_server_but_never_a_post(tmp_path: Path) -> None:
    """A server that reads the request and closes the connection without a byte of answer (a
    container that died while handling it): HAProxy's `retry-on empty-response` replays a GET on
    another server (the client gets a 200); a POST is not replayed (502), it ran once."""
    with running_haproxy(tmp_path) as run:
        port = run.plain["haproxy-http"]
        servers = run.servers_of("http-servers")
        assert len(servers) >= 3, servers  # two closers, and a server left to replay on
        by_port = {s.server_address[1]: address for address, s in run.servers.items()}
        # A closer per method: one that errs is not the one the next request is pinned to.
        for (closer, lo_port), (method, body) in zip(servers[:2], (("GET", b""), ("POST", b"order=1"))):
            stand_in_name = by_port[int(lo_port)]
            run.requests.empty.add(stand_in_name)
            tag = f"empty-{method}"
            status, _, text, _ = send(port, method, f"/page.php?id={tag}", body=body, headers={"Cookie": f"SERVERID={closer}"})
            time.sleep(0.3)  # a replay HAProxy had sent would have reached a stand-in by now
            got = run.requests.of(tag)
            assert got and got[0] == (stand_in_name, method, f"/page.php?id={tag}"), f"the {method} was not first sent to {closer}: {got}"
            if method == "GET":
                assert status == 200 and text.startswith("served by "), (method, status, text, run.log_tail())
                assert len(got) == 2 and got[1][0] != stand_in_name and got[1][0] not in run.requests.empty, got
                assert text == f"served by {got[1][0]}\n", (text, got)
            else:
                assert status == 502, (method, status, text, run.log_tail())
                assert got == [(stand_in_name, "POST", f"/page.php?id={tag}")], f"the POST reached the servers {len(got)} times: {got}\n{run.log_tail()}"
