"""The seed's tests that need real guests (chapter 4.1), as automated checks on the running cluster.

The client is the namespace itself (it sits on the external network, like the seed's
host behind its port forwards). Faults are injected the way the seed does them by hand:
``mdadm --fail``, a NIC unplugged (QMP ``set_link``), a node disconnected, a VM powered
off. Every check undoes its fault, except the last one (a powered-off Docker host).
Every wait is bounded.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from webcluster.render import render_cluster
from webcluster.render.builder import holds_secret
from webcluster.topology import ROLE_BACKEND, ROLE_DIRECTOR, ROLE_GLUSTER, ROLE_NAS, Topology

from . import guests, hardening, network
from .recording import PlanRecording
from .. import loss
from ..loss import loss_budget
from ..statscsv import csv_rows
from ..render.storage import RAID_ALERT_TAG
from ..metrics import server_states, vip_held
from ..render.director import service_views
from ..waiting import Timeout, wait_until
from .shell import run
from .ssh import Target, root
from .vipwatch import VipWatch


class CheckFailed(AssertionError):
    pass


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class Cluster:
    """What the checks need to know, from the model and the program's stack outputs."""

    topology: Topology
    plan: PlanRecording
    vip_watch: Optional[VipWatch] = None

    @property
    def services(self) -> dict[str, str]:
        return dict(self.plan.outputs["serviceUrls"])

    def target(self, node: str) -> Target:
        return Target(str(self.topology.node(node).internal_address), self.topology.config.ssh_user)

    def nodes(self, role: str) -> list[str]:
        return [n.name for n in self.topology.nodes_with_role(role)]

    def nic_index(self, node: str, nic_name: str) -> int:
        return [n.name for n in self.topology.node(node).nics].index(nic_name)

    def unplug(self, node: str, up: bool = False) -> None:
        for i, _ in enumerate(self.topology.node(node).nics):
            guests.set_link(node, i, up)


def http_get(url: str, timeout: float = 10, auth: str | None = None) -> tuple[bool, str]:
    """GET from the client namespace; (2xx?, body)."""
    cmd = ["curl", "-fsS", "--max-time", str(timeout), url]
    if auth:
        cmd[1:1] = ["-u", auth]
    r = run(cmd, timeout=timeout + 5, netns=network.NETNS, check=False)
    return r.returncode == 0, (r.stdout or r.stderr).decode(errors="replace")


