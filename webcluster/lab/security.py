"""Secure-by-default proofs on the running lab: what the firewalls, the exports and VRRP's
unicast peers keep out, tried for real from the client namespace and from the nodes.

Registered as lab scenarios (scenarios.py imports this module), so `lab test` and
tests/test_lab.py run them with the seed's.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import netns
from ..render.firewall import allowed, client_exposure
from ..topology import ROLE_BACKEND, ROLE_GLUSTER, ROLE_NAS
from . import probe, processes
from .context import LabContext
from .state import CLIENT, LAB_ROOT, netns_name, sandbox

SCAN_TIMEOUT_S = 240
BRICK_PORTS_SCANNED = 50  # of Gluster's 49152-60999: the bricks take the first few


def in_client(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", netns_name(CLIENT), *argv], capture_output=True, text=True, timeout=timeout)


@contextmanager
def routes_via_vip(lab: LabContext) -> Iterator[list[str]]:
    """The worst-case client: it routes the internal and heartbeat networks through the external VIP."""
    nets = [str(lab.topo.network_of(n)) for n in ("internal", "heartbeat")]
    ns = netns_name(CLIENT)
    try:
        for net in nets:
            netns.ip("-n", ns, "route", "replace", net, "via", lab.vip)
        yield nets
    finally:
        for net in nets:
            netns.ip("-n", ns, "route", "del", net, check=False)


def scan_ports(lab: LabContext) -> list[int]:
    """Every TCP port any node's firewall rules name (Gluster's brick range cut short), the
    container and health ports, and 1-1024: bounded, and a superset of what should answer."""
    ports = set(range(1, 1025)) | {lab.topo.cluster.haproxy.tuning.health_port}
    for node in lab.topo.nodes:
        for rule in allowed(lab.topo, node):
            if rule.proto == "tcp":
                ports |= {p for p in rule.port_numbers() if p < 49152 + BRICK_PORTS_SCANNED}
    ports |= {k.port for _, k in lab.topo.containers()}
    return sorted(ports)


def _port_spec(ports: list[int]) -> str:
    spans, start, prev = [], ports[0], ports[0]
    for p in ports[1:] + [None]:  # type: ignore[list-item]
        if p is not None and p == prev + 1:
            prev = p
            continue
        spans.append(str(start) if start == prev else f"{start}-{prev}")
        if p is not None:
            start = prev = p
    return ",".join(spans)


def nmap_open(targets: list[str], ports: list[int]) -> dict[str, list[int]]:
    """Open TCP ports per target, as Debian's nmap sees them from the client (SYN scan, no ping)."""
    argv = ["nmap", "-Pn", "-n", "-sS", "-T4", "--max-retries", "1", "--min-rate", "2000", "--host-timeout", "120s", "-p", _port_spec(ports), "-oX", "-", *targets]
    proc = in_client(argv, SCAN_TIMEOUT_S)
    if proc.returncode != 0:
        raise AssertionError(f"nmap failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    found: dict[str, list[int]] = {t: [] for t in targets}
    for host in ET.fromstring(proc.stdout).iter("host"):
        address = host.find("address").get("addr")  # type: ignore[union-attr]
        found[address] = sorted(int(p.get("portid")) for p in host.iter("port") if p.find("state").get("state") == "open")  # type: ignore[union-attr, arg-type]
    return found


def port_scan(lab: LabContext) -> list[str]:
    """nmap from the client of every node address and VIP (routes via the VIP): open ports == the model's matrix."""
    client = ipaddress.IPv4Address(lab.state.client_address)
    expected = client_exposure(lab.topo, client)
    ports = scan_ports(lab)
    start = time.monotonic()
    with routes_via_vip(lab):
        found = nmap_open(sorted(expected, key=ipaddress.IPv4Address), ports)
    took = time.monotonic() - start
    wrong = {a: (found.get(a), want) for a, want in expected.items() if found.get(a) != want}
    assert not wrong, f"open ports differ from the matrix (address: (found, expected)): {wrong}"
    reachable = {a: p for a, p in expected.items() if p}
    return [
        f"{len(ports)} TCP ports x {len(expected)} addresses scanned in {took:.1f} s",
        f"open exactly as the matrix says: {reachable}; nothing else answers",
    ]


def nothing_inside_answers(lab: LabContext) -> list[str]:
    """With a route to the internal and heartbeat networks via the VIP, no node inside answers ping, TCP or DNS."""
    c = lab.topo.cluster
    master = lab.topo.node(lab.directors[0].name)
    inside = [str(n.internal_address) for n in lab.topo.nodes] + [str(d.heartbeat) for d in c.directors] + [lab.internal_vip]
    backend = c.backends[0]
    container = f"http://{backend.address}:{backend.containers[0].port}/"
    dns_server = str(master.internal_address)
    with routes_via_vip(lab):
        pings = [a for a in inside if in_client(["ping", "-c", "1", "-W", "1", a], 10).returncode == 0]
        web = in_client(["curl", "-sS", "-o", "/dev/null", "--max-time", "2", container], 10)
        dns = in_client([sys.executable, "-c", _DNS_QUERY, dns_server, f"{backend.name}.{c.domain}"], 10)
    assert not pings, f"answered a ping from the client: {pings}"
    assert web.returncode == 28, f"container {container}: curl exit {web.returncode} ({web.stderr.strip()}), expected a timeout (28)"
    assert dns.stdout.strip() == "no answer", f"dnsmasq on {dns_server} answered the client: {dns.stdout.strip()} {dns.stderr.strip()}"
    # The same container answers its director: the silence is the firewall's, not a dead path.
    ok = sandbox(master.name).run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", container], check=False)
    assert ok.stdout.strip() == "200", f"{master.name} could not reach {container}: {ok.stdout} {ok.stderr}"
    return [f"no ping answer from {len(inside)} inside addresses", f"{container}: timeout from the client, 200 from {master.name}", f"DNS on {dns_server}: no answer"]


# One DNS query over UDP, 2 s: prints the answer's RCODE, or "no answer".
_DNS_QUERY = """
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[2].split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, (sys.argv[1], 53))
try:
    print("rcode", s.recv(512)[3] & 15)
except socket.timeout:
    print("no answer")
"""


def _tcp_verdict(node: str, address: str, port: int) -> str:
    """From inside a node: `open`, `refused` (reached, nothing listens) or `dropped` (no answer: a firewall)."""
    script = (
        "import socket,sys\n"
        "s=socket.socket();s.settimeout(2)\n"
        "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('open')\n"
        "except ConnectionRefusedError:\n print('refused')\n"
        "except OSError:\n print('dropped')\n"
    )
    return sandbox(node).run([sys.executable, "-c", script, address, str(port)], check=False, timeout=10).stdout.strip()


def storage_access(lab: LabContext) -> list[str]:
    """NFS and gv0 only from the Docker hosts that mount them; the export is read-only on them."""
    topo = lab.topo
    c = topo.cluster
    nas = topo.nodes_with_role(ROLE_NAS)[0]
    gluster = topo.nodes_with_role(ROLE_GLUSTER)
    clients = [b.name for b in topo.storage_clients("nfs")]
    outsiders = [n.name for n in topo.nodes if n.role != ROLE_BACKEND and n.name != nas.name]
    notes = []
    # NFS: the lab has no NFS server (see README), so the NAS's firewall is what can be proved:
    # a Docker host's connection reaches it (refused: nothing listens), anybody else's is dropped.
    for name in clients[:1] + outsiders:
        verdict = _tcp_verdict(name, str(nas.internal_address), 2049)
        want = "refused" if name in clients else "dropped"
        assert verdict == want, f"{name} -> {nas.name}:2049: {verdict}, expected {want}"
    notes.append(f"NFS port: reached from {clients[0]}, dropped for {', '.join(outsiders)}")
    # Read-only: root on a Docker host cannot write the docroot it mounts.
    docroot = topo.docroot("nfs")
    write = sandbox(clients[0]).run(["sh", "-c", f"echo x > {docroot}/.hawc-write-probe"], check=False)
    assert write.returncode != 0, f"root on {clients[0]} wrote into {docroot}"
    notes.append(f"root on {clients[0]} cannot write {docroot}: {write.stderr.strip()[-80:]}")
    # gv0, for real: a node that is no client cannot mount it.
    if gluster:
        volume = next(v for v in c.gluster.volumes if topo.storage_clients(v.name))
        target = LAB_ROOT / "shared" / "mount-probe"
        target.mkdir(parents=True, exist_ok=True)
        try:
            mount = sandbox(nas.name).run(["timeout", "15", "mount", "-t", "glusterfs", f"{gluster[0].name}:/{volume.name}", str(target)], check=False, timeout=25)
            mounted = sandbox(nas.name).run(["mountpoint", "-q", str(target)], check=False).returncode == 0
            if mounted:
                sandbox(nas.name).run(["umount", "-l", str(target)], check=False)
        finally:
            _stop_mount_clients(target)
            _rmdir(target)
        assert not mounted, f"{nas.name} mounted {volume.name}"
        notes.append(f"{nas.name} cannot mount {volume.name} (exit {mount.returncode}); glusterd port {_tcp_verdict(nas.name, str(gluster[0].internal_address), 24007)} for it")
        client = topo.storage_clients(volume.name)[0].name
        assert _tcp_verdict(client, str(gluster[0].internal_address), 24007) == "open", f"{client} cannot reach glusterd"
    return notes


def _stop_mount_clients(target: Path) -> None:
    """The glusterfs client our refused mount attempt started (its command line names our probe
    directory) may still be retrying: stop it by its PID."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"glusterfs") and str(target).encode() in argv:
            _kill(int(proc.name))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


ROGUE_CONF = """global_defs {{
	router_id rogue
	vrrp_version 3
}}
vrrp_instance ROGUE {{
	state MASTER
	interface eth0
	virtual_router_id {router_id}
	priority 254
	advert_int 0.1
	virtual_ipaddress {{
		{address}/32 dev eth0
	}}
}}
"""


def rogue_vrrp(lab: LabContext) -> list[str]:
    """keepalived in the client namespace, VI_1's router id at priority 254: the VIP stays, service continues."""
    c = lab.topo.cluster
    master = lab.directors[0].name
    # The rogue holds a spare address, not the VIP itself: a host that just takes the VIP's
    # address is ARP spoofing, which no VRRP setting prevents; what VRRP decides is whether the
    # directors give the VIP up to a louder speaker.
    spare = ipaddress.IPv4Address(lab.state.client_address) - 1
    work = LAB_ROOT / "shared" / "rogue"  # `lab down` removes it
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "keepalived.conf"
    conf.write_text(ROGUE_CONF.format(router_id=c.vrrp.router_ids["external"], address=spare))
    log = work / "keepalived.log"
    argv = ["keepalived", "-n", "-l", "-D", "-P", "-f", str(conf), "-p", str(work / "k.pid"), "-r", str(work / "v.pid")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", netns_name(CLIENT), *argv], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    lost, answered, checks = [], 0, 0
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            if lab.holders(lab.vip) != [master]:
                lost.append(lab.holders(lab.vip))
            if checks % 10 == 0:
                answered += probe.get(lab.url(c.haproxy.services[0].port), timeout=2).ok
            checks += 1
            time.sleep(0.05)
    finally:
        processes.signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            processes.signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    text = log.read_text(errors="replace")
    assert "Entering MASTER STATE" in text, f"the rogue never spoke as master: {text[-400:]}"
    assert not lost, f"VIP holders changed while the rogue spoke: {lost[:5]}"
    probes = (checks + 9) // 10
    assert answered == probes, f"service answered {answered} of {probes} requests"
    return [f"rogue keepalived (router id {c.vrrp.router_ids['external']}, priority 254) was MASTER for 4 s", f"{master} kept {lab.vip} in {checks} checks; {answered}/{probes} requests served"]


PROOFS = (port_scan, nothing_inside_answers, storage_access, rogue_vrrp)
