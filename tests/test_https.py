"""HTTPS at the directors, rendered: the TLS frontends, the stats page over TLS, the secure cookie, the
redirect switch, the certificate file and its step; `haproxy -c` on the rendered config with a real
certificate; and the rendered swap script against a real HAProxy (a new certificate served, no
reload, an open connection kept)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import https_pem
from webcluster.checks import RULES, check_plan
from webcluster.model import StackConfig
from webcluster.render import https, render_cluster
from webcluster.render.placeholders import secret
from webcluster.topology import Topology
from webcluster.validation import check

DIRECTORS = {"cluster1": "10.0.100.1", "standby1": "10.0.100.50", "standby2": "10.0.100.51"}
CFG = "/etc/haproxy/haproxy.cfg"


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = line.strip()
            out[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            out[current].append(line.strip())
    return out


def cfg_of(config: StackConfig, director: str = "cluster1") -> dict[str, list[str]]:
    return sections(str(render_cluster(config).nodes[director].files[CFG].content))


def test_each_http_service_gets_a_tls_frontend_with_h2_and_tls12_minimum() -> None:
    plan = render_cluster(StackConfig())
    for director, internal in DIRECTORS.items():
        cfg = sections(str(plan.nodes[director].files[CFG].content))
        assert "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets" in cfg["global"]
        assert any(line.startswith("ssl-default-bind-ciphers ECDHE-") for line in cfg["global"])
        for name, port, backend in (("haproxy-http", 443, "http-servers"), ("haproxy-http_g", 9443, "http-servers-g")):
            tls = cfg[f"frontend {name}-tls"]
            assert f"bind 192.168.1.200:{port} ssl crt {https.CERT_FILE} alpn h2,http/1.1" in tls
            assert f"default_backend {backend}" in tls and "http-request set-header X-Forwarded-Proto https" in tls
            assert "http-after-response replace-header Set-Cookie '^(SERVERID=.*)$' '\\1; Secure; HttpOnly'" in tls
            assert not any("Strict-Transport-Security" in line for line in tls)  # only with the redirect
            assert not any("redirect" in line for line in cfg[f"frontend {name}"])  # the seed's plain port serves
        assert "frontend haproxy-tcp-tls" not in cfg and "frontend haproxy-tcp_g-tls" not in cfg
        for address in ("192.168.1.200", internal):
            assert f"bind {address}:7443 ssl crt {https.CERT_FILE} alpn h2,http/1.1" in cfg["listen stats"]
            assert f"bind {address}:7000" in cfg["listen stats"]


def test_the_redirect_sends_plain_requests_to_the_tls_port_and_hsts_comes_with_it() -> None:
    cfg = cfg_of(StackConfig.model_validate({"cluster": {"haproxy": {"https": {"redirect": True, "hstsMaxAgeS": 600}}}}))
    # 308 (the method is kept); the Host without a trailing :port only (an IPv6 literal keeps its
    # colons); no Host: the certificate's DNS name. The real HAProxy runs these in test_haproxy_http_behaviour.
    no_host = "unless { req.hdr(host),regsub(:[0-9]+$,) -m len gt 0 }"
    assert cfg["frontend haproxy-http"][-3:-1] == [
        f"http-request redirect location https://www.ha-web-cluster.test%[capture.req.uri] code 308 {no_host}",
        "http-request redirect location https://%[req.hdr(host),regsub(:[0-9]+$,)]%[capture.req.uri] code 308",
    ]
    assert cfg["frontend haproxy-http_g"][-3:-1] == [
        f"http-request redirect location https://www.ha-web-cluster.test:9443%[capture.req.uri] code 308 {no_host}",
        "http-request redirect location https://%[req.hdr(host),regsub(:[0-9]+$,)]:9443%[capture.req.uri] code 308",
    ]
    assert not any("code 301" in line for lines in cfg.values() for line in lines)
    renamed = cfg_of(StackConfig.model_validate({"cluster": {"haproxy": {"https": {"redirect": True, "dnsName": "shop.example.org"}}}}))
    assert renamed["frontend haproxy-http"][-3].startswith("http-request redirect location https://shop.example.org%[capture.req.uri] code 308 unless")
    assert 'http-after-response set-header Strict-Transport-Security "max-age=600"' in cfg["frontend haproxy-http-tls"]
    assert not any("redirect" in line for line in cfg["frontend haproxy-tcp"])


def test_the_certificate_file_is_a_0600_secret_in_the_haproxy_step() -> None:
    plan = render_cluster(StackConfig())
    for director in DIRECTORS:
        node = plan.nodes[director]
        f = node.files[https.CERT_FILE]
        assert f.mode == 0o600 and f.content == secret(https.PEM_KEY)
        install, roll = node.step("40-haproxy"), node.step("60-haproxy-roll")
        assert https.CERT_FILE in install.files and https.SWAP_SCRIPT in install.files and install.files == roll.files
        assert "apt_install haproxy socat" in install.script
        # The new certificate goes in through the runtime API when the roll reaches this director.
        assert f"{https.SWAP_SCRIPT} {https.CERT_FILE}" in roll.script and https.SWAP_SCRIPT not in install.script
    assert https.CERT_FILE not in plan.nodes["nas"].files


def test_no_tls_port_no_tls() -> None:
    config = StackConfig.model_validate({"cluster": {"haproxy": {"services": [{"name": "web", "port": 8000, "mode": "http"}]}}})
    node = render_cluster(config).nodes["cluster1"]
    text = str(node.files[CFG].content)
    assert "ssl" not in text and https.CERT_FILE not in node.files and https.SWAP_SCRIPT not in node.files


def test_tls_ports_are_validated() -> None:
    tcp = {"cluster": {"haproxy": {"services": [{"name": "web", "port": 8000, "mode": "http"}, {"name": "raw", "port": 80, "tlsPort": 443, "mode": "tcp"}]}}}
    assert [p.path for p in check(StackConfig.model_validate(tcp))] == ["cluster.haproxy.services[1].tlsPort"]
    clash = {"cluster": {"haproxy": {"services": [{"name": "web", "port": 8000, "tlsPort": 7000, "mode": "http"}]}}}
    assert any(p.path.endswith("stats.port") or p.path.endswith("tlsPort") for p in check(StackConfig.model_validate(clash)))
    assert list(check(StackConfig())) == []


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")
@pytest.mark.parametrize("redirect", [False, True])
def test_haproxy_accepts_the_rendered_config_with_a_real_certificate(redirect: bool) -> None:
    config = StackConfig.model_validate({"cluster": {"haproxy": {"https": {"redirect": redirect}}}})
    rules = [r for r in RULES if r.checker == "haproxy -c"]
    results = check_plan(render_cluster(config), Topology(config), nodes=["cluster1"], rules=rules)
    assert [r.checker for r in results] == ["haproxy -c"] and all(r.ok for r in results), [r.output for r in results]


def _serial(port: int, ca: Path) -> str:
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca), "-verify_return_error"], input="", capture_output=True, text=True, timeout=20).stdout
    assert "Verify return code: 0 (ok)" in out, out[-500:]
    cert = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", out, re.S).group(0)
    return subprocess.run(["openssl", "x509", "-noout", "-serial"], input=cert, capture_output=True, text=True, timeout=10).stdout.strip()


@pytest.mark.skipif(shutil.which("haproxy") is None or shutil.which("socat") is None, reason="needs haproxy and socat")
def test_the_swap_script_replaces_the_certificate_in_a_running_haproxy_without_a_reload(tmp_path: Path) -> None:
    script = tmp_path / "hawc-haproxy-cert"
    script.write_bytes(render_cluster(StackConfig()).nodes["cluster1"].files[https.SWAP_SCRIPT].data)
    pem, ca_pem = https_pem(tmp_path / "pki.json")
    live, ca, sock = tmp_path / "site.pem", tmp_path / "ca.pem", tmp_path / "admin.sock"
    live.write_text(pem)
    ca.write_text(ca_pem)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "h.cfg").write_text(
        f"global\n\tstats socket {sock} mode 600 level admin\n\tssl-default-bind-options ssl-min-ver TLSv1.2\n"
        f"defaults\n\tmode http\n\ttimeout connect 1s\n\ttimeout client 30s\n\ttimeout server 30s\n"
        f"frontend f\n\tbind 127.0.0.1:{port} ssl crt {live} alpn h2,http/1.1\n\thttp-request return status 200 content-type text/plain string ok\n"
    )
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "h.cfg")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        before = _serial(port, ca)
        # A client that opened its TLS connection before the swap and sends its request after it.
        held = subprocess.Popen(["sh", "-c", f"sleep 3; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | cat"], stdout=subprocess.PIPE)
        client = subprocess.Popen(["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{port}", "-CAfile", str(ca)], stdin=held.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(1)
        new_pem, _ = https_pem(tmp_path / "pki.json", renew=True)
        (tmp_path / "new.pem").write_text(new_pem)
        out = subprocess.run(["bash", str(script), str(tmp_path / "new.pem"), str(sock), str(live)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        after = _serial(port, ca)
        answer, _ = client.communicate(timeout=20)
        assert after != before, "the running HAProxy still serves the old certificate"
        assert live.read_text() == new_pem  # what a restart loads
        assert "HTTP/1.1 200" in answer and answer.rstrip().endswith("ok"), f"the connection opened before the swap: {answer!r}"
        assert proc.poll() is None  # the same process: no reload, no restart
    finally:
        proc.terminate()
        proc.wait(timeout=10)


H2LOAD_REPORT = """finished in 49.90ms, 400.77 req/s, 10.86KB/s
requests: 20 total, 20 started, 20 done, 18 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 17 2xx, 0 3xx, 1 4xx, 0 5xx
"""


def test_the_bench_reads_h2load_s_report() -> None:
    """`lab bench`'s HTTPS part: requests/s, and every request that did not answer 2xx counts as failed."""
    from webcluster.lab.https_bench import HttpsRow, parse_h2load, summary

    assert parse_h2load(H2LOAD_REPORT) == (400.77, 3)
    with pytest.raises(RuntimeError):
        parse_h2load("connect error")
    rows = [HttpsRow(t, p, c, 100, rps, 0) for c in (1, 10) for t, p, rps in (("h2load", "HTTP/1.1", 200.0), ("h2load", "HTTPS HTTP/1.1", 150.0), ("h2load", "HTTPS h2", 100.0), ("ab", "HTTP/1.1", 80.0), ("ab", "HTTPS HTTP/1.1", 40.0))]
    lines = summary(rows)
    assert "  h2load c=10: HTTPS HTTP/1.1 / HTTP = 0.75, HTTPS h2 / HTTP = 0.50" in lines and "  ab c=1: HTTPS HTTP/1.1 / HTTP = 0.50" in lines
