"""haStack: pacemaker in the namespace lab: real corosync-qnetd, corosync, corosync-qdevice and Pacemaker.

The daemons run on the rendered files, started by PID (processes.start) where the rendered
steps would use systemd; each node's /run, /dev/shm, /var/lib/{pacemaker,corosync} and
/etc overlay are its own (webcluster.sandbox), so `nsenter` into a director finds its
cluster exactly as on a VM. What the lab runs of the rendered steps:

- the quorum device's TLS databases: the certificate functions of 51-qdevice and 80-qnetd,
  as the steps include them, run in the node (pki_script);
- corosync-qnetd with the options of the rendered systemd drop-in, as user coroqnetd;
- the CIB: the rendered 53-cib step, unchanged, on the rendered cib.crm with the lab's two
  substitutions (lab_cib, the one place where the lab's CIB differs);
- the rendered 55-quorum-device step, unchanged: each qdevice reached qnetd over TLS.

Not run: the steps' package installs and systemctl calls, and 52-pacemaker's hacluster
password (only pcsd and Hawk log in with it).

Fencing is on, as rendered: the fence devices use fence_lab, which really powers a lab
node off (webcluster.lab.power). A fenced director stays off until power_on, the lab's
"power button" (LabContext.restore / revive).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Callable, Optional, Sequence


from ..render import pacemaker as rpm
from ..render.node_metrics import PACEMAKER_DROPIN
from ..render.plan import ClusterPlan, RenderedFile
from ..sandbox import pid_alive
from ..topology import Topology
from . import fence_lab, power, processes, variants
from .state import LabState, sandbox

Progress = Callable[[str], None]
RunStep = Callable[..., str]

QDEVICE_STEP, CIB_STEP, QUORUM_DEVICE_STEP = "51-qdevice", "53-cib", "55-quorum-device"
HAPROXY_PIDFILE = "/run/haproxy.pid"
# HAProxy in the foreground (the master of master-worker); ocf:heartbeat:anything writes its pid file.
HAPROXY_ARGV = ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
# How long the scenarios wait for the VIPs to move. With the quorum device the two directors left
# are quorate only once qnetd gave them its votes, which it does when it drops the lost director's
# silent connection: at most 1.4 x quorum.device.timeout (Pacemaker.qdevice_handover_ms). Add
# corosync's token and consensus, fencing, and a powered-on director's start; 30 s leaves room for
# a stack file with corosync-qdevice's default timeout (10 s) on a loaded machine.
FAILOVER_TIMEOUT = 30.0
# Daemons Pacemaker starts and stops on the directors (not the lab): role -> the resource managing it.
MANAGED = {"haproxy": rpm.HAPROXY_CLONE}
# What the packages create under the directories a node has privately (owners and modes copied from the host's).
PACKAGE_DIRS = ("/var/lib/pacemaker", "/var/log/pacemaker", "/var/lib/corosync", "/var/log/corosync")
PRIMITIVE = re.compile(r"^primitive (?P<id>\S+) (?P<agent>\S+) \\$")


def is_pacemaker(topo: Topology) -> bool:
    return topo.config.ha_stack.value == "pacemaker"


class PacemakerLabError(RuntimeError):
    pass


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.2,
             gave_up: Callable[[], Optional[str]] = lambda: None, detail: Callable[[], str] = lambda: "") -> None:
    """Poll until predicate() holds; fail at once when gave_up() names a reason (what waited for
    cannot come any more), else after timeout. detail() is added to the error: what the node's
    own log says, so a failure in CI explains itself."""
    deadline = time.monotonic() + timeout
    while not predicate():
        reason = gave_up()
        if reason or time.monotonic() > deadline:
            why = reason or f"timed out after {timeout:.0f} s"
            raise PacemakerLabError(f"{why} waiting for {what}{detail()}")
        time.sleep(interval)


# --------------------------------------------------------------------------- from the rendered plan


def pki_script(plan: ClusterPlan, node: str, call: str) -> str:
    """The quorum-device certificate functions exactly as the node's step (51-qdevice or 80-qnetd) includes them, then one call."""
    step = next(s for s in plan.nodes[node].steps if s.name in (QDEVICE_STEP, rpm.QNETD_STEP)).script
    start = step.index("# Quorum-device certificates")
    end = step.index("\napt_install", start)
    return "set -euo pipefail\n" + step[start:end] + f"\n{call}\n"


