"""Director files and steps: sysctl, dnsmasq, HAProxy, the HA stack, the smoke check (firewall and NAT: firewall.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..model import Director
from ..topology import Topology
from . import https, placeholders, serving
from .builder import NodeBuilder
from .firewall import stats_addresses
from .hastack import ha_stack_for
from .plan import Step, StepRef

SYSCTL_FILE = "/etc/sysctl.d/60-ha-web-cluster.conf"
DNSMASQ_HOSTS = "/etc/dnsmasq.hosts.conf"
HAPROXY_CFG = "/etc/haproxy/haproxy.cfg"
HAPROXY_RELOAD = "/etc/haproxy/hawc-reload.sh"  # the one reload procedure: systemd's ExecReload and the lab run it
HAPROXY_DROPIN = "/etc/systemd/system/haproxy.service.d/hawc-reload.conf"
HAPROXY_STATE = "/var/lib/haproxy/server-state"
HAPROXY_ADMIN_SOCKET = "/run/haproxy/admin.sock"
HAPROXY_PIDFILE = "/run/haproxy.pid"  # Debian's unit: -p $PIDFILE; the master's PID
HAPROXY_ROLL_STEP = "60-haproxy-roll"  # after the HA stack's steps: not on the way to the VIPs on a first deployment
# The reload script's bounds only matter when something is wrong (on real hardware a new worker
# answers within a second), so they are generous: in the e2e (2 December, `e2e change`, standby2
# under client load) `haproxy -c` plus two admin-socket commands took 55 s, the 5 s command bound
# expired (the servers' state was not saved) and the master forked its new worker 37 s after
# SIGUSR2, 7 s past a 30 s bound: a reload that worked failed its step.
HAPROXY_RELOAD_TIMEOUT_S = 120  # for a new worker to answer after SIGUSR2
HAPROXY_CLI_TIMEOUT_S = 20  # one admin-socket command of the reload script (socat), connect to the answer's end
# systemd bounds ExecReload by TimeoutStartSec (90 s by default; a starved emulated director's reload
# was killed at 90 s): the drop-in's bound covers the script's own (haproxy -c, three admin-socket
# commands and the wait for the new worker) with room for a slow `haproxy -c`. It also bounds a start.
HAPROXY_UNIT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Reservation:
    mac: str
    address: str
    name: str


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    port: int


@dataclass(frozen=True)
class ServiceView:
    name: str
    port: int
    mode: str
    backend: str
    cookie: bool
    members: tuple[Member, ...]
    tls_port: int | None = None


def reservations(topo: Topology) -> list[Reservation]:
    """DHCP reservations (MAC -> address -> name), generated from the model as the seed wished."""
    out = []
    for node in topo.dhcp_nodes:
        nic = next(n for n in node.nics if n.dhcp)
        out.append((nic.address, Reservation(nic.mac, str(nic.address), node.name)))
    return [r for _, r in sorted(out, key=lambda row: row[0])]


def service_views(topo: Topology) -> list[ServiceView]:
    views = []
    for s in topo.cluster.haproxy.services:
        members = tuple(Member(c.name, b.name, c.port) for b, c in topo.service_members(s))
        cookie = topo.persistence(s) == "cookie"
        views.append(ServiceView(s.name, s.port, s.mode.value, topo.backend_section(s), cookie, members, s.tls_port))
    return views


def add_director(b: NodeBuilder, director: Director) -> Step:
    """All of a director's configuration; returns the step after which it may hold the VIPs."""
    topo = b.topo
    c = topo.cluster
    is_master = director.name == topo.master.name
    sysctl = b.file(SYSCTL_FILE, "director/sysctl.conf.j2")
    b.step("10-sysctl", "IP forwarding and non-local bind", "steps/director/10-sysctl.sh.j2", files=[sysctl], sysctl_file=SYSCTL_FILE)
    _add_dnsmasq(b, director, is_master)
    admin_sources = [str(topo.network_of(n)) for n in c.haproxy.stats.admin_networks]
    haproxy_cfg = b.file(
        HAPROXY_CFG,
        "director/haproxy.cfg.j2",
        mode=0o600,  # the stats password; haproxy reads it as root before dropping privileges
        director=director,
        t=c.haproxy.tuning,
        services=service_views(topo),
        vip=c.vips.external,
        stats=c.haproxy.stats,
        stats_password=placeholders.secret("statsPassword"),
        description=topo.director_description(director),
        admin_sources=admin_sources,
        stats_addresses=stats_addresses(topo, director.internal),
        serving_path=serving.SERVING_PATH,
        tls=_tls_context(topo),
        admin_socket=HAPROXY_ADMIN_SOCKET,
        server_state_file=HAPROXY_STATE,
        reload_script=HAPROXY_RELOAD,
    )
    tls_files = https.add_files(b)
    reload = b.file(
        HAPROXY_RELOAD,
        "director/haproxy-reload.sh.j2",
        mode=0o755,
        dropin=HAPROXY_DROPIN,
        config=HAPROXY_CFG,
        admin_socket=HAPROXY_ADMIN_SOCKET,
        server_state_file=HAPROXY_STATE,
        pid_file=HAPROXY_PIDFILE,
        reload_timeout_s=HAPROXY_RELOAD_TIMEOUT_S,
        cli_timeout_s=HAPROXY_CLI_TIMEOUT_S,
    )
    dropin = b.file(
        HAPROXY_DROPIN,
        "director/haproxy.service.conf.j2",
        reload_script=HAPROXY_RELOAD,
        server_state_file=HAPROXY_STATE,
        timeout_s=HAPROXY_UNIT_TIMEOUT_S,
    )
    haproxy = b.step(
        "40-haproxy",
        "HAProxy load balancer (started on the first run; a change is applied by " + HAPROXY_ROLL_STEP + ")",
        "steps/director/40-haproxy.sh.j2",
        files=[haproxy_cfg, *tls_files, reload, dropin],
        services=len(c.haproxy.services),
        tls=_tls_context(topo),
        config=HAPROXY_CFG,
        dropin=HAPROXY_DROPIN,
        roll_step=HAPROXY_ROLL_STEP,
    )
    return ha_stack_for(topo).add_director(b, director, haproxy.ref)


