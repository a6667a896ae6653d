"""`lab up` and `lab down`: a stack file in, a running cluster of namespaces out (and back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from .. import netns
from ..render import render_cluster
from ..render.backend import BACKEND_CONTENT_STEP, NAS_CONTENT_STEP
from ..render.firewall import FIREWALL_STEP
from ..render.placeholders import fill
from ..render.plan import ClusterPlan, NodePlan, RenderedFile
from ..stackfile import LoadedStack, load_stack_file
from ..topology import ROLE_BACKEND, ROLE_DIRECTOR, ROLE_GLUSTER, ROLE_NAS, Topology
from . import apache, gluster, haproxy_log, network, node_metrics, pacemaker, processes
from .gluster_pki import lab_pki_values
from .https_pki import lab_https_values
from .state import BRIDGES, LAB_ROOT, LINK_PREFIX, NETNS_PREFIX, LabState, lab_secrets, sandbox

Progress = Callable[[str], None]

# Rendered steps that only configure (no package installs, no systemd): the lab runs them as they are.
LAB_STEPS = {
    "all": (FIREWALL_STEP,),
    ROLE_DIRECTOR: ("10-sysctl",),
    ROLE_NAS: (NAS_CONTENT_STEP,),
    ROLE_GLUSTER: ("20-peers", "30-volumes"),
    ROLE_BACKEND: (BACKEND_CONTENT_STEP,),
}
NFS_SHARE = LAB_ROOT / "shared" / "nfs"  # stands in for the NAS's NFSv4 root
FSTAB = "/etc/ha-web-cluster/fstab"  # the docroot mounts the rendered files give a Docker host


class LabError(RuntimeError):
    pass


def filled_files(node: NodePlan, values: dict[str, str]) -> list[RenderedFile]:
    """The node's rendered files with the lab's generated secrets in place of the placeholders."""
    return [RenderedFile(f.path, fill(f.content, values), f.mode) for f in node.files.values()]


def run_step(plan: ClusterPlan, node: str, step_name: str, timeout: float = 120) -> str:
    """Run a rendered step script unchanged inside the node."""
    step = plan.nodes[node].step(step_name)
    proc = sandbox(node).run(["bash", "-s"], check=False, timeout=timeout, input=step.script)
    if proc.returncode != 0:
        raise LabError(f"{node}/{step_name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _ensure_host_dir(state: LabState, path: str) -> None:
    """Mount points must exist on the shared root filesystem; remember the ones we create."""
    p = Path(path)
    missing = []
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        state.created_dirs.append(str(d))


def up(stack: LoadedStack, stack_file: str, progress: Progress = print) -> LabState:
    old = LabState.load()
    if old is not None and old.stack_file == stack_file and old.complete:
        progress("lab already up for this stack; nothing to do")
        return old
    if old is not None or _leftovers():
        progress("removing a previous (or half-finished) lab first")
        down(progress=lambda _msg: None)
    topo = Topology(stack.config)
    plan = render_cluster(stack.config)
    values = lab_secrets() | lab_pki_values(topo) | lab_https_values(topo)
    state = LabState(stack=stack.name, stack_file=stack_file, secrets_file=str(LAB_ROOT / "secrets.json"))
    state.save()
    t0 = time.monotonic()

    def step(msg: str) -> None:
        progress(f"[{time.monotonic() - t0:6.1f}s] {msg}")

    step("networks: " + ", ".join(f"{n} -> {b}" for n, b in BRIDGES.items()))
    network.create_bridges()
    network.create_client(state, topo)
    network.create_host(state, topo)
    for index, node in enumerate(topo.nodes):
        sb = sandbox(node.name)
        sb.create(filled_files(plan.nodes[node.name], values), hostname=node.name)
        network.wire_node(state, topo, index, node)
    state.save()
    step(f"{len(topo.nodes)} node namespaces + client {state.client_address}")
    for node in topo.nodes:
        for name in LAB_STEPS["all"]:
            run_step(plan, node.name, name)
    step("every node: host firewall (rendered step)")

    for d in topo.directors:
        for name in LAB_STEPS[ROLE_DIRECTOR]:
            run_step(plan, d.name, name)
        processes.start(state, d.name, "dnsmasq", ["dnsmasq", "-k", "-C", "/etc/dnsmasq.conf", "--log-facility=-"])
    step("directors: sysctl, NAT (rendered steps), dnsmasq")

    _dhcp_clients(topo, step)

    nas = topo.nodes_with_role(ROLE_NAS)[0]
    raid_mount = topo.cluster.nas.raid.mountpoint
    share = NFS_SHARE / raid_mount.strip("/")
    share.mkdir(parents=True, exist_ok=True)
    _ensure_host_dir(state, raid_mount)
    sandbox(nas.name).run(["mount", "--bind", str(share), raid_mount])
    _run_if_rendered(plan, nas.name, LAB_STEPS[ROLE_NAS])
    step(f"NAS: {raid_mount} is the lab's shared directory {share}; NFS content published there (rendered step)")

    if topo.nodes_with_role(ROLE_GLUSTER):
        gluster.bring_up(state, topo, plan, step, _ensure_host_dir, run_step)

    exports = str(plan.nodes[nas.name].files["/etc/exports"].content)
    for b in topo.cluster.backends:
        _mount_docroots(state, topo, plan.nodes[b.name], b.name, export_options(exports, str(b.address)))
    for b in topo.cluster.backends:
        _run_if_rendered(plan, b.name, LAB_STEPS[ROLE_BACKEND])
    step(f"backends: docroots mounted, Gluster content published (rendered {BACKEND_CONTENT_STEP} step)")

    for b in topo.cluster.backends:
        for c in apache.container_defs(plan.nodes[b.name]):
            start_container(state, b.name, c)
    step(f"{sum(len(b.containers) for b in topo.cluster.backends)} containers (Apache + PHP)")
    if node_metrics.start_all(state, topo):
        step(f"node-exporter on every node's internal address, port {topo.cluster.node_metrics.port}")

    haproxy_log.start(state, [d.name for d in topo.directors])
    step("directors' HAProxy request logs: " + str(processes.log_path(processes.HOST, haproxy_log.ROLE)))
    if pacemaker.is_pacemaker(topo):
        pacemaker.bring_up(state, topo, plan, step, run_step)  # Pacemaker starts HAProxy itself
    else:
        for d in topo.directors:
            processes.start(state, d.name, "haproxy", processes.HAPROXY)
        for d in topo.directors:
            processes.start(state, d.name, "keepalived", ["keepalived", "-n", "-l", "-D", "-f", "/etc/keepalived/keepalived.conf"])
        step("directors: haproxy and keepalived")
    holder = wait_for_vip(topo, str(topo.cluster.vips.external), timeout=30)
    step(f"external VIP {topo.cluster.vips.external} held by {holder}")
    state.complete = True
    state.save()
    return state


def _run_if_rendered(plan: ClusterPlan, node: str, names: tuple[str, ...]) -> None:
    """Run those of the named steps the node has (a stack without NFS or Gluster content renders fewer)."""
    have = {s.name for s in plan.nodes[node].steps}
    for name in names:
        if name in have:
            run_step(plan, node, name)


def start_container(state: LabState, backend: str, c: "apache.ContainerDef") -> None:
    sb = sandbox(backend)
    conf = sb.state / "containers" / f"{c.name}.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(apache.apache_conf(c, processes.log_path(backend, apache.role(c.name))))
    processes.start(state, backend, apache.role(c.name), ["apache2", "-f", str(conf), "-DFOREGROUND"])


def _dhcp_clients(topo: Topology, step: Progress) -> None:
    """Docker hosts and Gluster servers get their reserved address from the master's dnsmasq."""
    pending = {}
    for node in topo.dhcp_nodes:
        nic = next(n for n in node.nics if n.dhcp)
        argv = ["dhclient", "-4", "-1", "-pf", "/run/dhclient.pid", "-lf", "/var/lib/dhcp/dhclient.leases", nic.name]
        pending[node.name] = subprocess.Popen(sandbox(node.name).argv(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, proc in pending.items():
        try:
            out, _ = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise LabError(f"{name}: no DHCP lease within 40 s") from None
        want = str(topo.node(name).internal_address)
        if not network.holds(name, want):
            raise LabError(f"{name}: DHCP gave {network.addresses(name)}, expected the reservation {want}: {out[-400:]}")
    step(f"DHCP: {len(pending)} nodes got their reserved addresses from dnsmasq")


def export_options(exports: str, address: str) -> Optional[str]:
    """The options the NAS's rendered /etc/exports gives `address` (None: not exported to it)."""
    for line in exports.splitlines():
        if line.strip() and not line.startswith("#"):
            for client in line.split()[1:]:
                host, _, options = client.partition("(")
                if host == address:
                    return options.rstrip(")")
    return None


def _mount_docroots(state: LabState, topo: Topology, node: NodePlan, name: str, nfs_options: Optional[str]) -> None:
    mount_fstab(state, name, str(node.files[FSTAB].content), nfs_options)


def mount_fstab(state: LabState, name: str, fstab: str, nfs_options: Optional[str], after_power_off: bool = False) -> None:
    """Mount what the node's rendered fstab lists: NFS as the lab's shared directory, on the terms
    of the rendered export (refused when not exported to the node, read-only when `ro`); Gluster for
    real. After a power-off (the FUSE clients killed) the Gluster mounts are made afresh, as at boot."""
    sb = sandbox(name)
    for line in fstab.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        source, target, fstype, options = line.split()[:4]
        _ensure_host_dir(state, target)
        if fstype.startswith("nfs"):
            if nfs_options is None:
                raise LabError(f"{name} mounts {source}, which the NAS does not export to it")
            if sb.run(["mountpoint", "-q", target], check=False).returncode != 0:
                sb.run(["mount", "--bind", str(NFS_SHARE), target])
                if "ro" in nfs_options.split(","):
                    sb.run(["mount", "-o", "remount,bind,ro", target])
        else:
            if after_power_off:
                sb.run(["umount", "-l", target], check=False)
            gluster.mount_volume(sb, source, target, options)


def boot_mounts(state: LabState, name: str) -> None:
    """What a powered-on node mounts at boot: its rendered fstab, read from its own /etc (if it has
    one), NFS on the terms of the NAS's rendered /etc/exports."""
    path = sandbox(name).path(FSTAB)
    if path.exists():
        topo = Topology(load_stack_file(Path(state.stack_file)).config)
        nas = topo.nodes_with_role(ROLE_NAS)[0]
        exports = sandbox(nas.name).path("/etc/exports").read_text()
        mount_fstab(state, name, path.read_text(), export_options(exports, str(topo.node(name).internal_address)), after_power_off=True)


def wait_for_vip(topo: Topology, vip: str, timeout: float) -> str:
    """Until the master (highest priority) holds the VIP alone: a standby may hold it for a
    moment while the master's daemons start, and the lab is only up once the seed's state is."""
    master = topo.master.name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holders = [d.name for d in topo.directors if network.holds(d.name, vip)]
        if holders == [master]:
            return master
        time.sleep(0.1)
    raise LabError(f"{master} does not hold {vip} alone after {timeout:.0f} s (holders: {holders}); see {processes.log_path(master, 'keepalived')}")


def _leftovers() -> bool:
    return any(n.startswith(NETNS_PREFIX) for n in netns.list_netns()) or bool(netns.links_with_prefix(LINK_PREFIX))


def down(progress: Progress = print) -> None:
    """Remove everything the lab made; safe after a crash, a half-finished up, or twice."""
    state = LabState.load()
    if state is not None:
        for proc in reversed(state.processes):
            processes.stop(state, proc.node, proc.role, timeout=3)
    names = [n for n in netns.list_netns() if n.startswith(NETNS_PREFIX)]
    for ns in names:
        node = ns[len(NETNS_PREFIX):]
        sandbox(node).destroy()
    for link in netns.links_with_prefix(LINK_PREFIX):
        netns.del_link(link)
    nodes_dir = LAB_ROOT / "nodes"
    if nodes_dir.exists():
        for d in nodes_dir.iterdir():
            sandbox(d.name).destroy()
    if state is not None:
        for d in sorted(state.created_dirs, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
    gluster.detach_loops(state)
    for sub in ("shared", "logs", "bricks", "nodes"):
        shutil.rmtree(LAB_ROOT / sub, ignore_errors=True)
    for f in ("state.json", "secrets.json", "gluster-pki.json", "https-pki.json", "https-pki.lock", "https-ca.pem", "fence.sock", "faults.json", "faults.lock"):
        (LAB_ROOT / f).unlink(missing_ok=True)
    progress(f"lab down: removed {len(names)} namespaces")


