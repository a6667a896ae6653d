"""Working Gluster keys and certificates for the e2e's recorded plan.

Under the mock engine pulumi-tls makes nothing, and the mocks' stand-in PEMs would not start a
TLS session in the guests. The recording hands the mocks these instead: the CA's and each
node's key and certificate from webcluster/pki.py, kept beside the e2e's SSH key, so every run
on a machine records the same plan (and restores the same snapshots)."""

from __future__ import annotations

from typing import Mapping

from components.gluster_pki import COMPONENT_NAME, resource_names

from .. import pki
from ..render.gluster_tls import CA_KEY, cert_key, key_key
from .shell import STATE

STORE = STATE / "gluster-pki.json"
CA_SUBJECT = "ha-web-cluster Gluster CA (e2e)"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
CERTIFICATES = ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert")


def provider_outputs(typ: str, name: str) -> Mapping[str, str]:
    """What pulumi-tls would return for the GlusterPki resource `name` ({} for any other resource)."""
    if typ != PRIVATE_KEY and typ not in CERTIFICATES:
        return {}
    node = _node_of(name)
    if node is False:
        return {}
    material = pki.ensure(STORE, [node] if node else [], CA_SUBJECT)
    if typ == PRIVATE_KEY:
        return {"privateKeyPem": material[pki.CA_PRIVATE_KEY] if node is None else material[key_key(node)]}
    return {"certPem": material[CA_KEY] if node is None else material[cert_key(node)]}


def _node_of(name: str) -> "str | None | bool":
    """The node a GlusterPki resource belongs to, None for the CA's, False for any other resource."""
    if name in resource_names():
        return None
    prefix = f"{COMPONENT_NAME}-"
    node = name[len(prefix):].rsplit("-", 1)[0]
    return node if name.startswith(prefix) and name in resource_names(node) else False
