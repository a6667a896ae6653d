"""The lab's Gluster PKI (webcluster/pki.py), beside the lab's other secrets."""

from __future__ import annotations

from .. import pki
from ..render.gluster_tls import participants
from ..topology import Topology
from .state import LAB_ROOT

PKI_FILE = LAB_ROOT / "gluster-pki.json"


def lab_pki_values(topo: Topology) -> dict[str, str]:
    """The placeholder values of gluster_tls for this stack's nodes (none when TLS is off)."""
    nodes = participants(topo)
    if not nodes:
        return {}
    values = pki.ensure(PKI_FILE, nodes, "ha-web-cluster Gluster CA (lab)")
    values.pop(pki.CA_PRIVATE_KEY)
    return values
