"""HTTPS at the directors under the mock engine: the generated CA and server certificate, the CA as a
plain stack output, the key only ever inside secrets, a given certificate used as it is."""

from __future__ import annotations

from pulumi_harness import _digest, is_secret, pem, run_stack, unwrap
from test_pulumi_secrets import leaks

from webcluster.render.https import CERT_FILE

DIRECTORS = ("cluster1", "standby1", "standby2")
GIVEN_CERT = "-----BEGIN CERTIFICATE-----\nR2l2ZW5DZXJ0\n-----END CERTIFICATE-----\n"
GIVEN_KEY = "-----BEGIN PRIVATE KEY-----\nR2l2ZW5LZXk=\n-----END PRIVATE KEY-----\n"


def test_generated_certificate_covers_the_vip_and_the_dns_name_and_its_ca_is_an_output() -> None:
    rec = run_stack("dev", cluster={"haproxy": {"https": {"dnsName": "shop.example.test"}}})
    csr = rec.named("tls:index/certRequest:CertRequest", "https-pki-server-csr")
    assert csr.inputs["ipAddresses"] == ["192.168.1.200"] and csr.inputs["dnsNames"] == ["shop.example.test"]
    ca = rec.named("tls:index/selfSignedCert:SelfSignedCert", "https-pki-ca")
    assert ca.inputs["isCaCertificate"] is True
    cert = rec.named("tls:index/locallySignedCert:LocallySignedCert", "https-pki-server-cert")
    assert "server_auth" in cert.inputs["allowedUses"]
    out = rec.outputs
    ca_pem = pem("CERTIFICATE", _digest("tls:index/selfSignedCert:SelfSignedCert", "https-pki-ca"))
    assert not is_secret(out["httpsCaCert"]) and unwrap(out["httpsCaCert"]) == ca_pem  # clients must read it
    assert unwrap(out["httpsUrls"]) == {"haproxy-http": "https://192.168.1.200:443/", "haproxy-http_g": "https://192.168.1.200:9443/"}
    assert unwrap(out["statsHttpsVipUrl"]) == "https://192.168.1.200:7443/haproxy?stats"
    key = pem("PRIVATE KEY", _digest("tls:index/privateKey:PrivateKey", "https-pki-server-key"))
    assert key in rec.secret_values
    for d in DIRECTORS:
        stdin = rec.steps()[f"{d}-40-haproxy"].inputs["stdin"]
        assert is_secret(stdin)
        script = unwrap(stdin)
        assert f"cat > {CERT_FILE}.hawc-new" in script and key.strip() in script and ca_pem.strip() in script
    assert leaks(rec) == []  # the key: in the secret step input only, never in an output


def test_a_given_certificate_is_used_and_nothing_is_generated() -> None:
    rec = run_stack("dev", secrets={"httpsCertificate": GIVEN_CERT, "httpsKey": GIVEN_KEY})
    assert not [r for r in rec.of_type("tls:index/privateKey:PrivateKey").values() if r.name.startswith("https-pki")]
    assert "httpsCaCert" not in rec.outputs  # its issuer is the user's
    script = unwrap(rec.steps()["cluster1-40-haproxy"].inputs["stdin"])
    assert GIVEN_CERT.strip() + "\n" + GIVEN_KEY.strip() in script
    assert leaks(rec) == []


def test_no_tls_frontend_no_certificate() -> None:
    services = [{"name": "web", "port": 8000, "mode": "http"}, {"name": "raw", "port": 80, "mode": "tcp"}]
    rec = run_stack("dev", cluster={"haproxy": {"services": services}})
    assert not [r for r in rec.of_type("tls:index/privateKey:PrivateKey").values() if r.name.startswith("https-pki")]
    assert "httpsCaCert" not in rec.outputs and unwrap(rec.outputs["httpsUrls"]) == {}
    assert "ssl crt" not in unwrap(rec.steps()["cluster1-40-haproxy"].inputs["stdin"])
