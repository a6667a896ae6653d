"""`lab status`: nodes, who holds the VIPs, what HAProxy thinks of every server."""

from __future__ import annotations

from typing import Any

from ..stackfile import load_stack_file
from ..topology import Topology
from . import faults, network, processes, probe
from .state import CLIENT, HYPERVISOR, LabState, faults_in_force, lab_secrets, netns_name


def collect(state: LabState) -> dict[str, Any]:
    from .context import LabContext

    lab = LabContext(state)
    topo = lab.topo
    c = topo.cluster
    states = faults.node_states(lab)
    nodes = {n.name: {"netns": netns_name(n.name), "role": n.role, "state": states[n.name], "addresses": network.addresses(n.name)} for n in topo.nodes}
    vips = {}
    for vip in (c.vips.external, c.vips.internal, c.vips.heartbeat):
        holders = [d.name for d in topo.directors if network.holds(d.name, str(vip))]
        vips[str(vip)] = holders[0] if len(holders) == 1 else (holders or None)
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
    return {
        "stack": state.stack,
        "complete": state.complete,
        "client_netns": netns_name(CLIENT),
        "client_address": state.client_address,
        "nodes": nodes,
        "vips": vips,
        "stats_description": description,
        "haproxy_servers": servers,
        "daemons": daemons,
        "faults": faults_in_force(),
    }


def format_status(s: dict[str, Any]) -> str:
    lines = [f"lab of stack {s['stack']} ({'up' if s['complete'] else 'incomplete'}); client {s['client_netns']} {s['client_address']}"]
    for name, n in s["nodes"].items():
        lines.append(f"  {name:<10} {n['role']:<9} {n['state']:<5} {n['netns']:<14} {' '.join(n['addresses'])}")
    for vip, holder in s["vips"].items():
        lines.append(f"  VIP {vip:<15} held by {holder}")
    lines.append(f"  stats page says: {s['stats_description']}")
    for backend, servers in s["haproxy_servers"].items():
        lines.append(f"  {backend:<15} " + " ".join(f"{k}:{v}" for k, v in servers.items()))
    lines.append("  faults in force: " + ("; ".join(s["faults"]) or "none"))
    dead = [k for k, ok in s["daemons"].items() if not ok]
    lines.append(f"  daemons: {len(s['daemons']) - len(dead)} running" + (f", not running: {', '.join(dead)}" if dead else ""))
    return "\n".join(lines)