def qnetd_argv(plan: ClusterPlan, node: str) -> list[str]:
    """corosync-qnetd's command line from the rendered systemd drop-in (the options production runs with)."""
    lines = [line for line in str(plan.nodes[node].files[rpm.QNETD_DROPIN].content).splitlines() if line.startswith("ExecStart=/")]
    return [a for a in lines[-1].removeprefix("ExecStart=").split() if not a.startswith("$")]


def _lab_primitive(rsc: str, agent: str, fenced: dict[str, str]) -> Optional[tuple[str, str]]:
    """The lab's agent and parameters for a primitive the lab must replace, else None."""
    if rsc == rpm.HAPROXY and agent == "systemd:haproxy":
        binfile = shutil.which(HAPROXY_ARGV[0]) or f"/usr/sbin/{HAPROXY_ARGV[0]}"
        return "ocf:heartbeat:anything", f'binfile={binfile} cmdline_options="{" ".join(HAPROXY_ARGV[1:])}" pidfile={HAPROXY_PIDFILE}'
    if rsc in fenced:
        target = fenced[rsc]
        return f"stonith:{fence_lab.AGENT}", f'plug="{target}" pcmk_host_list="{target}" pcmk_reboot_action="off"'
    return None


def lab_cib(rendered: str, topo: Topology) -> str:
    """The rendered cib.crm with the lab's only two substitutions; every other line is loaded as rendered.

    - haproxy: `systemd:haproxy` needs systemd, which does not run here. ocf:heartbeat:anything
      runs `haproxy -db -f /etc/haproxy/haproxy.cfg` in the foreground (master-worker: the config says so), with the
      rendered operations (monitor interval, timeouts) and clone meta attributes.
    - fence-<director>: fence_virsh/fence_vbox log into a hypervisor the lab does not have;
      fence_lab powers the lab node off. Same names, host lists, monitor operation and -inf
      locations; `reboot` performed as `off` (the lab powers a fenced node on).
    """
    fenced = {d.name: d.target for d in rpm.fence_devices(topo)}
    out: list[str] = []
    swapped: set[str] = set()
    drop_params = False
    for line in rendered.splitlines():
        if drop_params and line.lstrip().startswith("params "):
            drop_params = False  # the rendered parameters belong to the replaced agent
            continue
        drop_params = False
        m = PRIMITIVE.match(line)
        lab = _lab_primitive(m["id"], m["agent"], fenced) if m else None
        if m and lab:
            out += [f"primitive {m['id']} {lab[0]} \\", f"\tparams {lab[1]} \\"]
            swapped.add(m["id"])
            drop_params = True
            continue
        out.append(line)
    missing = ({rpm.HAPROXY} | set(fenced)) - swapped
    if missing:
        raise PacemakerLabError(f"the rendered cib.crm no longer has the primitives the lab replaces: {sorted(missing)}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- nodes


def package_layout() -> str:
    """Shell lines recreating the packages' directories (owner, group, mode) in a node's private ones."""
    lines = []
    for top in PACKAGE_DIRS:
        if not os.path.isdir(top):
            continue
        for d in [top] + sorted(e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False)):
            st = os.stat(d)
            lines.append(f"install -d -o {st.st_uid} -g {st.st_gid} -m {st.st_mode & 0o7777:o} {d}")
    return "\n".join(lines)