def haproxy_roll_order(topo: Topology) -> list[Director]:
    """The order in which a HAProxy change reaches the directors: lowest priority first, the master
    (the VIPs' holder when it is healthy) last, so a change HAProxy refuses stops on a standby.
    The lab reloads in this order too."""
    return list(reversed(topo.directors))


def add_haproxy_rolls(topo: Topology, builders: Mapping[str, NodeBuilder]) -> list[StepRef]:
    """60-haproxy-roll on every director, each waiting for the previous director's (haproxy_roll_order).
    Each carries the same files as its 40-haproxy, so a change runs both: 40 installs the files
    side by side (a first deployment waits for nothing more), 60 applies them in turn."""
    order = haproxy_roll_order(topo)
    names = " -> ".join(d.name for d in order)
    rolled: list[StepRef] = []
    for d in order:
        b = builders[d.name]
        install = b.plan.step("40-haproxy")
        step = b.step(
            HAPROXY_ROLL_STEP,
            "a HAProxy change applied one director at a time (" + names + ")",
            "steps/director/60-haproxy-roll.sh.j2",
            files=install.files,
            after=[install.ref, *rolled[-1:]],
            services=len(topo.cluster.haproxy.services),
            tls=_tls_context(topo),
            config=HAPROXY_CFG,
            reload_script=HAPROXY_RELOAD,
            order=names,
        )
        rolled.append(step.ref)
    return rolled


def _tls_context(topo: Topology) -> dict | None:
    """What haproxy.cfg and its step need for the TLS frontends (None: there are none)."""
    if not https.enabled(topo):
        return None
    h = topo.cluster.haproxy.https
    return {
        "cert_file": https.CERT_FILE,
        "cert_dir": https.CERT_DIR,
        "swap_script": https.SWAP_SCRIPT,
        "alpn": https.ALPN,
        "ciphers": https.CIPHERS,
        "ciphersuites": https.CIPHERSUITES,
        "redirect": h.redirect,
        "hsts_max_age_s": h.hsts_max_age_s,
        "stats_port": h.stats_port,
        "redirect_code": https.REDIRECT_CODE,
        "redirect_host": https.REDIRECT_HOST,
        "locations": {s.name: https.redirect_location(s.tls_port) for s in topo.cluster.haproxy.services if s.tls_port is not None},
        "fallback_locations": {
            s.name: https.redirect_location(s.tls_port, https.redirect_fallback_host(topo)) for s in topo.cluster.haproxy.services if s.tls_port is not None
        },
    }


def _add_dnsmasq(b: NodeBuilder, director: Director, is_master: bool) -> None:
    topo = b.topo
    c = topo.cluster
    files = []
    res = reservations(topo)
    if is_master:
        files.append(b.file(DNSMASQ_HOSTS, "director/dnsmasq.hosts.conf.j2", reservations=res))
        files.append(b.file("/etc/ethers", "director/ethers.j2", reservations=res))
    gateway = c.networks.external.gateway
    files.append(
        b.file(
            "/etc/dnsmasq.conf",
            "director/dnsmasq.conf.j2",
            director=director,
            interface="enp0s8",
            domain=c.domain,
            upstream=str(gateway) if gateway else None,
            dhcp=c.dhcp if is_master else None,
            router=c.vips.internal,
            hostsfile=DNSMASQ_HOSTS,
        )
    )
    b.step(
        "30-dnsmasq",
        "dnsmasq: DNS for the internal network" + (", DHCP reservations" if is_master else ""),
        "steps/director/30-dnsmasq.sh.j2",
        files=files,
        dhcp=is_master,
        reservations=len(res),
    )


def add_smoke_check(b: NodeBuilder, wait_for: list[StepRef]) -> Step:
    """The deployment's last step: every service answers through the external VIP."""
    c = b.topo.cluster
    return b.step(
        "90-smoke",
        "smoke check: every service answers through the VIP",
        "steps/director/90-smoke.sh.j2",
        after=wait_for,
        services=c.haproxy.services,
        vip=c.vips.external,
    )
