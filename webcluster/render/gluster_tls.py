"""TLS between the Gluster servers and the Docker hosts that mount a volume.

Gluster reads fixed paths, set when it is built: Debian's package (the guests' and the lab's)
reads its key, its certificate and the CA it trusts from OpenSSL's directory /usr/lib/ssl
(upstream's default is /etc/ssl; the lab found the difference: a client looking for
/usr/lib/ssl/glusterfs.pem could not mount). The presence of /var/lib/glusterd/secure-access switches glusterd's management
connections (peers, and the clients fetching volfiles) to TLS. The volume options
`server.ssl`/`client.ssl` encrypt the I/O path, and `auth.ssl-allow` names who may connect.

Keys and certificates are not rendered: the files carry placeholders that whoever holds
the PKI fills (the Pulumi program with pulumi-tls resources, the lab with openssl), one
key pair per node named by the node's hostname, which is the certificate's CN.
"""

from __future__ import annotations

from ..topology import Topology
from . import placeholders
from .builder import NodeBuilder

SSL_DIR = "/usr/lib/ssl"  # Debian's glusterfs 10: strings of its socket transport name these three paths
KEY_FILE = f"{SSL_DIR}/glusterfs.key"
CERT_FILE = f"{SSL_DIR}/glusterfs.pem"
CA_FILE = f"{SSL_DIR}/glusterfs.ca"
SECURE_ACCESS = "/var/lib/glusterd/secure-access"
# The CA signs every node's certificate directly: a chain of depth 1 (glusterd's default, said
# here so that the file that switches management TLS on also says what it accepts).
SECURE_ACCESS_TEXT = "option transport.socket.ssl-cert-depth 1\n"
CA_KEY = "glusterCa"  # placeholder key of the CA certificate (a value, not a secret)


def _suffix(node: str) -> str:
    """A node name as placeholder text ([A-Za-z0-9]): hostnames are lower case, so an upper-case
    letter standing for '-' cannot collide with another name."""
    return node.replace("-", "H")


def cert_key(node: str) -> str:
    return f"glusterCert{_suffix(node)}"


def key_key(node: str) -> str:
    return f"glusterKey{_suffix(node)}"


def participants(topo: Topology) -> list[str]:
    """Who speaks Gluster: the servers, then every Docker host that mounts a volume (model order)."""
    g = topo.cluster.gluster
    if not g.tls or not g.volumes:
        return []
    clients = {b.name for v in g.volumes for b in topo.storage_clients(v.name)}
    return [s.name for s in g.servers] + [b.name for b in topo.cluster.backends if b.name in clients]


def is_tls_key(key: str) -> bool:
    """A placeholder the Gluster PKI fills (not a generated password)."""
    return key == CA_KEY or key.startswith(("glusterCert", "glusterKey"))


def volume_options(topo: Topology, volume: str) -> dict[str, str]:
    """TLS on both paths, and the certificate names allowed on this volume: the pool and its clients."""
    if not participants(topo):
        return {}
    names = [s.name for s in topo.cluster.gluster.servers] + [b.name for b in topo.storage_clients(volume)]
    return {"server.ssl": "on", "client.ssl": "on", "auth.ssl-allow": ",".join(names)}


def add_files(b: NodeBuilder) -> list[str]:
    """The node's key, certificate, the CA and secure-access; none when TLS is off or the node speaks no Gluster."""
    if b.name not in participants(b.topo):
        return []
    return [
        b.raw(KEY_FILE, placeholders.secret(key_key(b.name)), mode=0o600),
        b.raw(CERT_FILE, placeholders.value(cert_key(b.name))),
        b.raw(CA_FILE, placeholders.value(CA_KEY)),
        b.raw(SECURE_ACCESS, SECURE_ACCESS_TEXT),
    ]