def _start_qnetd(state: LabState, plan: ClusterPlan, node: str) -> None:
    box = sandbox(node)
    box.run(["bash", "-c", pki_script(plan, node, "qnetd_db_ensure")], timeout=60)
    box.run(["chown", "coroqnetd:coroqnetd", "/run/corosync-qnetd"])
    processes.start(state, node, "corosync-qnetd", ["setpriv", "--reuid=coroqnetd", "--regid=coroqnetd", "--init-groups", *qnetd_argv(plan, node)])


def _prepare_director(plan: ClusterPlan, node: str, qdevice: bool) -> None:
    """Package directories, the qdevice's TLS database, and the lab's fence agent in the node's /usr/sbin overlay."""
    box = sandbox(node)
    box.run(["sh", "-c", "set -e\n" + package_layout()])
    if qdevice:
        box.run(["bash", "-c", pki_script(plan, node, "qdevice_db_ensure")], timeout=60)
    box.write_files([RenderedFile(fence_lab.AGENT_PATH, fence_lab.agent_program(power.SOCKET), 0o755)])


def corosync_ready(node: str) -> bool:
    """Whether corosync answers on its IPC (cfgtool's exit status does not depend on the peers' links)."""
    return sandbox(node).run(["corosync-cfgtool", "-s"], check=False).returncode == 0


COROSYNC_START_TIMEOUT = 30.0


def wait_corosync(state: LabState, node: str) -> None:
    """Until the corosync just started on node answers (bounded): at once an error if it is gone
    (it exited, or the power switch took the node down again), with its log and the node's last
    power actions, rather than 30 s of polling a process that no longer exists."""

    def gone() -> Optional[str]:
        return None if processes.alive(state, node, "corosync") else "corosync exited (or was killed)"

    def detail() -> str:
        log = processes.log_path(node, "corosync")
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else [f"(no {log})"]
        actions = [f"{e['action']} {e.get('cause', '')}".strip() for e in power.journal("off") + power.journal("on") if e["node"] == node]
        return f"; power actions on {node}: {actions[-4:]}; its corosync log ends:\n" + "\n".join(tail)

    wait_for(f"corosync on {node}", lambda: corosync_ready(node), COROSYNC_START_TIMEOUT, gave_up=gone, detail=detail)


def pacemakerd_argv(plan: ClusterPlan, node: str) -> list[str]:
    """pacemakerd, after the rendered unit drop-in's ExecStartPre (the VIP metric's reset) when there is one.

    The lab records this command line, so its power button replays the reset at every start, as
    systemd does at a boot; a failing reset (`-` in the unit) does not keep pacemakerd from starting."""
    dropin = plan.nodes[node].files.get(PACEMAKER_DROPIN)
    if dropin is None:
        return ["pacemakerd"]
    pre = [line.removeprefix("ExecStartPre=").lstrip("-") for line in str(dropin.content).splitlines() if line.startswith("ExecStartPre=")]
    return ["sh", "-c", "".join(f"{cmd}; " for cmd in pre) + "exec pacemakerd"]


def start_director(state: LabState, node: str, qdevice: bool, pacemakerd: Sequence[str] = ("pacemakerd",)) -> None:
    """corosync, then (once its IPC answers) corosync-qdevice and pacemakerd: the order of their systemd units."""
    processes.start(state, node, "corosync", ["corosync", "-f"])
    wait_corosync(state, node)
    if qdevice:
        processes.start(state, node, "corosync-qdevice", ["corosync-qdevice", "-f"])
    processes.start(state, node, "pacemaker", list(pacemakerd))


def power_on(state: LabState, node: str, timeout: float = 60.0, links: Optional[Sequence[str]] = None) -> None:
    """A director's power button (power.power_on, corosync answering before the daemons after it);
    a director that was off counts as up once it is back in the cluster with its HAProxy running (bounded wait)."""

    def ready(role: str) -> None:
        if role == "corosync":
            wait_corosync(state, node)

    if power.power_on(state, node, ready, links=links):
        wait_for(f"{node} back in the cluster with HAProxy running", lambda: haproxy_running(node), timeout, 0.5)


