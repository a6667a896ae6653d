"""The Gluster PKI: a CA and, for every node that speaks Gluster, its own key and a certificate
for its hostname (the CN `auth.ssl-allow` names), all pulumi-tls resources in the state.

The keys are Pulumi secrets; the certificates are not secret but travel inside the step
scripts, which are. Nothing is written to the stack file: a stack gets its PKI on its first
`pulumi up` and keeps it (a CA rotation is `pulumi up --replace` on the CA key).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
import pulumi_tls as tls

from webcluster.render.gluster_tls import CA_KEY, cert_key, key_key

CA_COMMON_NAME = "ha-web-cluster Gluster CA"
VALIDITY_HOURS = 10 * 365 * 24  # the cluster's lifetime; renewal is a replace of the certificates
KEY_ALGORITHM = {"algorithm": "RSA", "rsa_bits": 3072}  # what Gluster's own documentation uses (RSA), at today's size
NODE_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]  # each node is both ends


COMPONENT_NAME = "gluster-pki"


def resource_names(node: Optional[str] = None, name: str = COMPONENT_NAME) -> dict[str, str]:
    """Resource name -> what it is ("key" or "cert"): the CA's (node None) or a node's."""
    return {f"{name}-ca-key": "key", f"{name}-ca": "cert"} if node is None else {f"{name}-{node}-key": "key", f"{name}-{node}-cert": "cert"}


def new_ca(name: str, common_name: str, key_algorithm: dict, opts: pulumi.ResourceOptions) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
    """A CA's key (resource `name`-key) and self-signed certificate (`name`), signing certificates only."""
    ca_key = tls.PrivateKey(f"{name}-key", **key_algorithm, opts=opts)
    ca = tls.SelfSignedCert(
        name,
        private_key_pem=ca_key.private_key_pem,
        is_ca_certificate=True,
        subject=tls.SelfSignedCertSubjectArgs(common_name=common_name),
        validity_period_hours=VALIDITY_HOURS,
        allowed_uses=["cert_signing", "crl_signing"],
        opts=opts,
    )
    return ca_key, ca


def sign(name: str, request: tls.CertRequest, ca_key: tls.PrivateKey, ca: tls.SelfSignedCert, uses: list[str], opts: pulumi.ResourceOptions) -> tls.LocallySignedCert:
    """The CA's certificate for `request`, valid for the cluster's lifetime."""
    return tls.LocallySignedCert(
        name,
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca_key.private_key_pem,
        ca_cert_pem=ca.cert_pem,
        validity_period_hours=VALIDITY_HOURS,
        allowed_uses=uses,
        opts=opts,
    )


class GlusterPki(pulumi.ComponentResource):
    """`values`: the placeholder values of gluster_tls (CA certificate, each node's certificate and key)."""

    def __init__(self, name: str, nodes: Sequence[str], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ha-web-cluster:security:GlusterPki", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_key, ca = new_ca(f"{name}-ca", CA_COMMON_NAME, KEY_ALGORITHM, child)
        self.values: dict[str, pulumi.Output[str]] = {CA_KEY: ca.cert_pem}
        for node in nodes:
            key_name, cert_name = resource_names(node, name)
            key = tls.PrivateKey(key_name, **KEY_ALGORITHM, opts=child)
            request = tls.CertRequest(
                f"{name}-{node}-csr", private_key_pem=key.private_key_pem, subject=tls.CertRequestSubjectArgs(common_name=node), opts=child
            )
            cert = sign(cert_name, request, ca_key, ca, NODE_USES, child)
            self.values[cert_key(node)] = cert.cert_pem
            self.values[key_key(node)] = pulumi.Output.secret(key.private_key_pem)
        self.ca_cert = ca.cert_pem
        self.register_outputs({"nodes": list(nodes)})
