"""Gluster's PKI made with openssl, for the runs that have no Pulumi engine to make it with
pulumi-tls (components/gluster_pki.py): the namespace lab, and the e2e, whose recorded plan
must carry keys that really work. Same shape: one CA, one RSA key per node that speaks
Gluster and a certificate for its hostname. Kept root-only in a JSON file, made once and
extended when a node appears, so the same nodes get the same material in every run."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from .render.gluster_tls import CA_KEY, cert_key, key_key

CA_PRIVATE_KEY = "caKey"  # the CA's key: in the store, never in a rendered file
RSA_BITS = "3072"  # as components/gluster_pki.py
DAYS = "3650"
NODE_EXTENSIONS = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def _new_ca(work: Path, subject: str) -> dict[str, str]:
    _openssl("req", "-x509", "-newkey", f"rsa:{RSA_BITS}", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", f"/CN={subject}", "-days", DAYS,
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


def ensure(store: Path, nodes: Sequence[str], ca_subject: str) -> dict[str, str]:
    """The store's material for `nodes` (made where missing): the CA's key and certificate, and
    each node's key and certificate under gluster_tls's placeholder keys. Callers in parallel
    (the mock engine asks for every resource at once) wait for each other: each sees what the
    previous one stored instead of making a second CA."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
        fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(pki, f)
    wanted = {CA_PRIVATE_KEY, CA_KEY} | {f(n) for n in nodes for f in (key_key, cert_key)}
    return {k: v for k, v in pki.items() if k in wanted}
