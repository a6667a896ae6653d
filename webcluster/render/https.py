"""TLS at the directors: where HAProxy's certificate lives, what it must cover, and how a new one
goes live without a reload.

The certificate is not rendered: the step carries a placeholder that whoever holds it fills (the
Pulumi program from pulumi-tls or the stack's `httpsCertificate`/`httpsKey`, the lab and the e2e
with openssl). When HAProxy runs with an unchanged configuration and only the certificate file
changed, the step hands the new one to HAProxy's runtime API (`set ssl cert` + `commit ssl
cert`), so open connections survive a certificate change. A reload is the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..topology import Topology
from . import placeholders
from .builder import NodeBuilder

CERT_DIR = "/etc/haproxy/certs"
CERT_FILE = f"{CERT_DIR}/site.pem"  # what `bind ... ssl crt` loads: certificate, chain, key
SWAP_SCRIPT = "/usr/local/sbin/hawc-haproxy-cert"
ADMIN_SOCKET = "/run/haproxy/admin.sock"  # haproxy.cfg's `stats socket`
PEM_KEY = "httpsPem"  # secret placeholder: server certificate, chain and key, one PEM file
ALPN = "h2,http/1.1"
# Mozilla's "intermediate" profile: forward secrecy and AEAD only, TLS 1.2 and 1.3.
CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


@dataclass(frozen=True)
class Names:
    """What the generated server certificate covers (its subjectAltNames)."""

    addresses: tuple[str, ...]
    dns_names: tuple[str, ...]


def enabled(topo: Topology) -> bool:
    """Some service has a TLS frontend (the stats page over TLS alone needs no certificate of its own)."""
    return any(s.tls_port is not None for s in topo.cluster.haproxy.services)


def names(topo: Topology) -> Names:
    return Names((str(topo.cluster.vips.external),), (topo.cluster.haproxy.https.dns_name,))


def is_tls_key(key: str) -> bool:
    """A placeholder the HTTPS certificate fills (not a generated password)."""
    return key == PEM_KEY


# The request's Host header without a trailing `:port` (`[::1]:8000` -> `[::1]`, `www:8000` -> `www`),
# as a sample expression: an IPv6 literal keeps its brackets and colons.
REDIRECT_HOST = "req.hdr(host),regsub(:[0-9]+$,)"
# 308, not 301: the client repeats the request with the same method and body (RFC 7538), a POST
# stays a POST; both are permanent.
REDIRECT_CODE = 308


def redirect_location(host_port: int, host: str = f"%[{REDIRECT_HOST}]") -> str:
    """Where a plain request is sent when the redirect is on: the TLS port, the same URI, and the
    host the client asked for (`REDIRECT_HOST`) or, given, `host`."""
    port = "" if host_port == 443 else f":{host_port}"
    return f"https://{host}{port}%[capture.req.uri]"


def redirect_fallback_host(topo: Topology) -> str:
    """Where a request without a Host (HTTP/1.0) is redirected: the certificate's DNS name, the
    external VIP without one."""
    n = names(topo)
    return (n.dns_names or n.addresses)[0]


def add_files(b: NodeBuilder) -> list[str]:
    """The certificate file (0600) and the script that hands a new one to HAProxy; none without TLS frontends."""
    if not enabled(b.topo):
        return []
    return [
        b.raw(CERT_FILE, placeholders.secret(PEM_KEY), mode=0o600),
        b.file(SWAP_SCRIPT, "director/hawc-haproxy-cert.sh.j2", mode=0o755, cert_file=CERT_FILE, admin_socket=ADMIN_SOCKET),
    ]


def pem_bundle(cert_chain: str, key: str) -> str:
    """One PEM file as HAProxy's `crt` reads it, with no blank line (the runtime API's payload ends at one)."""
    text = cert_chain.strip() + "\n" + key.strip() + "\n"
    return "\n".join(line for line in text.splitlines() if line.strip()) + "\n"