def haproxy_running(node: str) -> bool:
    """Whether Pacemaker, as the node itself sees it, runs the HAProxy clone there."""
    out = sandbox(node).run(["crm_resource", "--locate", "--resource", rpm.HAPROXY_CLONE], check=False).stdout
    return f"is running on: {node}" in out


def bring_up(state: LabState, topo: Topology, plan: ClusterPlan, progress: Progress, run_step: RunStep) -> None:
    """qnetd on the arbitrator, the power switch, corosync + qdevice + pacemaker on every director, then the CIB."""
    arbitrator = rpm.arbitrator(topo)
    directors = [d.name for d in topo.directors]
    master = topo.master.name
    if arbitrator:
        _start_qnetd(state, plan, arbitrator.name)
    for d in directors:
        _prepare_director(plan, d, arbitrator is not None)
    rendered = str(plan.nodes[master].files[rpm.CIB_CRM].content)
    sandbox(master).write_files([RenderedFile(rpm.CIB_CRM, lab_cib(rendered, topo), 0o600)])  # what 53-cib loads
    c = topo.cluster
    power.start(state, [str(v) for v in (c.vips.external, c.vips.internal, c.vips.heartbeat)])
    for d in directors:
        start_director(state, d, arbitrator is not None, pacemakerd_argv(plan, d))
    progress("directors: corosync" + (f", corosync-qdevice (qnetd on {arbitrator.name})" if arbitrator else "") + ", pacemaker")
    run_step(plan, master, CIB_STEP, timeout=420)
    progress(f"CIB loaded on {master} (rendered step {CIB_STEP}; HAProxy and the fence devices as in lab_cib)")
    if arbitrator:
        for d in directors:
            run_step(plan, d, QUORUM_DEVICE_STEP, timeout=150)
        progress(f"quorum device connected on every director (rendered step {QUORUM_DEVICE_STEP})")


# --------------------------------------------------------------------------- what Pacemaker manages


def managed_pid(node: str, role: str) -> Optional[int]:
    """The PID of a daemon Pacemaker runs on the node, from its resource's pid file."""
    if role not in MANAGED:
        raise KeyError(f"Pacemaker does not manage {role}")
    out = sandbox(node).run(["cat", HAPROXY_PIDFILE], check=False).stdout.strip()
    return int(out) if out.isdigit() else None


def kill_managed(node: str, role: str, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
    """Kill a daemon Pacemaker runs (the fault), by the PID its resource recorded; wait, bounded, until it is gone."""
    pid = managed_pid(node, role)
    if pid is None:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if sig in (signal.SIGKILL, signal.SIGTERM):
        wait_for(f"{role} (pid {pid}) on {node} to die", lambda: not pid_alive(pid) or processes.is_zombie(pid), timeout, 0.02)


def clear_failures(node: str, role: str) -> None:
    """What an operator does once the cause is fixed: forget the resource's failures on the node, so Pacemaker starts it there again.

    First wait (bounded) for the cluster to settle: a cleanup that lands while Pacemaker is still
    recovering from the failure (the VIPs already moved, the stop and the fail-count not yet
    written) is undone by it, and the node stays banned (seen on a freshly started lab)."""
    box = sandbox(node)
    box.run(["crm_resource", "--wait", "--timeout", "30s"], timeout=45)
    box.run(["crm_resource", "--cleanup", "--resource", MANAGED[role], "--node", node], timeout=60)


# --------------------------------------------------------------------------- the stack file


def stack_variant(stack_file: Path, out_dir: Path) -> Path:
    """The same stack with haStack: pacemaker, written to out_dir (the bench's Pacemaker lab beside keepalived's)."""
    return variants.stack_variant(stack_file, out_dir, "pacemaker", {"haStack": "pacemaker"})
