"""Cross-field rules of a stack config; every error is collected and names its key path.

Field-level checks (types, ranges, unknown keys, enum values) come from pydantic;
the rules here need several fields at once. Both end up as :class:`Problem` rows so
a user sees everything wrong in one run, before any resource is declared.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

from pydantic import ValidationError

from .model import SECRET_KEYS, StackConfig
from .render.serving import keepalived_order_problem

HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SSH_PORT = 22
MIN_RAID_DISKS = {0: 2, 1: 2, 5: 3, 6: 4, 10: 4}
# Ports a director's own daemons listen on (on every address), so HAProxy cannot bind them.
DIRECTOR_PORTS = {22: "sshd", 53: "dnsmasq (DNS)"}


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem of a stack config at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def count_phrase(n: int, noun: str) -> str:
    """`1 error`, `2 errors`."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _loc_to_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def parse(values: dict[str, Any]) -> tuple[StackConfig, list[Problem]]:
    """Parse stack values (keys without the project prefix, secrets removed).

    Returns the config and its warnings; raises ConfigError listing every error.
    """
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = _loc_to_path(err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
                if err["loc"] and err["loc"][0] in SECRET_KEYS and len(err["loc"]) == 1:
                    msg = "is a secret key: set it with `pulumi config set --secret`"
            problems.append(Problem(path, msg))
        raise ConfigError(problems) from None
    problems = list(check(config))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ConfigError(problems)
    return config, problems


# --------------------------------------------------------------------------- rules


def check(config: StackConfig) -> Iterator[Problem]:
    """Every cross-field rule; yields problems in key order."""
    yield from _check_networks(config)
    yield from _check_names(config)
    yield from _check_addresses(config)
    yield from _check_directors(config)
    yield from _check_backends(config)
    yield from _check_services(config)
    yield from _check_storage(config)
    yield from _check_platform(config)


def _check_networks(config: StackConfig) -> Iterator[Problem]:
    c = config.cluster
    nets = {"external": c.networks.external, "internal": c.networks.internal, "heartbeat": c.networks.heartbeat}
    names = list(nets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if nets[a].cidr.overlaps(nets[b].cidr):
                yield Problem(f"cluster.networks.{b}.cidr", f"{nets[b].cidr} overlaps the {a} network {nets[a].cidr}")
    for name, net in nets.items():
        if net.gateway is not None and net.gateway not in net.cidr:
            yield Problem(f"cluster.networks.{name}.gateway", f"{net.gateway} is not inside {net.cidr}")
    internal = c.networks.internal.cidr
    for key in ("start", "end"):
        addr = getattr(c.dhcp, key)
        if addr not in internal:
            yield Problem(f"cluster.dhcp.{key}", f"{addr} is not inside the internal network {internal}")
    if c.dhcp.start > c.dhcp.end:
        yield Problem("cluster.dhcp.end", f"{c.dhcp.end} comes before the range start {c.dhcp.start}")
    for key, network in (("external", "external"), ("internal", "internal"), ("heartbeat", "heartbeat")):
        vip = getattr(c.vips, key)
        if vip not in nets[network].cidr:
            yield Problem(f"cluster.vips.{key}", f"{vip} is not inside the {network} network {nets[network].cidr}")
    if c.dhcp.start <= c.vips.internal <= c.dhcp.end:
        yield Problem("cluster.vips.internal", f"{c.vips.internal} is inside the DHCP range {c.dhcp.start}-{c.dhcp.end}")


def _node_names(config: StackConfig) -> list[tuple[str, str]]:
    c = config.cluster
    out = [(f"cluster.directors[{i}].name", d.name) for i, d in enumerate(c.directors)]
    out.append(("cluster.nas.name", c.nas.name))
    out += [(f"cluster.gluster.servers[{i}].name", s.name) for i, s in enumerate(c.gluster.servers)]
    out += [(f"cluster.backends[{i}].name", b.name) for i, b in enumerate(c.backends)]
    return out


def _check_names(config: StackConfig) -> Iterator[Problem]:
    c = config.cluster
    nodes = _node_names(config)
    aliases = [(f"cluster.directors[{i}].aliases[{j}]", a) for i, d in enumerate(c.directors) for j, a in enumerate(d.aliases)]
    aliases += [(f"cluster.backends[{i}].aliases[{j}]", a) for i, b in enumerate(c.backends) for j, a in enumerate(b.aliases)]
    containers = [(f"cluster.backends[{i}].containers[{j}].name", k.name) for i, b in enumerate(c.backends) for j, k in enumerate(b.containers)]
    all_names = nodes + aliases + containers
    for path, name in all_names:
        if not HOSTNAME.match(name):
            yield Problem(path, f"{name!r} is not a valid hostname (lowercase letters, digits and '-', 1-63 characters)")
    yield from _duplicates(all_names, "name")


def _duplicates(items: list[tuple[str, Any]], what: str) -> Iterator[Problem]:
    """Report every later occurrence of a value already used earlier."""
    seen: dict[Any, str] = {}
    for path, value in items:
        if value in seen:
            yield Problem(path, f"{what} {value} is already used by {seen[value]}")
        else:
            seen[value] = path


def _check_addresses(config: StackConfig) -> Iterator[Problem]:
    c = config.cluster
    nets = c.networks
    addrs: list[tuple[str, ipaddress.IPv4Address, str]] = []
    for i, d in enumerate(c.directors):
        for key in ("external", "internal", "heartbeat"):
            addrs.append((f"cluster.directors[{i}].{key}", getattr(d, key), key))
    addrs.append(("cluster.nas.address", c.nas.address, "internal"))
    addrs += [(f"cluster.gluster.servers[{i}].address", s.address, "internal") for i, s in enumerate(c.gluster.servers)]
    addrs += [(f"cluster.backends[{i}].address", b.address, "internal") for i, b in enumerate(c.backends)]
    for path, addr, net in addrs:
        cidr = getattr(nets, net).cidr
        if addr not in cidr:
            yield Problem(path, f"{addr} is not inside the {net} network {cidr}")
        elif addr in (cidr.network_address, cidr.broadcast_address):
            yield Problem(path, f"{addr} is the network or broadcast address of {cidr}")
    taken = [(p, a) for p, a, _ in addrs]
    for key, vip in (("external", c.vips.external), ("internal", c.vips.internal), ("heartbeat", c.vips.heartbeat)):
        taken.append((f"cluster.vips.{key}", vip))
    for key in ("external", "internal", "heartbeat"):
        gw = getattr(nets, key).gateway
        if gw is not None:
            taken.append((f"cluster.networks.{key}.gateway", gw))
    yield from _duplicates(taken, "address")
    static = [(p, a) for p, a, net in addrs if net == "internal" and ".backends[" not in p and ".gluster." not in p]
    for path, addr in static:
        if c.dhcp.start <= addr <= c.dhcp.end:
            yield Problem(path, f"{addr} is a static address inside the DHCP range {c.dhcp.start}-{c.dhcp.end}")


def _check_directors(config: StackConfig) -> Iterator[Problem]:
    c = config.cluster
    if not 2 <= len(c.directors) <= 3:
        yield Problem("cluster.directors", f"needs 2 or 3 directors, found {len(c.directors)}")
    yield from _duplicates([(f"cluster.directors[{i}].priority", d.priority) for i, d in enumerate(c.directors)], "priority")
    ids = c.vrrp.router_ids
    for key in ("external", "internal", "heartbeat"):
        if key not in ids:
            yield Problem(f"cluster.vrrp.routerIds.{key}", "missing")
    for key, value in ids.items():
        if key not in ("external", "internal", "heartbeat"):
            yield Problem(f"cluster.vrrp.routerIds.{key}", "unknown network (external, internal or heartbeat)")
        elif not 1 <= value <= 255:
            yield Problem(f"cluster.vrrp.routerIds.{key}", f"{value} is outside 1-255")
    yield from _duplicates([(f"cluster.vrrp.routerIds.{k}", v) for k, v in ids.items()], "router id")
    if config.ha_stack.value == "keepalived" and c.vrrp.version == 2 and c.vrrp.advert_interval != int(c.vrrp.advert_interval):
        yield Problem("cluster.vrrp.advertInterval", "VRRP version 2 only supports whole seconds; use version 3 for sub-second adverts")
    if config.ha_stack.value == "keepalived" and len(c.directors) >= 2:
        clash = keepalived_order_problem(c.directors)
        if clash:
            yield Problem(f"cluster.directors[{clash[0]}].priority", clash[1])
    if config.ha_stack.value == "pacemaker":
        yield from _check_pacemaker(config)


SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/@+=,-]+$")  # goes into the crm shell file unquoted or in double quotes
FENCE_PARAM = re.compile(r"^[a-z][a-z0-9_]*$")
FORCED_COMMAND_PARAMS = {"use_sudo", "sudo_path", "cmd_prompt"}  # change what fence_virsh types or expects at the prompt
FENCE_PARAMS_SET = {"ip", "ipaddr", "username", "login", "password", "passwd", "password_script", "passwd_script", "identity_file", "plug", "port", "pcmk_host_list", "pcmk_host_map"}


def _check_pacemaker(config: StackConfig) -> Iterator[Problem]:
    """Quorum arbitrator and fencing of the Corosync + Pacemaker stack."""
    c = config.cluster
    pm = c.pacemaker
    base = "cluster.pacemaker"
    director_names = {d.name for d in c.directors}
    node_names = {n for _, n in _node_names(config)}
    if pm.qnetd_host is None:
        yield Problem(f"{base}.qnetdHost", "no quorum device: the last director standing cannot keep the VIPs (a majority of the directors is needed)", "warning")
    elif pm.qnetd_host in director_names:
        yield Problem(f"{base}.qnetdHost", f"{pm.qnetd_host} is a director; the quorum arbitrator must be another node")
    elif pm.qnetd_host not in node_names:
        yield Problem(f"{base}.qnetdHost", f"{pm.qnetd_host} is not a node of the cluster")
    if pm.consensus_ms is not None and pm.consensus_ms < pm.token_ms * 6 // 5:
        yield Problem(f"{base}.consensusMs", f"{pm.consensus_ms} is below 1.2 x tokenMs ({pm.token_ms * 6 // 5}), corosync's documented minimum: a slow but live director could be left out of a new membership and fenced")
    if pm.knet_ping_timeout < pm.token_ms + pm.consensus:
        yield Problem(f"{base}.knetPingTimeoutMs", f"{pm.knet_ping_timeout} is below tokenMs + consensus ({pm.token_ms + pm.consensus}): a latency spike would take the only heartbeat link down before the token could tell a slow director from a lost one", "warning")
    if pm.qnetd_host is not None and pm.qdevice_sync_timeout_ms < pm.qdevice_handover_ms:
        yield Problem(f"{base}.qdeviceSyncTimeoutMs", f"{pm.qdevice_sync_timeout_ms} is shorter than qnetd may take to hand a lost director's votes over ({pm.qdevice_handover_ms} ms with qdeviceTimeoutMs {pm.qdevice_timeout_ms}): the survivors would count themselves without quorum first")
    if pm.fencing == "none":
        yield Problem(f"{base}.fencing", "fencing is off: a partitioned director can keep the VIPs and cause a split brain", "warning")
        return
    wanted = pm.NATIVE_FENCING[config.hypervisor.value]
    if pm.fencing not in ("auto", wanted):
        yield Problem(f"{base}.fencing", f"fence_{pm.fencing} cannot fence {config.hypervisor.value} VMs (use `auto` or `{wanted}`)")
    if pm.fence_host is None and c.networks.external.gateway is None:
        yield Problem(f"{base}.fenceHost", "not set and the external network has no gateway to default to")
    if pm.fence_host is not None and not SAFE_VALUE.match(pm.fence_host):
        yield Problem(f"{base}.fenceHost", f"{pm.fence_host!r} is not a host name or address")
    for name, vm in pm.fence_vms.items():
        if name not in director_names:
            yield Problem(f"{base}.fenceVms.{name}", "not a director")
        if not SAFE_VALUE.match(vm):
            yield Problem(f"{base}.fenceVms.{name}", f"{vm!r} is not a plain VM name")
    for key, value in pm.fence_params.items():
        if not FENCE_PARAM.match(key):
            yield Problem(f"{base}.fenceParams.{key}", "not a fence agent parameter name")
        elif key in FENCE_PARAMS_SET:
            yield Problem(f"{base}.fenceParams.{key}", "set from fenceHost, fenceUser, fenceVms, fenceLogin and its secret; not overridable")
        elif key in FORCED_COMMAND_PARAMS and pm.fence_login == "key" and pm.fence_agent(config.hypervisor) == "fence_virsh":
            yield Problem(f"{base}.fenceParams.{key}", "the fence key's forced command on the host runs virsh itself and refuses any other command line (no sudo, no other prompt); see docs/pacemaker.md")
        if any(ch in value for ch in '"\\\n'):
            yield Problem(f"{base}.fenceParams.{key}", "quotes, backslashes and newlines are not allowed")


def _check_backends(config: StackConfig) -> Iterator[Problem]:
    c = config.cluster
    if not c.backends:
        yield Problem("cluster.backends", "needs at least one Docker host")
    storages = {"nfs"} | {v.name for v in c.gluster.volumes}
    reserved = {c.haproxy.stats.port}
    for i, b in enumerate(c.backends):
        ports = [(f"cluster.backends[{i}].containers[{j}].port", k.port) for j, k in enumerate(b.containers)]
        yield from _duplicates(ports, "host port")
        for j, k in enumerate(b.containers):
            if k.docroot not in storages:
                yield Problem(f"cluster.backends[{i}].containers[{j}].docroot", f"unknown storage {k.docroot!r} (known: {', '.join(sorted(storages))})")
            if k.port in reserved or k.port == 22:
                yield Problem(f"cluster.backends[{i}].containers[{j}].port", f"port {k.port} is reserved")
        if b.containers and c.docker.cpus > b.resources.vcpus:
            yield Problem("cluster.docker.cpus", f"{c.docker.cpus_arg} CPUs per container, but Docker host {b.name} has {b.resources.vcpus} (cluster.backends[{i}].resources.vcpus); Docker refuses a limit above the host's CPUs")


def _check_services(config: StackConfig) -> Iterator[Problem]:
    from .topology import Topology

    c = config.cluster
    topo = Topology(config)
    storages = set(topo.storage_names())
    container_names = {k.name for _, k in topo.containers()}
    used_ports = [(f"cluster.haproxy.services[{i}].port", s.port) for i, s in enumerate(c.haproxy.services)]
    used_ports += [(f"cluster.haproxy.services[{i}].tlsPort", s.tls_port) for i, s in enumerate(c.haproxy.services) if s.tls_port is not None]
    used_ports.append(("cluster.haproxy.stats.port", c.haproxy.stats.port))
    if c.haproxy.https.stats_port is not None:
        used_ports.append(("cluster.haproxy.https.statsPort", c.haproxy.https.stats_port))
    used_ports.append(("cluster.haproxy.tuning.healthPort", c.haproxy.tuning.health_port))
    used_ports.append(("cluster.haproxy.stats.runtimeApiPort", c.haproxy.stats.runtime_api_port))
    for i, s in enumerate(c.haproxy.services):
        if s.tls_port is not None and s.mode.value != "http":
            yield Problem(f"cluster.haproxy.services[{i}].tlsPort", "TLS frontends are for HTTP-mode services (a TCP service passes bytes through)")
    for path, port in used_ports:
        if port in DIRECTOR_PORTS:
            yield Problem(path, f"port {port} is already used on the directors by {DIRECTOR_PORTS[port]}: pick another port")
    yield from _duplicates(used_ports, "port")
    yield from _duplicates([(f"cluster.haproxy.services[{i}].name", s.name) for i, s in enumerate(c.haproxy.services)], "service name")
    sections = [(f"cluster.haproxy.services[{i}].backend", topo.backend_section(s)) for i, s in enumerate(c.haproxy.services)]
    yield from _duplicates(sections, "backend section")
    if not c.haproxy.services:
        yield Problem("cluster.haproxy.services", "needs at least one service")
    stats = c.haproxy.stats
    if stats.metrics_uri and stats.metrics_uri == stats.uri.split("?", 1)[0]:
        yield Problem("cluster.haproxy.stats.metricsUri", f"{stats.metrics_uri} is the stats page's own path ({stats.uri}): the exporter would hide the page; pick another path")
    for i, s in enumerate(c.haproxy.services):
        base = f"cluster.haproxy.services[{i}]"
        if s.storage not in storages:
            yield Problem(f"{base}.storage", f"unknown storage {s.storage!r} (known: {', '.join(sorted(storages))})")
        if s.persistence == "cookie" and s.mode.value != "http":
            yield Problem(f"{base}.persistence", "cookie persistence needs mode http")
        for j, name in enumerate(s.containers or []):
            if name not in container_names:
                yield Problem(f"{base}.containers[{j}]", f"no container named {name!r}")
        members = topo.service_members(s)
        if s.containers == []:
            yield Problem(f"{base}.containers", f"is an empty list, so service {s.name} has no server: name its containers, or remove the key to use every container on storage {s.storage!r}")
        elif not members:
            yield Problem(f"{base}.containers", f"service {s.name} has no container: {_why_no_container(config, s.storage)}")
        for _, k in members:
            if k.docroot != s.storage:
                yield Problem(f"{base}.containers", f"container {k.name} serves {k.docroot!r}, not the service's storage {s.storage!r}")
    yield from _check_maxconn(config, sum(len(topo.service_members(s)) for s in c.haproxy.services))
    yield from _check_image_pinned(c.docker.image)
    for j, entry in enumerate(c.admin_networks):
        if entry in ("host", "external", "internal", "heartbeat"):
            continue
        try:
            ipaddress.IPv4Network(entry, strict=False)
        except ValueError:
            yield Problem(f"cluster.adminNetworks[{j}]", f"{entry!r} is neither `host`, a network name (external, internal, heartbeat) nor an IPv4 address or CIDR")
    for j, net in enumerate(c.haproxy.stats.admin_networks):
        if net not in ("external", "internal", "heartbeat"):
            yield Problem(f"cluster.haproxy.stats.adminNetworks[{j}]", f"unknown network {net!r}")
    yield from _check_node_metrics(config)


def _check_node_metrics(config: StackConfig) -> Iterator[Problem]:
    """Scrapers in the adminNetworks grammar (plus `directors`); the port free on every node it listens on."""
    c = config.cluster
    m = c.node_metrics
    for j, entry in enumerate(m.scrapers):
        if entry in ("host", "directors", "external", "internal", "heartbeat"):
            continue
        try:
            ipaddress.IPv4Network(entry, strict=False)
        except ValueError:
            yield Problem(f"cluster.nodeMetrics.scrapers[{j}]", f"{entry!r} is neither `host`, `directors`, a network name (external, internal, heartbeat) nor an IPv4 address or CIDR")
    if not m.enabled:
        return
    taken = {22: "SSH", 2049: "NFS", 24007: "glusterd", 24008: "glusterd", c.haproxy.stats.port: "the HAProxy stats listener", c.haproxy.tuning.health_port: "HAProxy's health frontend"}
    taken.update({s.port: f"HAProxy service {s.name}" for s in c.haproxy.services})
    taken.update({k.port: f"container {k.name}" for b in c.backends for k in b.containers})
    if m.port in taken:
        yield Problem("cluster.nodeMetrics.port", f"{m.port} is already {taken[m.port]}'s port")
    elif c.gluster.servers and 49152 <= m.port <= 60999:
        yield Problem("cluster.nodeMetrics.port", f"{m.port} is in Gluster's brick port range 49152-60999")


def _check_maxconn(config: StackConfig, server_lines: int) -> Iterator[Problem]:
    """A warning, not an error: with fewer global connections than server slots, HAProxy stops
    accepting before every server is busy (clients wait in the kernel's accept queue instead of
    HAProxy's), which is safe but leaves servers idle. A scaled-out cluster meets it first."""
    t = config.cluster.haproxy.tuning
    if t.server_maxconn * server_lines > t.maxconn:
        yield Problem(
            "cluster.haproxy.tuning.maxconn",
            f"{t.maxconn} is less than serverMaxconn {t.server_maxconn} x {server_lines} server lines = {t.server_maxconn * server_lines}: the global limit is reached before the servers are full; raise it or lower cluster.haproxy.tuning.serverMaxconn",
            "warning",
        )


def _check_image_pinned(image: str) -> Iterator[Problem]:
    """A warning, not an error: a tag with no version in it (`php:apache`, `latest`) is a valid
    reference, but Docker Hub moves it with every rebuild, so two Docker hosts pulling on different
    days run different images, unnoticed. The model already refuses a reference with no tag at all."""
    if "@" in image:
        return
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if tag and not any(ch.isdigit() for ch in tag):
        yield Problem("cluster.docker.image", f"{image!r} names a floating tag ({tag!r}, no version in it): a rebuild upstream changes what runs; pin a version tag such as `php:8.2.29-apache-bookworm` or a digest (`@sha256:...`)", "warning")


def _why_no_container(config: StackConfig, storage: str) -> str:
    """Name the cause: Docker hosts given an explicitly empty container list, or no container on the storage."""
    emptied = [f"cluster.backends[{i}].containers" for i, b in enumerate(config.cluster.backends) if "containers" in b.model_fields_set and not b.containers]
    if emptied and not any(k.docroot == storage for b in config.cluster.backends for k in b.containers):
        return f"{' and '.join(emptied)} {'is an empty list' if len(emptied) == 1 else 'are empty lists'} and no other container uses storage {storage!r}"
    return f"none uses storage {storage!r}"


def _check_storage(config: StackConfig) -> Iterator[Problem]:
    c = config.cluster
    raid = c.nas.raid
    need = MIN_RAID_DISKS[raid.level]
    if raid.disks < need:
        yield Problem("cluster.nas.raid.disks", f"RAID{raid.level} needs at least {need} disks, got {raid.disks}")
    if raid.level == 10 and raid.disks % 2:
        yield Problem("cluster.nas.raid.disks", "RAID10 needs an even number of disks")
    if raid.level == 0 and raid.spare_disks:
        yield Problem("cluster.nas.raid.spareDisks", f"RAID0 cannot use spare disks (nothing to rebuild onto them), got {raid.spare_disks}")
    if len(c.nas.bond.interfaces) < 2:
        yield Problem("cluster.nas.bond.interfaces", "a bond needs at least 2 NICs")
    yield from _duplicates([(f"cluster.nas.bond.interfaces[{i}]", n) for i, n in enumerate(c.nas.bond.interfaces)], "interface")
    g = c.gluster
    servers = len(g.servers)
    if g.volumes and servers == 0:
        yield Problem("cluster.gluster.servers", "volumes are defined but there is no Gluster server")
    yield from _duplicates([(f"cluster.gluster.volumes[{i}].name", v.name) for i, v in enumerate(g.volumes)], "volume name")
    yield from _duplicates([(f"cluster.gluster.volumes[{i}].mountpoint", v.mountpoint) for i, v in enumerate(g.volumes)], "mountpoint")
    yield from _duplicates([(f"cluster.gluster.volumes[{i}].brick", v.brick) for i, v in enumerate(g.volumes)], "brick")
    for i, v in enumerate(g.volumes):
        if v.name == "nfs":
            yield Problem(f"cluster.gluster.volumes[{i}].name", "'nfs' is the name of the NAS storage")
        if v.brick > g.bricks_per_server:
            yield Problem(f"cluster.gluster.volumes[{i}].brick", f"brick {v.brick} does not exist (bricksPerServer is {g.bricks_per_server})")
        if servers and servers % v.replica:
            yield Problem(f"cluster.gluster.volumes[{i}].replica", f"{servers} bricks (one per server) is not a multiple of replica {v.replica}")
        if v.mountpoint == c.docker.nfs_mountpoint:
            yield Problem(f"cluster.gluster.volumes[{i}].mountpoint", "is the NFS mountpoint")


def _check_platform(config: StackConfig) -> Iterator[Problem]:
    lv = config.libvirt
    node_names = {n for _, n in _node_names(config)}
    for node, host in lv.placement.items():
        if node not in node_names:
            yield Problem(f"libvirt.placement.{node}", "no node of that name")
        if host not in lv.hosts:
            yield Problem(f"libvirt.placement.{node}", f"unknown host {host!r} (define it under libvirt.hosts)")
    if config.hypervisor.value == "libvirt":
        yield from _check_libvirt_uris(config)
        yield from _check_libvirt_host_address(config)
    else:
        yield from _check_virtualbox(config)


def _check_libvirt_uris(config: StackConfig) -> Iterator[Problem]:
    """SSH URIs as terraform-provider-libvirt v0.8.1 dials them (libvirt/uri/ssh.go, `dialHost`).

    It dials `u.Host` - host *and* port - as the host name (`net.JoinHostPort(u.Host, port)`
    gives `[hv1:2222]:2222`), so a URI with any port fails and only port 22 is reachable; and it logs in as
    `u.User.Username()`, an empty name when the URI has no `user@` (its `~/.ssh/config` `User`
    lookup only applies on an error), while Pulumi's own hop to the nodes needs a user too.
    """
    uris = [("libvirt.uri", config.libvirt.uri)] + [(f"libvirt.hosts.{name}", uri) for name, uri in sorted(config.libvirt.hosts.items())]
    for key, uri in uris:
        parsed = urlsplit(uri)
        if not parsed.scheme.endswith("+ssh"):
            continue
        if not parsed.username:
            yield Problem(key, f"{uri} names no user: the libvirt provider would log in with an empty user name; write {parsed.scheme}://USER@{parsed.netloc or 'HOST'}{parsed.path}")
        host_port = parsed.netloc.rsplit("@", 1)[-1]
        if ":" in (host_port.rsplit("]", 1)[-1] if host_port.startswith("[") else host_port):
            yield Problem(key, f"{uri} names a port: the libvirt provider (v0.8.1) dials 'host:port' as the host name, so no URI with a port connects (not even :22); drop it, the provider always uses port {SSH_PORT}")


def _check_libvirt_host_address(config: StackConfig) -> Iterator[Problem]:
    """The host's internal address must be free: no node, VIP, gateway or DHCP lease may use it."""
    from .topology import Topology

    c = config.cluster
    topo = Topology(config)
    address = topo.libvirt_host_address
    internal = c.networks.internal.cidr
    key = "libvirt.hostAddress"
    if address not in internal:
        yield Problem(key, f"{address} is not inside the internal network {internal}")
        return
    taken = {n.internal_address: n.name for n in topo.nodes}
    taken[c.vips.internal] = "the internal VIP"
    if c.networks.internal.gateway:
        taken[c.networks.internal.gateway] = "the internal gateway"
    if address in taken:
        yield Problem(key, f"{address} is already used by {taken[address]}")
    if c.dhcp.start <= address <= c.dhcp.end:
        yield Problem(key, f"{address} is inside the DHCP range {c.dhcp.start}-{c.dhcp.end}")
    if address in (internal.network_address, internal.broadcast_address):
        yield Problem(key, f"{address} is not a usable host address of {internal}")


def _check_virtualbox(config: StackConfig) -> Iterator[Problem]:
    """Port forwards must name a listening port; a NAT network routes through its first address."""
    from .topology import Topology

    vb = config.virtualbox
    yield from _duplicates([(f"virtualbox.portForwards[{i}].hostPort", f.host_port) for i, f in enumerate(vb.port_forwards)], "host port")
    ports = {s.port for s in config.cluster.haproxy.services} | {config.cluster.haproxy.stats.port}
    for i, f in enumerate(vb.port_forwards):
        if f.guest_port not in ports:
            yield Problem(f"virtualbox.portForwards[{i}].guestPort", f"no HAProxy service or stats page listens on {f.guest_port}")
    ext = config.cluster.networks.external
    first = ext.cidr.network_address + 1
    if ext.gateway is not None and ext.gateway != first:
        yield Problem("cluster.networks.external.gateway", f"a VirtualBox NAT network always routes through its first address ({first}), not {ext.gateway}")
    forwards = {f.host_port: f.name for f in vb.port_forwards}
    for node, port in Topology(config).virtualbox_ssh_ports.items():
        if port > 65535:
            yield Problem("virtualbox.sshBasePort", f"{node}'s SSH forward would use port {port}, above 65535")
        if port in forwards:
            yield Problem("virtualbox.sshBasePort", f"{node}'s SSH forward (port {port}) collides with the port forward {forwards[port]}")
