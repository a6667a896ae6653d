"""Gluster's PKI and the directors' HTTPS certificate made with openssl, for the runs that have
no Pulumi engine to make them with pulumi-tls (components/gluster_pki.py, components/https_pki.py):
the namespace lab, and the e2e, whose recorded plan must carry keys that really work. Same shape:
Gluster has one CA, one RSA key per node that speaks Gluster and a certificate for its
hostname; HTTPS has its own CA and one ECDSA server certificate for the VIP and a DNS name.
Kept root-only in JSON files, made once and extended when a node (or a name) appears, so the
same nodes get the same material in every run."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from .render.gluster_tls import CA_KEY, cert_key, key_key

CA_PRIVATE_KEY = "caKey"  # the CA's key: in the store, never in a rendered file
RSA_BITS = "3072"  # as components/gluster_pki.py
DAYS = "3650"
NODE_EXTENSIONS = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def _new_ca(work: Path, subject: str, newkey: tuple[str, ...] = (f"rsa:{RSA_BITS}",)) -> dict[str, str]:
    _openssl("req", "-x509", "-newkey", *newkey, "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", f"/CN={subject}", "-days", DAYS,
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
    return {CA_PRIVATE_KEY: (work / "ca.key").read_text(), CA_KEY: (work / "ca.crt").read_text()}


def _issue(work: Path, pki: dict[str, str], node: str) -> dict[str, str]:
    (work / "ca.key").write_text(pki[CA_PRIVATE_KEY])
    (work / "ca.crt").write_text(pki[CA_KEY])
    (work / "node.ext").write_text(NODE_EXTENSIONS)
    _openssl("req", "-newkey", f"rsa:{RSA_BITS}", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", f"/CN={node}", cwd=work)
    _openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", DAYS, "-sha256", "-extfile", "node.ext", "-out", "node.crt", cwd=work)
    return {key_key(node): (work / "node.key").read_text(), cert_key(node): (work / "node.crt").read_text()}


def _locked_store(store: Path):
    store.parent.mkdir(parents=True, exist_ok=True)
    lock = open(store.with_suffix(".lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def _save(store: Path, data: dict[str, str]) -> None:
    fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)


# --------------------------------------------------------------------------- HTTPS

EC_KEY = tuple("ec -pkeyopt ec_paramgen_curve:P-256".split())  # `-newkey`'s arguments  # as components/https_pki.py: fast handshakes
SERVER_CERT = "serverCert"
SERVER_KEY = "serverKey"
SERVER_NAMES = "serverNames"


def server_extensions(addresses: Sequence[str], dns_names: Sequence[str]) -> str:
    sans = ",".join([f"IP:{a}" for a in addresses] + [f"DNS:{d}" for d in dns_names])
    return f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={sans}\n"


def ensure_server(store: Path, addresses: Optional[Sequence[str]], dns_names: Optional[Sequence[str]], ca_subject: str, renew: bool = False) -> dict[str, str]:
    """The store's HTTPS CA (CA_PRIVATE_KEY, CA_KEY), server key (SERVER_KEY) and a server
    certificate (SERVER_CERT) covering `addresses` and `dns_names`. The CA and the key are made
    once; the certificate again when the names change. Names None: the store as it is, with
    the CA and the key made if missing (the e2e's mocks ask for the key before the names).
    `renew`: a new certificate (new serial) for the same names and key, as a rotation makes."""
    with _locked_store(store):
        pki = json.loads(store.read_text()) if store.exists() else {}
        names = None if addresses is None else ",".join([*addresses, "/", *(dns_names or [])])
        if CA_KEY in pki and SERVER_KEY in pki and (names is None or pki.get(SERVER_NAMES) == names) and not renew:
            return pki
        with tempfile.TemporaryDirectory(prefix="hawc-pki-") as tmp:
            work = Path(tmp)
            if CA_KEY not in pki:
                pki = _new_ca(work, ca_subject, EC_KEY)
            if SERVER_KEY not in pki:
                _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "server.key", cwd=work)
                pki[SERVER_KEY] = (work / "server.key").read_text()
            if names is not None:
                pki.update(_server_cert(work, pki, addresses or [], dns_names or []), **{SERVER_NAMES: names})
        _save(store, pki)
        return pki


def issued_server_cert(pki: dict[str, str], addresses: Sequence[str], dns_names: Sequence[str]) -> str:
    """A new certificate (new serial) for the store's server key, signed by its CA, and not saved:
    a rotation to show on running servers while the store keeps what recordings hand out."""
    with tempfile.TemporaryDirectory(prefix="hawc-pki-") as tmp:
        return _server_cert(Path(tmp), pki, addresses, dns_names)[SERVER_CERT]


def _server_cert(work: Path, pki: dict[str, str], addresses: Sequence[str], dns_names: Sequence[str]) -> dict[str, str]:
    (work / "ca.key").write_text(pki[CA_PRIVATE_KEY])
    (work / "ca.crt").write_text(pki[CA_KEY])
    (work / "server.key").write_text(pki[SERVER_KEY])
    (work / "server.ext").write_text(server_extensions(addresses, dns_names))
    subject = f"/CN={dns_names[0] if dns_names else addresses[0]}"
    _openssl("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", subject, cwd=work)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", str(int.from_bytes(os.urandom(8), "big")),
             "-days", DAYS, "-sha256", "-extfile", "server.ext", "-out", "server.crt", cwd=work)
    return {SERVER_CERT: (work / "server.crt").read_text()}


# --------------------------------------------------------------------------- Gluster


def ensure(store: Path, nodes: Sequence[str], ca_subject: str) -> dict[str, str]:
    """The store's material for `nodes` (made where missing): the CA's key and certificate, and
    each node's key and certificate under gluster_tls's placeholder keys. Callers in parallel
    (the mock engine asks for every resource at once) wait for each other: each sees what the
    previous one stored instead of making a second CA."""
    with _locked_store(store):
        return _ensure_locked(store, nodes, ca_subject)


def _ensure_locked(store: Path, nodes: Sequence[str], ca_subject: str) -> dict[str, str]:
    pki = json.loads(store.read_text()) if store.exists() else {}
    missing = [n for n in nodes if key_key(n) not in pki]
    if missing or CA_KEY not in pki:
        with tempfile.TemporaryDirectory(prefix="hawc-pki-") as tmp:
            work = Path(tmp)
            if CA_KEY not in pki:
                pki = _new_ca(work, ca_subject)
                missing = list(nodes)
            for node in missing:
                pki.update(_issue(work, pki, node))
        _save(store, pki)
    wanted = {CA_PRIVATE_KEY, CA_KEY} | {f(n) for n in nodes for f in (key_key, cert_key)}
    return {k: v for k, v in pki.items() if k in wanted}
