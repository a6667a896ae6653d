"""Working Gluster and HTTPS keys and certificates for the e2e's recorded plan.

Under the mock engine pulumi-tls makes nothing, and the mocks' stand-in PEMs would not start a
TLS session in the guests (HAProxy would not even start on a stand-in certificate). The
recording hands the mocks these instead: the CA's and each node's key and certificate from
webcluster/pki.py, and the HTTPS CA, server key and a certificate for the names the
program's certificate request asks for, kept beside the e2e's SSH key, so every run on a
machine records the same plan (and restores the same snapshots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional

from components import https_pki
from components.gluster_pki import COMPONENT_NAME, resource_names

from .. import pki
from ..render import https
from ..topology import Topology
from ..render.gluster_tls import CA_KEY, cert_key, key_key
from .shell import STATE

STORE = STATE / "gluster-pki.json"
CA_SUBJECT = "ha-web-cluster Gluster CA (e2e)"
HTTPS_STORE = STATE / "https-pki.json"
HTTPS_CA_SUBJECT = "ha-web-cluster HTTPS CA (e2e)"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CERTIFICATES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")


def provider_outputs(typ: str, name: str, inputs: Optional[Mapping[str, Any]] = None) -> Mapping[str, str]:
    """What pulumi-tls would return for the GlusterPki or HttpsPki resource `name` ({} for any other resource)."""
    role = https_pki.resource_names().get(name)
    if role is not None:
        return https_outputs(role, inputs or {})
    if typ != PRIVATE_KEY and typ not in CERTIFICATES:
        return {}
    node = _node_of(name)
    if node is False:
        return {}
    material = pki.ensure(STORE, [node] if node else [], CA_SUBJECT)
    if typ == PRIVATE_KEY:
        return {"privateKeyPem": material[pki.CA_PRIVATE_KEY] if node is None else material[key_key(node)]}
    return {"certPem": material[CA_KEY] if node is None else material[cert_key(node)]}


def https_outputs(role: str, inputs: Mapping[str, Any], store: Path = HTTPS_STORE) -> Mapping[str, str]:
    """The HttpsPki resource's outputs. The certificate request comes after the server key and
    before the certificate (each waits for the other's output): it is where the names are known,
    so it issues the certificate the store then hands out."""
    if role == "csr":
        pki.ensure_server(store, list(inputs.get("ipAddresses") or []), list(inputs.get("dnsNames") or []), HTTPS_CA_SUBJECT)
        return {}
    m = pki.ensure_server(store, None, None, HTTPS_CA_SUBJECT)
    output, key = {"caKey": ("privateKeyPem", pki.CA_PRIVATE_KEY), "caCert": ("certPem", CA_KEY), "serverKey": ("privateKeyPem", pki.SERVER_KEY), "serverCert": ("certPem", pki.SERVER_CERT)}[role]
    return {output: m[key]}


def new_https_certificate(topology: Topology, store: Path = HTTPS_STORE) -> tuple[str, str]:
    """(certificate chain, key) of a new server certificate from the e2e's HTTPS CA for the names the
    program's certificate covers: what a user gives as `httpsCertificate` and `httpsKey` to rotate
    it. The store is only read: the recorded baseline plan (and so the snapshots) stays the same."""
    material = json.loads(store.read_text())
    names = https.names(topology)
    cert = pki.issued_server_cert(material, list(names.addresses), list(names.dns_names))
    return cert.strip() + "\n" + material[CA_KEY].strip() + "\n", material[pki.SERVER_KEY]


def _node_of(name: str) -> "str | None | bool":
    """The node a GlusterPki resource belongs to, None for the CA's, False for any other resource."""
    if name in resource_names():
        return None
    prefix = f"{COMPONENT_NAME}-"
    node = name[len(prefix):].rsplit("-", 1)[0]
    return node if name.startswith(prefix) and name in resource_names(node) else False
