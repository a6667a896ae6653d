"""Gluster's TLS, proved on the running lab: glusterd and a brick answer a Docker host only in TLS,
with the server's certificate for its own name from the cluster's CA, and refuse a connection
that shows no client certificate (mutual TLS). Registered as a lab scenario (scenarios.py)."""

from __future__ import annotations

import re

from ..render import gluster_tls as tls
from .context import LabContext
from .state import sandbox

HANDSHAKE_TIMEOUT_S = "10"
HOLD_S = 2  # long enough for a server that refuses the client to say so


def s_client(node: str, address: str, port: int, with_certificate: bool) -> tuple[bool, bool, str]:
    """A TLS session from inside `node`, kept open (silent) for HOLD_S: (a session with a peer
    certificate verified against the CA, the server ended it before we did, output). A plain-text
    server just closes (no cipher, no peer certificate); Gluster checks the client's certificate
    right after the handshake and ends the session at once when there is none."""
    command = ["openssl", "s_client", "-connect", f"{address}:{port}", "-CAfile", tls.CA_FILE, "-verify_return_error", "-tls1_2"]
    if with_certificate:
        command += ["-cert", tls.CERT_FILE, "-key", tls.KEY_FILE]
    out = sandbox(node).run(["sh", "-c", f"sleep {HOLD_S} | timeout {HANDSHAKE_TIMEOUT_S} {' '.join(command)}"], check=False, timeout=30)
    text = out.stdout + out.stderr
    established = re.search(r"Cipher is (?!\(NONE\))\S+", text) and "no peer certificate available" not in text
    ended_by_server = bool(re.search(r"unexpected eof|errno=|closed", text, re.I))
    return bool(established) and "Verify return code: 0 (ok)" in text, ended_by_server, text


def brick_port(server: str, volume: str, brick: int) -> int:
    """The TCP port of the volume's brick on `server` (glusterd hands them out from 49152)."""
    status = sandbox(server).run(["gluster", "--mode=script", "volume", "status", volume, f"{server}:/export/brick{brick}/data"], check=False, timeout=30).stdout
    ports = [int(p) for p in re.findall(r"^Brick \S+\s+(\d+)\s", status, re.M) if p != "0"]
    assert ports, f"no brick port in: {status}"
    return ports[0]


def gluster_tls(lab: LabContext) -> list[str]:
    topo = lab.topo
    if not tls.participants(topo):
        return ["TLS is off in this stack (cluster.gluster.tls: false)"]
    server = topo.cluster.gluster.servers[0]
    volume = next(v for v in topo.cluster.gluster.volumes if topo.storage_clients(v.name))
    client = topo.storage_clients(volume.name)[0].name
    notes = []
    port = brick_port(server.name, volume.name, volume.brick)
    for what, where in (("glusterd", 24007), (f"{volume.name}'s brick", port)):
        ok, ended, text = s_client(client, str(server.address), where, with_certificate=True)
        assert ok and not ended, f"{client} -> {server.name}:{where} ({what}): no verified TLS session kept open:\n{text[-800:]}"
        subject = re.search(r"subject=.*CN\s*=\s*([\w.-]+)", text)
        assert subject and subject.group(1) == server.name, f"{what} showed {subject and subject.group(0)}"
        cipher = re.search(r"Cipher is (\S+)", text)
        notes.append(f"{what} ({server.name}:{where}) speaks TLS to {client}: certificate CN={server.name} from the cluster's CA, cipher {cipher and cipher.group(1)}")
    for what, where in (("glusterd", 24007), (f"{volume.name}'s brick", port)):
        _, ended, text = s_client(client, str(server.address), where, with_certificate=False)
        assert ended, f"{what} kept a session without a client certificate open:\n{text[-800:]}"
        notes.append(f"without a client certificate {what} ends the session at once")
    return notes


PROOFS = (gluster_tls,)