def must(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


def on(c: Cluster, node: str, script: str, timeout: float = 120, tries: int = 1) -> str:
    """Run a script as root on `node`. With `tries` > 1 (read-only probes only), a session that
    itself failed (no answer within `timeout`: exit 124; ssh's own error: 255) is opened again: an
    emulated director starved of CPU for a while (the VIP flapping shows it) once left a check's
    session unanswered for 120 s. A script that answered with a failure is never run again."""
    for attempt in range(1, tries + 1):
        r = root(c.target(node), script, timeout=timeout)
        if r.returncode not in SESSION_FAILED or attempt == tries:
            break
    out = (r.stdout + r.stderr).decode(errors="replace")
    must(r.returncode == 0, f"{node}: exit {r.returncode}{f' ({tries} tries)' if r.returncode in SESSION_FAILED and tries > 1 else ''}: {out[-600:]}")
    return r.stdout.decode(errors="replace")


SESSION_FAILED = (124, 255)  # the SSH session timed out / ssh itself failed (not the script)
# A session to an emulated director: `echo` alone took 74-86 s (load average 17 inside on its one
# vCPU, keepalived's checks every second), three sessions of 120 s to standby1 all timed out.
PATIENT_SESSION_S = 300


def services_answer(c: Cluster, names: list[str] | None = None, within: float = 60) -> str:
    """Every named service answers 2xx through the VIP within `within` seconds."""
    for name, url in c.services.items():
        if names is None or name in names:
            wait_until(f"{name} ({url})", lambda: http_get(url)[0], within, interval=2)
    return ", ".join(names or sorted(c.services))


def scrape(url: str, auth: str | None = None, tries: int = 3) -> tuple[bool, str]:
    """A read-only GET asked again when no HTTP answer came at all (curl's transport errors, e.g.
    a starved emulated director timing out), as Prometheus scrapes again; an HTTP status is final."""
    for _ in range(tries):
        ok, body = http_get(url, timeout=30, auth=auth)
        if ok or "returned error" in body:
            break
    return ok, body


def check_metrics(c: Cluster) -> str:
    """Every director's Prometheus exporter, scraped from the host as Prometheus would: no answer
    without the stats login, and with it every server of every backend UP (as the services check
    just saw them serve)."""
    expected = {(v.backend, m.name) for v in service_views(c.topology) for m in v.members}
    login = f"{c.plan.outputs['statsUser']}:{c.plan.outputs['statsPassword']}"
    for director, url in sorted(c.plan.outputs["metricsUrls"].items()):
        ok, body = scrape(url)
        must(not ok and "401" in body, f"{director}: the exporter answered without the login: {body[:120]}")
        ok, body = scrape(url, auth=login)
        must(ok, f"{director}: exporter: {body[:200]}")
        states = server_states(body)
        must(set(states) == expected, f"{director}: exporter lists {sorted(set(states) ^ expected)[:4]} unlike the model")
        down = sorted(f"{b}/{s}:{state}" for (b, s), state in states.items() if state != "UP")
        must(not down, f"{director}: exporter says {down[:4]}")
    return f"{len(c.plan.outputs['metricsUrls'])} directors, {len(expected)} servers UP each; 401 without the stats login"


# curl exit codes worth asking again (a starved emulated director): refused, out of time, empty
# reply, receive error. A TLS failure (35 handshake, 60 verification) or an HTTP status is final.
TRANSPORT_FAILURES = (7, 28, 52, 56)


def https_get(url: str, cafile: str, timeout: float = 30) -> tuple[int, str]:
    """GET over HTTPS from the client namespace, the certificate verified with `cafile`, HTTP/2
    offered by ALPN: (curl's exit code, "<status> <HTTP version>" or curl's error)."""
    cmd = ["curl", "-sS", "-o", "/dev/null", "--max-time", str(timeout), "--cacert", cafile, "--http2", "-w", "%{http_code} %{http_version}", url]
    r = run(cmd, timeout=timeout + 5, netns=network.NETNS, check=False)
    return r.returncode, (r.stdout if r.returncode == 0 else r.stderr).decode(errors="replace").strip()


def https_problem(rc: int, answer: str) -> Optional[str]:
    """What is wrong with one HTTPS answer (None: verified, 200, over HTTP/2)."""
    if rc != 0:
        return f"curl exit {rc}: {answer[-200:]}"
    if answer != "200 2":
        return f"answered {answer!r}, expected '200 2' (status 200 over HTTP/2)"
    return None


def check_https(c: Cluster, tries: int = 3) -> str:
    """Every TLS frontend through the external VIP: the certificate verifies against the
    `httpsCaCert` output (by the VIP's address), and ALPN gives HTTP/2."""
    urls = dict(c.plan.outputs.get("httpsUrls") or {})
    if not urls:
        return "no TLS frontend in this stack"
    ca = c.plan.outputs.get("httpsCaCert")
    must(bool(ca), "no httpsCaCert stack output to verify the certificate with")
    with tempfile.NamedTemporaryFile("w", suffix=".pem", prefix="hawc-e2e-ca-") as f:
        f.write(ca)
        f.flush()
        for name, url in sorted(urls.items()):
            for _ in range(tries):
                rc, answer = https_get(url, f.name)
                if rc not in TRANSPORT_FAILURES:
                    break
            problem = https_problem(rc, answer)
            must(problem is None, f"{name} ({url}): {problem}")
    return f"{len(urls)} TLS frontends verified with httpsCaCert, HTTP/2 by ALPN: {', '.join(sorted(urls.values()))}"


def vip_holder_sums(held: dict[str, dict[str, int]], vips: list[str]) -> dict[str, int | None]:
    """vip -> the sum of hawc_vip_held over the directors (None: a director does not report it)."""
    return {vip: sum(m[vip] for m in held.values()) if all(vip in m for m in held.values()) else None for vip in vips}


def check_node_metrics(c: Cluster, rounds: int = 3, pause: float = 10) -> str:
    """Every node's node-exporter, scraped from the host (the e2e namespace plays the hypervisor
    host, one of nodeMetrics.scrapers) as Prometheus would, and the directors' hawc_vip_held summing
    to exactly 1 per VIP. The directors are scraped one after another, so a VIP moving between two
    scrapes reads 0 or 2: up to `rounds` rounds, `pause` s apart, for one consistent read."""
    urls = c.plan.outputs.get("nodeMetricsUrls")
    if not urls:
        return "nodeMetrics off: nothing to scrape"
    directors = [d.name for d in c.topology.directors]
    vips = [str(v) for v in (c.topology.cluster.vips.external, c.topology.cluster.vips.internal, c.topology.cluster.vips.heartbeat)]
    for node, url in sorted(urls.items()):
        if node not in directors:
            ok, body = scrape(url)
            must(ok and "node_exporter_build_info" in body, f"{node}: node-exporter: {body[:200]}")
    for attempt in range(1, rounds + 1):
        held = {}
        for director in directors:
            ok, body = scrape(urls[director])
            must(ok and "node_exporter_build_info" in body, f"{director}: node-exporter: {body[:200]}")
            held[director] = vip_held(body)
        sums = vip_holder_sums(held, vips)
        if all(n == 1 for n in sums.values()) or attempt == rounds:
            break
        time.sleep(pause)
    must(all(n == 1 for n in sums.values()), f"hawc_vip_held summed over the directors is {sums}, not 1 each ({held}; {rounds} rounds)")
    holders = {vip: next(d for d, m in held.items() if m[vip]) for vip in vips}
    return f"{len(urls)} nodes answer; VIP holders (hawc_vip_held, 1 each): " + ", ".join(f"{v} {h}" for v, h in holders.items()) + (f" ({attempt} rounds)" if attempt > 1 else "")


def storage_services(c: Cluster, storage: str) -> list[str]:
    return [s.name for s in c.topology.cluster.haproxy.services if s.storage == storage]


# --------------------------------------------------------------------------- checks


def check_services(c: Cluster) -> str:
    return "all answer: " + services_answer(c, within=120)


def published_ports(c: Cluster) -> list[tuple[str, str, int]]:
    """(Docker host, its internal address, host port) of every container."""
    return [(b.name, str(b.address), ct.port) for b in c.topology.cluster.backends for ct in b.containers]


@dataclass(frozen=True)
class Probe:
    rc: int  # curl's exit code: 0 an HTTP answer, 7 refused, 28 out of time
    connected: bool  # a TCP connection was made (curl's time_connect is not zero)


def probe_ports(c: Cluster, node: str, targets: list[tuple[str, int]], connect_s: int = 15, answer_s: int = 30) -> dict[tuple[str, int], Probe]:
    """Every address:port probed at once from `node` by curl: connecting may take `connect_s`
    (a dropped port never connects), the HTTP answer `answer_s` (a page read through Gluster's
    FUSE mount took several seconds in these guests). A dozen curls starting at once on one
    emulated vCPU take tens of seconds: with 3 s to connect most never connected from a
    director, hence these bounds and the generous session bound."""
    probes = "".join(
        f"(t=$(curl -s -o /dev/null -w '%{{time_connect}}' --connect-timeout {connect_s} --max-time {answer_s} http://{a}:{p}/); echo \"{a} {p} $? $t\") &\n"
        for a, p in targets
    )
    out = on(c, node, probes + "wait\n", timeout=answer_s + 180, tries=2)
    found = {(a, int(p)): Probe(int(rc), float(t or 0) > 0) for a, p, rc, t in re.findall(r"^(\S+) (\d+) (\d+) ?([\d.]*)$", out, re.M)}
    must(set(found) == set(targets), f"{node}: no result for {sorted(set(targets) - set(found))}")
    return found


def check_container_ports(c: Cluster) -> str:
    """Docker publishes a container's port through its own iptables chains, which accept it from
    anywhere; only the project's forward chain keeps it to the directors. From a director every
    container answers; from every other node (NAS, Gluster servers, the other Docker hosts) every
    published port is dropped (never connects, not even a refusal)."""
    ports = published_ports(c)
    director = c.nodes(ROLE_DIRECTOR)[0]
    answered = probe_ports(c, director, [(a, p) for _, a, p in ports])
    must(all(r.rc == 0 for r in answered.values()), f"from {director}: {answered}")
    outsiders = c.nodes(ROLE_NAS) + c.nodes(ROLE_GLUSTER) + c.nodes(ROLE_BACKEND)
    for node in outsiders:
        targets = [(a, p) for host, a, p in ports if host != node]
        found = probe_ports(c, node, targets)
        must(all(r.rc == 28 and not r.connected for r in found.values()), f"from {node}: {[t for t, r in found.items() if r.connected or r.rc != 28]} not dropped ({found})")
    return f"{len(ports)} published ports answer {director}, dropped for {len(outsiders)} other nodes"


def check_container_hardening(c: Cluster) -> str:
    """Every container runs the configured image with the least-privilege settings of
    `cluster.docker` (`docker inspect` on each Docker host), and serves: each answers a director."""
    d = c.topology.cluster.docker
    found: list[str] = []
    for b in c.topology.cluster.backends:
        names = [ct.name for ct in b.containers]
        if not names:
            continue
        out = on(c, b.name, "docker inspect " + " ".join(names), timeout=120, tries=3)
        wrong = hardening.problems(out, names, d)
        must(not wrong, f"{b.name}: " + "; ".join(wrong))
        found += names
    director = c.nodes(ROLE_DIRECTOR)[0]
    answered = probe_ports(c, director, [(a, p) for _, a, p in published_ports(c)])
    must(all(r.rc == 0 for r in answered.values()), f"from {director}: {answered}")
    return f"{len(found)} containers: {hardening.summary(d)}; all answer {director}"


def raid_alerts_missing(alert_log: str, system_log: str, event: str, member: str) -> list[str]:
    """What of EVENT on MEMBER the NAS's logs lack: the line of the alert script (mdadm's PROGRAM,
    `<event> on <md device> member <member>` under its syslog tag) and mdadm's own syslog line
    (`--syslog`: `<event> event detected on md device <md>, component device <member>`)."""
    ours = re.compile(rf"^{re.escape(event)} on /dev/\S+ member {re.escape(member)}$", re.M)
    mdadm = re.compile(rf"^{re.escape(event)} event detected on md device /dev/\S+, component device {re.escape(member)}$", re.M)
    missing = []
    if not ours.search(alert_log):
        missing.append(f"{RAID_ALERT_TAG} (alert script)")
    if not mdadm.search(system_log):
        missing.append("mdadm --syslog")
    return missing


# How long mdadm's monitor may take to log an event (it hears of one at once; the bound covers its
# 60 s poll, should the wake-up be missed, and a slow emulated guest).
RAID_ALERT_WAIT_S = 120


def wait_raid_alert(c: Cluster, nas: str, since: str, event: str, member: str, within: float) -> None:
    """The monitor (mdmonitor.service) logged EVENT on MEMBER twice: through the alert script and itself."""
    def logged() -> bool:
        alert_log = on(c, nas, f"journalctl -q -o cat --since @{since} -t {RAID_ALERT_TAG}")
        missing = raid_alerts_missing(alert_log, on(c, nas, f"journalctl -q -o cat --since @{since}"), event, member)
        last["missing"] = missing
        return not missing

    last: dict[str, list[str]] = {"missing": []}
    try:
        wait_until(f"{event} on {member} logged", logged, within, interval=3)
    except Timeout as e:
        raise CheckFailed(f"{e}: not logged by {', '.join(last['missing'])}") from e


def secret_files(topology: Topology) -> dict[str, list[str]]:
    """Node -> the rendered files that hold a secret there (what the steps installed with one)."""
    plan = render_cluster(topology.config)
    found = {n.name: sorted(f.path for f in n.files.values() if holds_secret(f.content)) for n in plan.nodes.values()}
    return {name: paths for name, paths in found.items() if paths}


def loose_files(stat_lines: str) -> list[str]:
    """From `stat -c '%a %U %n'` lines: the files not root's or readable by group or others."""
    loose = []
    for line in stat_lines.splitlines():
        mode, owner, path = line.split(" ", 2)
        if int(mode, 8) & 0o077 or owner != "root":
            loose.append(f"{path} ({mode} {owner})")
    return loose


def check_secret_files(c: Cluster) -> str:
    """Every file holding a secret is root's and private (0600/0400) on every node, and no half-installed copy is left."""
    counted = 0
    for node, paths in secret_files(c.topology).items():
        listing = "stat -c '%a %U %n' " + " ".join(paths) + " && ls " + " ".join(f"{p}.hawc-new" for p in paths) + " 2>/dev/null || true"
        out = on(c, node, listing, timeout=PATIENT_SESSION_S, tries=2)
        stats = "\n".join(line for line in out.splitlines() if not line.endswith(".hawc-new"))
        must(stats == out.strip(), f"{node}: half-installed copies left: {[line for line in out.splitlines() if line.endswith('.hawc-new')]}")
        must(not loose_files(stats), f"{node}: secret files readable by others: {loose_files(stats)}")
        must(len(stats.splitlines()) == len(paths), f"{node}: expected {len(paths)} secret files, found: {stats}")
        counted += len(paths)
    return f"{counted} secret files on {len(secret_files(c.topology))} nodes, all root-only"


def check_raid(c: Cluster) -> str:
    nas = c.nodes(ROLE_NAS)[0]
    member = on(c, nas, "md=$(awk '/^md/ {print \"/dev/\"$1; exit}' /proc/mdstat); mdadm --detail \"$md\" | awk '/active sync/ {m=$NF} END {print m}'").strip()
    must(member.startswith("/dev/"), f"no active RAID member found: {member!r}")
    state = on(c, nas, "systemctl is-active mdmonitor.service || true").strip()
    must(state == "active", f"mdadm's monitor (mdmonitor.service) is {state}, not active")
    md = "$(awk '/^md/ {print \"/dev/\"$1; exit}' /proc/mdstat)"
    since = on(c, nas, "date +%s").strip()
    on(c, nas, f"mdadm {md} --fail {member}")
    services_answer(c, storage_services(c, "nfs"), within=60)
    wait_raid_alert(c, nas, since, "Fail", member, RAID_ALERT_WAIT_S)
    on(c, nas, f"mdadm {md} --remove {member} && mdadm {md} --add {member}")
    wait_until("RAID resync", lambda: "recovery" not in on(c, nas, "cat /proc/mdstat") and "_" not in on(c, nas, "grep -o '\\[[U_]*\\]' /proc/mdstat"), 300, 3)
    services_answer(c, storage_services(c, "nfs"), within=60)
    return f"{member} failed -> Fail logged by the alert script and mdadm, NFS served; removed, re-added, resynced"


def check_bond(c: Cluster) -> str:
    nas = c.nodes(ROLE_NAS)[0]
    active = on(c, nas, "awk -F': ' '/Currently Active Slave/ {print $2}' /proc/net/bonding/bond0").strip()
    must(bool(active), "bond0 has no active slave")
    index = c.nic_index(nas, active)
    backend = c.nodes(ROLE_BACKEND)[0]
    docroot = c.topology.docroot("nfs")
    cfg = c.topology.cluster
    nas_docroot = f"{cfg.nas.raid.mountpoint}/{cfg.docker.docroot_subdir}"
    guests.set_link(nas, index, False)
    try:
        time.sleep(2)
        wait_until("bond failover", lambda: active not in on(c, nas, "awk -F': ' '/Currently Active Slave/ {print $2}' /proc/net/bonding/bond0"), 30, 1)
        # The export is read-only to the Docker hosts: the NAS writes, the Docker host reads it over NFS.
        on(c, nas, f"date > {nas_docroot}/.e2e-bond")
        stamp = on(c, nas, f"cat {nas_docroot}/.e2e-bond")
        seen = on(c, backend, f"timeout 60 cat {docroot}/.e2e-bond", timeout=90)
        must(seen.strip() == stamp.strip(), f"{backend} read {seen!r} over NFS, the NAS wrote {stamp!r}")
        services_answer(c, storage_services(c, "nfs"), within=60)
    finally:
        guests.set_link(nas, index, True)
        on(c, nas, f"rm -f {nas_docroot}/.e2e-bond")
    return f"{active} unplugged -> other slave active, NAS write read over NFS, service OK"


def check_gluster(c: Cluster) -> str:
    server = c.nodes(ROLE_GLUSTER)[0]
    volume = next(v for v in c.topology.cluster.gluster.volumes if v.replica > 1)
    backend = c.nodes(ROLE_BACKEND)[0]
    docroot = c.topology.docroot(volume.name)
    c.unplug(server)
    try:
        on(c, backend, f"timeout 120 sh -c 'date > {docroot}/.e2e-gluster && cat {docroot}/.e2e-gluster'", timeout=150)
        services_answer(c, storage_services(c, volume.name), within=90)
    finally:
        c.unplug(server, up=True)
    on(c, backend, f"rm -f {docroot}/.e2e-gluster", timeout=150)
    return f"{server} disconnected -> {volume.name} written and served"


def vip_answerers(c: Cluster) -> list[str]:
    """Who answers ARP for the external VIP on the external network, as a client there sees it
    (`arping` from the namespace): directors by their external NIC's MAC, anything else by its
    MAC; more than one is a split brain. No SSH into guests while they fail over: busy emulated
    guests refused it for minutes (banner exchange timeouts), and the polling loaded them more."""
    macs = arp_answers(network.NETNS, network.bridge_name("external"), str(c.topology.cluster.vips.external))
    by_mac = external_macs(c.plan)
    return sorted(by_mac.get(m, m) for m in macs)


def external_macs(plan: PlanRecording) -> dict[str, str]:
    """MAC (lower case) of each guest's external NIC -> guest name."""
    return {nic.mac.lower(): name for name, g in plan.guests.items() for nic in g.nics if nic.network == "external"}


def watch_vip(topology: Topology, plan: PlanRecording) -> VipWatch:
    """Start hearing who claims the external VIP on the client's network (stop() it)."""
    return VipWatch(network.NETNS, network.bridge_name("external"), str(topology.cluster.vips.external), external_macs(plan))


def arp_answers(netns: str, interface: str, address: str) -> set[str]:
    """The MACs (lower case) that answer ARP requests for `address` on `interface`, within 4 s."""
    r = run(["arping", "-I", interface, "-c", "3", "-w", "4", address], timeout=15, netns=netns, check=False)
    return {m.lower() for m in re.findall(r"\[([0-9A-Fa-f:]{17})\]", r.stdout.decode(errors="replace"))}


def vrrp_states(c: Cluster, directors: list[str]) -> str:
    """The last VRRP state changes of each reachable director, for a failed check's message."""
    script = "journalctl -u keepalived --no-pager -n 3000 -o cat | grep -E 'Entering|timed_out|failed' | tail -n 3 | tr '\\n' ';'"
    return " | ".join(f"{d}: {root(c.target(d), script, timeout=40, dial_for=30).stdout.decode(errors='replace').strip() or '?'}" for d in directors)


# keepalived moves the VIPs in seconds; the bound is for busy emulated guests (adverts and
# check runs late by seconds on a slow day).
FAILOVER_WAIT_S = 180


def check_failover(c: Cluster) -> str:
    directors = [d.name for d in c.topology.directors]
    steps: list[str] = []

    def expect(holder: str, alive: list[str]) -> None:
        try:
            wait_until(f"{holder} alone answering for the VIP", lambda: vip_answerers(c) == [holder], FAILOVER_WAIT_S, 1)
        except Timeout as exc:
            raise CheckFailed(f"{exc}; answered by {', '.join(vip_answerers(c)) or 'nobody'}; {vrrp_states(c, alive)}") from exc
        services_answer(c, within=60)
        steps.append(holder)

    expect(directors[0], directors)
    c.unplug(directors[0])
    try:
        expect(directors[1], directors[1:])
        if len(directors) > 2:
            c.unplug(directors[1])
            try:
                expect(directors[2], directors[2:])
            finally:
                c.unplug(directors[1], up=True)
    finally:
        c.unplug(directors[0], up=True)
    expect(directors[0], directors)
    return "VIP: " + " -> ".join(steps)


def stats_auth(c: Cluster) -> str:
    """The stats page's login, as curl's `-u` takes it."""
    return f"{c.plan.outputs['statsUser']}:{c.plan.outputs['statsPassword']}"


def stats_csv(c: Cluster) -> list[dict[str, str]]:
    ok, body = http_get(c.plan.outputs["statsVipUrl"] + ";csv", auth=stats_auth(c))
    must(ok, f"stats page: {body[:200]}")
    return csv_rows(body)


def request_timeout(c: Cluster) -> float:
    """How long HAProxy may take to answer a request: the server timeout of a try that hung
    (answered 504, never replayed), plus a connect timeout per retry, plus slack."""
    t = c.topology.cluster.haproxy.tuning
    return (t.timeout_server_ms + (t.retries + 1) * t.timeout_connect_ms) / 1000 + 5


# keepalived refreshes its gratuitous ARPs every 10 s: a window longer than that holds a claim.
STEADY_VIP_S = 15
HEALTHY_WAIT_S = 300
SERVERS_STEADY_S = 30  # every server UP at every look for this long before a change or the checks start


def healthy(c: Cluster) -> None:
    """Before a change or the checks: every service answers, every server is UP on the stats page
    for SERVERS_STEADY_S, and one director held the VIP for STEADY_VIP_S (a settling server or VIP
    would be blamed on the change or fail a check). Saving the snapshots pauses every guest for
    seconds, the Gluster servers too: every Gluster-backed server went DOWN on every director
    just after, and the first check met a backend with none UP (run 11)."""
    services_answer(c, within=HEALTHY_WAIT_S)

    def all_up() -> bool:
        try:
            return all(r["status"].startswith("UP") for r in stats_csv(c) if r["svname"] not in ("FRONTEND", "BACKEND"))
        except CheckFailed:
            return False

    up_since: list[float] = []

    def up_for_a_while() -> bool:
        """Every server UP at each look for SERVERS_STEADY_S: one look can catch a flapping server UP."""
        if not all_up():
            up_since.clear()
            return False
        up_since[:] = up_since or [time.monotonic()]
        return time.monotonic() - up_since[0] >= SERVERS_STEADY_S

    wait_until(f"every server UP on the stats page for {SERVERS_STEADY_S} s", up_for_a_while, HEALTHY_WAIT_S, 2)
    if c.vip_watch:
        wait_until(f"the VIP claimed by one director for {STEADY_VIP_S} s", lambda: c.vip_watch.steady(STEADY_VIP_S), 120, 1)


@dataclass
class Failure:
    """A request of the Docker-host check that did not get a 2xx: when, in which mode, why."""

    start: float  # epoch
    end: float
    mode: str
    message: str


def split_vip_move_casualties(failures: list[Failure], watch: Optional[VipWatch]) -> tuple[list[Failure], list[Failure]]:
    """(failures the powered-off host caused, failures reset by a VIP move while they were in
    flight). A VIP move is the directors' doing, not the Docker host's: a starved emulated director
    hands the VIP to a standby now and then, and every connection in flight then is reset. The
    check counts the first list against the loss budget and reports the second (at most one per
    move: there is one request in flight at a time)."""
    if watch is None:
        return failures, []
    return loss.split_vip_move_casualties(failures, watch.moves_between)


def check_docker_host_down(c: Cluster) -> str:
    """One client, one request at a time over every service: `loss_budget` of a silent server
    with one request in flight (at most the one in flight on the powered-off host, in either
    mode: a response timeout is not replayed). A request reset by a VIP move is reported apart."""
    host = c.nodes(ROLE_BACKEND)[-1]
    names = {ct.name for b in c.topology.cluster.backends if b.name == host for ct in b.containers}
    modes = {s.name: s.mode.value for s in c.topology.cluster.haproxy.services}
    timeout = request_timeout(c)
    failures: list[Failure] = []
    count = [0]
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for name, url in c.services.items():
                start = time.time()
                ok, body = http_get(url, timeout=timeout)
                count[0] += 1
                if not ok:
                    failures.append(Failure(start, time.time(), modes[name], f"{name}: {body.strip()[:80]}"))
            time.sleep(0.2)

    stats_errors: list[str] = []

    def servers_down() -> bool:
        # A stats read is a probe, not a measured request: one that fails is asked again.
        try:
            return all(r["status"].startswith("DOWN") for r in stats_csv(c) if r["svname"] in names)
        except CheckFailed as exc:
            stats_errors.append(str(exc))
            return False

    if c.vip_watch:  # not while the VIP settles after the previous check: a move resets connections in flight
        wait_until(f"the VIP claimed by one director for {STEADY_VIP_S} s", lambda: c.vip_watch.steady(STEADY_VIP_S), 120, 1)
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        time.sleep(3)
        guests.power_off(host)
        try:
            wait_until(f"{host}'s servers DOWN", servers_down, 90, 2)
        except Timeout as exc:
            raise CheckFailed(f"{exc}; stats page reads failed {len(stats_errors)} times, last: {stats_errors[-1:]}") from exc
        time.sleep(3)
    finally:
        stop.set()
        worker.join(timeout + 30)
    own, moved = split_vip_move_casualties(failures, c.vip_watch)
    lost = {mode: [f.message for f in own if f.mode == mode] for mode in ("http", "tcp")}
    reset = f", {len(moved)} reset by a VIP move ({moved[0].message})" if moved else ""
    must(all(len(f) <= loss_budget(mode, 1, silent=True) for mode, f in lost.items()), f"{len(own)} of {count[0]} requests failed{reset}: {[f.message for f in own][:3]}")
    return f"{host} off -> {len(names)} servers DOWN, {count[0]} requests, lost in flight: {len(lost['tcp'])} in TCP mode, {len(lost['http'])} in HTTP mode{reset}"


CHECKS: list[tuple[str, Callable[[Cluster], str]]] = [
    ("services through the VIP", check_services),
    ("HTTPS through the VIP", check_https),
    ("secret files root-only", check_secret_files),
    ("Prometheus exporter on every director", check_metrics),
    ("node metrics (node-exporter, VIP holders)", check_node_metrics),
    ("container ports only from the directors", check_container_ports),
    ("containers hardened (docker inspect) and serving", check_container_hardening),
    ("RAID member fail/remove/re-add", check_raid),
    ("bond NIC unplugged", check_bond),
    ("Gluster server disconnected", check_gluster),
    ("director failover (keepalived)", check_failover),
    ("Docker host powered off", check_docker_host_down),
]


def vip_moves(c: Cluster, since: float) -> str:
    """For a check's detail: who claimed the VIP while it ran, when that was more than one node."""
    holders = c.vip_watch.holders_since(since) if c.vip_watch else []
    return f"; VIP claimed by {' -> '.join(holders)}" if len(set(holders)) > 1 else ""


def run_checks(c: Cluster, log: Callable[[str], None]) -> list[CheckResult]:
    results = []
    for name, fn in CHECKS:
        log(f"check: {name}")
        start, since = time.monotonic(), time.time()
        try:
            detail, ok = fn(c), True
        except Exception as exc:  # noqa: BLE001 - a failed check is a row in the table, the others still run
            detail, ok = f"{type(exc).__name__}: {exc}", False
        detail += vip_moves(c, since)
        results.append(CheckResult(name, ok, time.monotonic() - start, detail))
        log(f"check: {name}: {'PASS' if ok else 'FAIL'} ({detail[:600]})")
    return results
