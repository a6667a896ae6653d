"""HTTPS at the directors, proved on the running lab with the lab's own CA and server certificate
(https_pki.py), as a scenario: `curl --cacert` verifies the VIP's certificate on every TLS port,
ALPN negotiates h2, TLS 1.1 is refused, the persistence cookie is Secure and HttpOnly on HTTPS
only, the stats page answers over TLS, and a certificate replaced through HAProxy's runtime API
under HTTPS load loses no request."""

from __future__ import annotations

import re
import subprocess
import time

from ..render import https
from . import probe
from .context import LabContext
from .https_pki import CA_FILE, lab_https_values
from .state import CLIENT, HYPERVISOR, netns_name, sandbox

SWAP_LOAD_S = 8
TIMEOUT_S = 10


def s_client(address: str, port: int, *options: str) -> str:
    """openssl s_client from the client namespace: the handshake's report (the session is closed at once)."""
    argv = ["ip", "netns", "exec", netns_name(CLIENT), "timeout", str(TIMEOUT_S), "openssl", "s_client", "-connect", f"{address}:{port}", "-CAfile", str(CA_FILE), *options]
    out = subprocess.run(argv, input="", capture_output=True, text=True, timeout=TIMEOUT_S + 5)
    return out.stdout + out.stderr


def served_serial(address: str, port: int) -> str:
    text = s_client(address, port, "-servername", "lab")
    cert = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", text, re.S)
    assert cert, f"no certificate from {address}:{port}: {text[-400:]}"
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=cert.group(0), capture_output=True, text=True, timeout=10).stdout.strip()


def swap_certificate(lab: LabContext, pem: str) -> list[str]:
    """Every director's HAProxy gets `pem` through the rendered swap script (runtime API, no reload)."""
    notes = []
    for d in lab.directors:
        sb = sandbox(d.name)
        script = str(sb.path(https.SWAP_SCRIPT))  # /usr/local/sbin is not overlaid in the lab: the rendered file where it lies
        staged = f"{https.CERT_FILE}.next"
        out = sb.run(["sh", "-c", f"umask 077; cat > {staged} && bash {script} {staged}; rc=$?; rm -f {staged}; exit $rc"], input=pem, check=False, timeout=30)
        assert out.returncode == 0, f"{d.name}: certificate swap failed: {out.stdout}{out.stderr}"
        notes.append(out.stdout.strip().splitlines()[-1])
    return notes


def https_at_the_vip(lab: LabContext) -> list[str]:
    topo = lab.topo
    services = [s for s in topo.cluster.haproxy.services if s.tls_port is not None]
    if not services:
        return ["no service has a TLS frontend (tlsPort) in this stack"]
    lab_https_values(topo)
    notes = []
    for s in services:
        url = f"https://{lab.vip}:{s.tls_port}/"
        r = probe.get(url, cacert=str(CA_FILE), timeout=TIMEOUT_S)
        assert r.status == 200, f"{url} with --cacert: {r.status} {r.error}"
        unverified = probe.get(url, timeout=TIMEOUT_S)
        assert unverified.status == 0 and "certificate" in unverified.error, f"{url} without the CA was accepted: {unverified.status}"
        text = s_client(lab.vip, s.tls_port, "-alpn", "h2", "-verify_return_error")
        assert "ALPN protocol: h2" in text and "Verify return code: 0 (ok)" in text, f"{lab.vip}:{s.tls_port}: no verified h2:\n{text[-600:]}"
        old = s_client(lab.vip, s.tls_port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        assert "Cipher is (NONE)" in old or "alert" in old.lower() or "no protocols available" in old, f"TLS 1.1 accepted on {s.tls_port}"
        notes.append(f"{s.name}: https://{lab.vip}:{s.tls_port}/ verified with the lab CA, ALPN h2, TLS 1.1 refused")
        if topo.persistence(s) == "cookie":
            assert "secure" in r.headers.get("set-cookie", "").lower() and "httponly" in r.headers.get("set-cookie", "").lower(), r.headers
            plain = probe.get(lab.url(s.port), timeout=TIMEOUT_S)
            assert plain.cookie("SERVERID") and "secure" not in plain.headers.get("set-cookie", "").lower(), plain.headers
            notes.append(f"{s.name}: SERVERID cookie Secure+HttpOnly over HTTPS ({r.headers['set-cookie']}), plain port unchanged")
    stats_port = topo.cluster.haproxy.https.stats_port
    if stats_port:
        stats = topo.cluster.haproxy.stats
        page = probe.get(f"https://{lab.vip}:{stats_port}{stats.uri}", auth=lab.auth, ns=HYPERVISOR, cacert=str(CA_FILE), timeout=TIMEOUT_S)
        assert page.status == 200 and "Statistics Report" in page.body, f"stats over TLS: {page.status} {page.error}"
        notes.append(f"stats page over TLS on {stats_port} (from the admin network)")
        if stats.metrics_uri:
            metrics = probe.get(f"https://{lab.vip}:{stats_port}{stats.metrics_uri}", auth=lab.auth, ns=HYPERVISOR, cacert=str(CA_FILE), timeout=TIMEOUT_S)
            assert metrics.status == 200 and "haproxy_" in metrics.body, f"{stats.metrics_uri} over TLS: {metrics.status} {metrics.error}"
            notes.append(f"Prometheus {stats.metrics_uri} over TLS on {stats_port}")
    notes += _swap_under_load(lab, services[0])
    return notes


def _swap_under_load(lab: LabContext, service) -> list[str]:
    before = served_serial(lab.vip, service.tls_port)
    pem = lab_https_values(lab.topo, renew=True)[https.PEM_KEY]  # same CA and key, a new certificate
    load = lab.start_load(f"https://{lab.vip}:{service.tls_port}/", requests=1_000_000, concurrency=8, duration=SWAP_LOAD_S, cacert=str(CA_FILE))
    time.sleep(SWAP_LOAD_S / 2)
    swapped = swap_certificate(lab, pem)
    result = lab.finish_load(load, timeout=SWAP_LOAD_S + 60)
    after = served_serial(lab.vip, service.tls_port)
    assert after != before, f"the VIP still serves certificate {before}"
    assert result["failed"] == 0 and result["ok"] > 0, f"HTTPS requests lost during the certificate swap: {result['failures']} of {result['requests']}"
    return swapped[:1] + [f"certificate {before} -> {after} under HTTPS load: {result['ok']} requests, 0 failed, longest gap {result['longest_gap_s']} s"]


PROOFS = (https_at_the_vip,)
