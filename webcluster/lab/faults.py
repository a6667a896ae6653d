"""Faults on the running lab, each undoable: what a person breaking the cluster on purpose does
(the seed's chapter 4), by the model's names, and what the scenarios do through the same calls.

Each verb of `lab` (stop/start a container, kill/start a daemon, cut/plug a node, power a node
off/on, degrade a network) is a few lines over the lab's primitives: network.set_links (the one
way to cut a link), power.power_off/power_on (the one way to power a node off and on: the fence
switch's), processes.stop/start, and Pacemaker's own calls for what it manages. Every fault in
force is recorded under the words of the command that made it (state.record_fault), so
`lab status` shows it, `lab watch` lists it and `lab heal` undoes them all.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..netns import CommandError
from . import apache, latency, network, pacemaker, power, processes
from .lifecycle import boot_mounts
from .state import CLIENT, NETWORKS, faults_in_force, record_fault

if TYPE_CHECKING:
    from .context import LabContext

DAEMONS = ("haproxy", "keepalived", "corosync", "pacemaker")  # what `lab kill` knows, where the lab runs it


class UnknownName(ValueError):
    """A name the model does not have; the message lists those it has."""


class FaultError(RuntimeError):
    """A verb that cannot act now, with what to do first."""


def known(kind: str, name: str, names: Sequence[str], where: str = "") -> str:
    """name, if it is one of names; else UnknownName listing them (`where`: e.g. " on cluster1")."""
    if name not in names:
        raise UnknownName(f"unknown {kind} {name!r}{where}; known{' there' if where else ''}: {', '.join(names) or 'none'}")
    return name


# --------------------------------------------------------------------------- the model's names


def nodes(lab: "LabContext") -> list[str]:
    return [n.name for n in lab.topo.nodes]


def containers(lab: "LabContext") -> dict[str, str]:
    """Container -> its Docker host."""
    return {c.name: b.name for b, c in lab.topo.containers()}


def daemons(lab: "LabContext", node: str) -> list[str]:
    """Those of DAEMONS that run on the node in this lab (Pacemaker's HAProxy on every director)."""
    directors = {d.name for d in lab.directors}
    return [d for d in DAEMONS if lab.state.find(node, d) or (lab.managed(d) and node in directors)]


def networks(lab: "LabContext", node: str) -> list[str]:
    """The networks the node has a NIC on, in NIC order."""
    return list(dict.fromkeys(nic.network for nic in lab.topo.node(node).nics))


# --------------------------------------------------------------------------- processes


def _process_key(node: str, role: str) -> str:
    container = apache.container_of(role)
    return f"stop {container}" if container else f"kill {role} {node}"


def stop_process(lab: "LabContext", node: str, role: str, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
    """Signal a daemon (SIGKILL: a crash; a container's stop signal: `docker stop`), and wait, bounded."""
    record_fault(_process_key(node, role), {"kind": "process", "node": node, "role": role, "signal": signal.Signals(sig).name})
    if lab.managed(role):
        pacemaker.kill_managed(node, role, sig)
    else:
        processes.stop(lab.state, node, role, sig=sig, timeout=timeout)


def start_process(lab: "LabContext", node: str, role: str) -> None:
    """Start it again: the lab runs it with its recorded command line, or Pacemaker, once its failures are cleared."""
    if node in power.powered_off():
        last = [e for e in power.journal() if e["node"] == node][-1:]
        raise FaultError(f"{node} is off: `lab power on {node}` first (powered off: {last[0] if last else 'no record'})")
    if lab.managed(role):
        pacemaker.clear_failures(node, role)
    else:
        proc = lab.state.find(node, role)
        if proc is None:
            raise FaultError(f"the lab never started {role} on {node}")
        processes.start(lab.state, node, role, proc.argv)
    record_fault(_process_key(node, role), None)


def stop(lab: "LabContext", container: str) -> None:
    """`docker stop`: Apache's graceful stop, killed after the grace time."""
    host = containers(lab)[known("container", container, list(containers(lab)))]
    stop_process(lab, host, apache.role(container), apache.STOP_SIGNAL, apache.STOP_TIMEOUT)


def start(lab: "LabContext", container: str) -> None:
    host = containers(lab)[known("container", container, list(containers(lab)))]
    start_process(lab, host, apache.role(container))


def check_daemon(lab: "LabContext", daemon: str, node: str) -> None:
    known("node", node, nodes(lab))
    known("daemon", daemon, daemons(lab, node), f" on {node}")


def kill(lab: "LabContext", daemon: str, node: str) -> None:
    check_daemon(lab, daemon, node)
    stop_process(lab, node, daemon, signal.SIGKILL)


def start_daemon(lab: "LabContext", daemon: str, node: str) -> None:
    check_daemon(lab, daemon, node)
    start_process(lab, node, daemon)


# --------------------------------------------------------------------------- cables


def cut_networks(lab: "LabContext", node: str, link: Optional[str]) -> list[str]:
    known("node", node, nodes(lab))
    return [known("network", link, networks(lab, node), f" on {node}")] if link else networks(lab, node)


def cut(lab: "LabContext", node: str, link: Optional[str] = None) -> None:
    """Unplug the node's cables on one network (every network by default)."""
    nets = cut_networks(lab, node, link)
    for net in nets:
        record_fault(f"cut {node} {net}", {"kind": "cut", "node": node, "network": net})
    network.set_links(lab.state, node, up=False, links=network.node_links(lab.state, lab.topo, node, nets))


def plug(lab: "LabContext", node: str, link: Optional[str] = None) -> None:
    """Plug them back; a node that is off gets its cables at power-on."""
    nets = cut_networks(lab, node, link)
    if node not in power.powered_off():
        network.set_links(lab.state, node, up=True, links=network.node_links(lab.state, lab.topo, node, nets))
    for net in nets:
        record_fault(f"cut {node} {net}", None)


# --------------------------------------------------------------------------- power


def power_off(lab: "LabContext", node: str) -> None:
    """What the fence switch does: cables out, every process of the node killed, its VIPs gone."""
    known("node", node, nodes(lab))
    record_fault(f"power off {node}", {"kind": "power", "node": node})
    power.power_off(node, lab.vips, cause="lab power off")


def power_on(lab: "LabContext", node: str) -> None:
    """Cables in (but those `lab cut` took out), its daemons started; a Docker host mounts its docroots again."""
    known("node", node, nodes(lab))
    still_cut = [f["network"] for f in faults_in_force().values() if f["kind"] == "cut" and f["node"] == node]
    links = [link for link in network.node_links(lab.state, lab.topo, node) if link not in network.node_links(lab.state, lab.topo, node, still_cut)]
    if lab.pacemaker and node in {d.name for d in lab.directors}:
        pacemaker.power_on(lab.state, node, links=links)
    else:
        power.power_on(lab.state, node, boot=lambda: boot_mounts(lab.state, node), links=links)
    record_fault(f"power off {node}", None)


# --------------------------------------------------------------------------- a network's quality


def _nics_on(lab: "LabContext", net: str) -> list[tuple[str, str]]:
    """(node, the node's own NIC name) of every lab namespace with a NIC on the network, the client's too."""
    members = [(node, nic.name) for node in nodes(lab) for nic in lab.topo.node(node).nics if nic.network == net]
    return members + ([(CLIENT, network.CLIENT_NIC)] if net == "external" else [])


def degrade(lab: "LabContext", net: str, delay_ms: float = 0, loss_pct: float = 0) -> None:
    """Delay and lose packets on a whole network, or clear that (both 0). tc netem on every NIC's
    cable where the kernel has netem; else (this machine's kernel has no sch_netem) netfilter in
    each node on it: a random-drop rule and an NFQUEUE delayer on what the NIC receives, the same
    once per hop."""
    known("network", net, list(NETWORKS))
    links = [link for node in [*nodes(lab), CLIENT] for link in network.node_links(lab.state, lab.topo, node, [net])]
    how = "netem"
    try:
        network.set_netem(links, delay_ms, loss_pct)
    except CommandError as exc:
        if "qdisc kind is unknown" not in str(exc):
            raise
        how = "netfilter"
    if how == "netfilter" or not (delay_ms or loss_pct):
        for node, nic in _nics_on(lab, net):
            latency.set_degraded(node, nic, net, delay_ms if how == "netfilter" else 0, loss_pct if how == "netfilter" else 0)
    fault = {"kind": "degrade", "network": net, "delay_ms": delay_ms, "loss_pct": loss_pct, "how": how} if delay_ms or loss_pct else None
    record_fault(f"degrade {net}", fault)


# --------------------------------------------------------------------------- all at once


def node_states(lab: "LabContext") -> dict[str, str]:
    """Each node: `off`, `cut` (every cable out), `cut NETWORK,...` (some) or `up`."""
    off, down = power.powered_off(), network.links_down()
    states = {}
    for node in nodes(lab):
        nets = [net for net in networks(lab, node) if set(network.node_links(lab.state, lab.topo, node, [net])) & down]
        states[node] = "off" if node in off else "up" if not nets else "cut" if nets == networks(lab, node) else "cut " + ",".join(nets)
    return states


UNDO: dict[str, Callable[["LabContext", dict[str, Any]], None]] = {
    "process": lambda lab, f: start_process(lab, f["node"], f["role"]),
    "cut": lambda lab, f: plug(lab, f["node"], f["network"]),
    "power": lambda lab, f: power_on(lab, f["node"]),
    "degrade": lambda lab, f: degrade(lab, f["network"]),
}


def heal(lab: "LabContext") -> list[str]:
    """Undo every fault in force: first every node that is off is powered on (by `lab power off` or
    fenced by the HA stack), then the other faults, newest first. Returns what it did."""
    done = []
    for node in [n for n in nodes(lab) if n in power.powered_off()]:
        plug(lab, node)  # its cables go in as it boots (Pacemaker's director waits to be back in the cluster)
        power_on(lab, node)
        done.append(f"power on {node}")
    for key, fault in reversed(list(faults_in_force().items())):
        UNDO[fault["kind"]](lab, fault)
        done.append(f"undo {key}")
    return done
