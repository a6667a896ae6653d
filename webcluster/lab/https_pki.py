"""The lab's HTTPS CA and server certificate (webcluster/pki.py), beside the lab's other secrets."""

from __future__ import annotations

from .. import pki
from ..render import https
from ..topology import Topology
from .state import LAB_ROOT

PKI_FILE = LAB_ROOT / "https-pki.json"
CA_FILE = LAB_ROOT / "https-ca.pem"  # what clients trust (`curl --cacert`); the stack output httpsCaCert in a deployment
CA_SUBJECT = "ha-web-cluster HTTPS CA (lab)"


def lab_https_values(topo: Topology, renew: bool = False) -> dict[str, str]:
    """The placeholder value of render/https.py (none without TLS frontends); writes the CA for clients.
    `renew`: a new certificate (same CA and key), as a rotation makes."""
    if not https.enabled(topo):
        return {}
    names = https.names(topo)
    m = pki.ensure_server(PKI_FILE, names.addresses, names.dns_names, CA_SUBJECT, renew=renew)
    CA_FILE.write_text(m[pki.CA_KEY])
    return {https.PEM_KEY: https.pem_bundle(m[pki.SERVER_CERT] + m[pki.CA_KEY], m[pki.SERVER_KEY])}
