"""The directors' HTTPS certificate: the stack's own (`httpsCertificate` + `httpsKey` secrets), or
a generated CA and a server certificate for the external VIP and `haproxy.https.dnsName`, as
pulumi-tls resources in the state.

`values` fills webcluster/render/https.py's placeholder (certificate, chain and key in one PEM, a
secret); `ca_cert` is the generated CA's certificate for the `httpsCaCert` output (None for a
given certificate: its issuer is the user's). A new certificate reaches the running HAProxy
through the 40-haproxy step's runtime-API swap, without a reload.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_tls as tls

from webcluster.render import https
from webcluster.topology import Topology

from .gluster_pki import new_ca, sign

COMPONENT_NAME = "https-pki"
CA_COMMON_NAME = "ha-web-cluster HTTPS CA"
KEY_ALGORITHM = {"algorithm": "ECDSA", "ecdsa_curve": "P256"}  # cheap handshakes; every current client speaks it
SERVER_USES = ["digital_signature", "key_encipherment", "server_auth"]
GIVEN_CERT, GIVEN_KEY = "httpsCertificate", "httpsKey"


def resource_names(name: str = COMPONENT_NAME) -> dict[str, str]:
    """Resource name -> what pulumi-tls makes there (the e2e's mocks answer these with real PEMs)."""
    return {f"{name}-ca-key": "caKey", f"{name}-ca": "caCert", f"{name}-server-key": "serverKey", f"{name}-server-csr": "csr", f"{name}-server-cert": "serverCert"}


class HttpsPki(pulumi.ComponentResource):
    def __init__(self, name: str, topology: Topology, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ha-web-cluster:security:HttpsPki", name, None, opts)
        config = pulumi.Config()
        given_cert, given_key = config.get_secret(GIVEN_CERT), config.get_secret(GIVEN_KEY)
        self.ca_cert: Optional[pulumi.Output[str]] = None
        if (given_cert is None) != (given_key is None):
            raise pulumi.RunError(f"set both {GIVEN_CERT} and {GIVEN_KEY} (secrets), or neither to have them generated")
        if given_cert is not None:
            pem = pulumi.Output.all(given_cert, given_key).apply(lambda ck: https.pem_bundle(ck[0], ck[1]))
        else:
            pem = self._generated(name, topology, pulumi.ResourceOptions(parent=self))
        self.values = {https.PEM_KEY: pulumi.Output.secret(pem)}
        self.register_outputs({"generated": given_cert is None})

    def _generated(self, name: str, topology: Topology, child: pulumi.ResourceOptions) -> pulumi.Output[str]:
        n = resource_names(name)
        by_role = {role: res for res, role in n.items()}
        names = https.names(topology)
        ca_key, ca = new_ca(by_role["caCert"], CA_COMMON_NAME, KEY_ALGORITHM, child)
        key = tls.PrivateKey(by_role["serverKey"], **KEY_ALGORITHM, opts=child)
        request = tls.CertRequest(
            by_role["csr"],
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=(names.dns_names or names.addresses)[0]),
            ip_addresses=list(names.addresses),
            dns_names=list(names.dns_names),
            opts=child,
        )
        cert = sign(by_role["serverCert"], request, ca_key, ca, SERVER_USES, child)
        self.ca_cert = ca.cert_pem
        return pulumi.Output.all(cert.cert_pem, ca.cert_pem, key.private_key_pem).apply(lambda p: https.pem_bundle(p[0] + p[1], p[2]))
