"""`lab status`: nodes, who holds the VIPs (and how many: exactly 1, else flagged), what every
director's HAProxy thinks of every server (UP, DOWN, DRAIN, MAINT: each director keeps its own
runtime state, so a drain during a rolling change shows per director)."""

from __future__ import annotations

from typing import Any

from ..stackfile import load_stack_file
from ..topology import Topology
from ..render.pacemaker import vip_resources
from . import faults, network, node_metrics, pacemaker, processes, probe
from .state import CLIENT, HYPERVISOR, LabState, faults_in_force, lab_secrets, netns_name


def collect(state: LabState) -> dict[str, Any]:
    from .context import LabContext

    lab = LabContext(state)
    topo = lab.topo
    c = topo.cluster
    states = faults.node_states(lab)
    nodes = {n.name: {"netns": netns_name(n.name), "role": n.role, "state": states[n.name], "addresses": network.addresses(n.name)} for n in topo.nodes}
    vips = {}
    vip_holders = {}
    # a director that is off answers no scrape: what its textfile directory still says does not count
    metric = {d.name: node_metrics.held_files(d.name) for d in topo.directors if states[d.name] != "off"} if c.node_metrics.enabled else {}
    for vip in stack_vips(topo):
        holders = [d.name for d in topo.directors if network.holds(d.name, str(vip))]
        vips[str(vip)] = holders[0] if len(holders) == 1 else (holders or None)
        vip_holders[str(vip)] = vip_count(holders, {d: m[str(vip)] for d, m in metric.items() if str(vip) in m})
    daemons = {f"{p.node}/{p.role}": processes.alive(state, p.node, p.role) for p in state.processes}
    servers: dict[str, dict[str, str]] = {}
    description = None
    auth = (c.haproxy.stats.user, lab_secrets()["statsPassword"])
    try:
        rows, description = probe.stats_csv(str(c.vips.external), c.haproxy.stats.port, c.haproxy.stats.uri, auth)
        for r in rows:
            servers.setdefault(r.backend, {})[r.server] = r.status
    except RuntimeError as exc:
        description = f"stats page unreachable: {exc}"
    by_director = {d.name: director_servers(str(d.internal), c.haproxy.stats.port, c.haproxy.stats.uri, auth) for d in topo.directors}
    return {
        "stack": state.stack,
        "complete": state.complete,
        "client_netns": netns_name(CLIENT),
        "client_address": state.client_address,
        "nodes": nodes,
        "vips": vips,
        "vip_holders": vip_holders,
        "stats_description": description,
        "haproxy_servers": servers,
        "haproxy_servers_by_director": by_director,
        "daemons": daemons,
        "faults": faults_in_force(),
    }


def stack_vips(topo: Topology) -> list[str]:
    """The VIPs the HA stack moves, each of which must have exactly one holder: keepalived's three
    (VI_1 to VI_3), Pacemaker's VIP resources (it has no heartbeat VIP: corosync's ring needs none)."""
    if pacemaker.is_pacemaker(topo):
        return [v.ip for v in vip_resources(topo)]
    c = topo.cluster
    return [str(v) for v in (c.vips.external, c.vips.internal, c.vips.heartbeat)]


def vip_count(holders: list[str], metric: dict[str, int]) -> dict[str, Any]:
    """A VIP's holders as the NICs say, their number (anything but 1 is a fault), and what the
    directors' hawc_vip_held says (director -> 0|1, as the notify hook last wrote it) and its sum."""
    return {"holders": holders, "count": len(holders), "ok": len(holders) == 1, "metric": metric, "metric_sum": sum(metric.values()) if metric else None}


def director_servers(address: str, port: int, uri: str, auth: tuple[str, str]) -> dict[str, dict[str, str]] | str:
    """backend -> server -> status (UP, DOWN, DRAIN, MAINT, ...) from one director's own stats listener, or why not."""
    try:
        rows, _description = probe.stats_csv(address, port, uri, auth)
    except RuntimeError as exc:
        return f"unreachable: {exc}"
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r.backend, {})[r.server] = r.status
    return out


def format_vip(vip: str, h: dict[str, Any]) -> str:
    holders = ", ".join(h["holders"]) or "nobody"
    flag = "" if h["ok"] else f"  !! {h['count']} holders, must be exactly 1"
    metric = "" if h["metric_sum"] is None else f"; hawc_vip_held sum {h['metric_sum']}" + ("" if h["metric_sum"] == 1 else " !!")
    return f"  VIP {vip:<15} held by {holders} ({h['count']} holder{'s' if h['count'] != 1 else ''}{metric}){flag}"


def format_status(s: dict[str, Any]) -> str:
    lines = [f"lab of stack {s['stack']} ({'up' if s['complete'] else 'incomplete'}); client {s['client_netns']} {s['client_address']}"]
    for name, n in s["nodes"].items():
        lines.append(f"  {name:<10} {n['role']:<9} {n['state']:<5} {n['netns']:<14} {' '.join(n['addresses'])}")
    for vip, h in s["vip_holders"].items():
        lines.append(format_vip(vip, h))
    lines.append(f"  stats page says: {s['stats_description']}")
    for backend, servers in s["haproxy_servers"].items():
        lines.append(f"  {backend:<15} " + " ".join(f"{k}:{v}" for k, v in servers.items()))
    for director, backends in s["haproxy_servers_by_director"].items():
        if isinstance(backends, str):
            lines.append(f"  {director}'s HAProxy: {backends}")
            continue
        states = [st for servers in backends.values() for st in servers.values()]
        counts = ", ".join(f"{n} {st}" for st, n in sorted({st: states.count(st) for st in states}.items()))
        lines.append(f"  {director}'s HAProxy: {counts or 'no servers'}")
        for backend, servers in backends.items():
            odd = [f"{k}:{v}" for k, v in servers.items() if v != "UP"]
            if odd:
                lines.append(f"    {backend:<15} " + " ".join(odd))
    lines.append("  faults in force: " + ("; ".join(s["faults"]) or "none"))
    dead = [k for k, ok in s["daemons"].items() if not ok]
    lines.append(f"  daemons: {len(s['daemons']) - len(dead)} running" + (f", not running: {', '.join(dead)}" if dead else ""))
    return "\n".join(lines)
