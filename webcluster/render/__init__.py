"""Render a validated stack config into a ClusterPlan: every node's files and ordered steps.

The order in which steps wait for each other is decided here, once: NFS export before
client mounts, Gluster peers before volumes before mounts, content before containers,
one Docker host's containers after another's (a rolling change),
directors (DHCP, NAT, VIPs) before internal-only nodes, and a smoke check last.
"""

from __future__ import annotations

from ..model import StackConfig
from ..topology import ROLE_GLUSTER, ROLE_NAS, Topology
from .backend import BACKEND_CONTENT_STEP, NAS_CONTENT_STEP, add_backend, add_containers, add_content, add_roll
from .builder import NodeBuilder
from .cloudinit import cloud_init_documents
from .common import add_base
from .director import add_director, add_haproxy_rolls, add_smoke_check
from .firewall import add_firewall
from .hastack import ha_stack_for
from .node_metrics import add_node_exporter
from .plan import ClusterPlan, NodePlan, StepRef
from .storage import add_gluster_server, add_gluster_volumes, add_nas

__all__ = ["render_cluster", "ClusterPlan"]


def render_cluster(config: StackConfig) -> ClusterPlan:
    topo = Topology(config)
    builders = {n.name: NodeBuilder(topo, NodePlan(n.name, n.role)) for n in topo.nodes}

    # Directors first: everything on the internal network needs their DHCP, DNS, NAT and VIP.
    ha_ready: list[StepRef] = []
    for d in topo.directors:
        ha_ready.append(add_director(builders[d.name], d).ref)
    ha_stack_for(topo).add_other_nodes(builders)
    haproxy_rolled = add_haproxy_rolls(topo, builders)
    network_ready = [builders[topo.master.name].plan.step("30-dnsmasq").ref, *ha_ready]
    for b in builders.values():
        add_base(b, network_ready)
        add_firewall(b)
        # Early on each node: on a director it then runs before keepalived and the other nodes'
        # boots compete for the CPU (at the end, an emulated director's systemctl timed out).
        add_node_exporter(b)

    storage_ready: dict[str, StepRef] = {}
    nas = topo.nodes_with_role(ROLE_NAS)[0]
    storage_ready["nfs"] = add_nas(builders[nas.name]).ref
    gluster = topo.nodes_with_role(ROLE_GLUSTER)
    if gluster:
        bricks = [add_gluster_server(builders[g.name]).ref for g in gluster]
        volumes = add_gluster_volumes(builders[gluster[0].name], bricks).ref
        for v in topo.cluster.gluster.volumes:
            storage_ready[v.name] = volumes

    containers_ready: list[StepRef] = []
    content_ready: list[StepRef] = []
    in_use = topo.storages_in_use()
    if "nfs" in in_use:
        raid = topo.cluster.nas.raid.mountpoint
        nfs_docroot = f"{raid}/{topo.cluster.docker.docroot_subdir}"
        content_ready.append(add_content(builders[nas.name], NAS_CONTENT_STEP, [nfs_docroot], storage_ready["nfs"], mountpoint=raid).ref)
    gluster_docroots = [topo.docroot(s) for s in in_use if s != "nfs"]
    for i, backend in enumerate(topo.cluster.backends):
        b = builders[backend.name]
        mounts_step, docker_step = add_backend(b, backend, storage_ready)
        if i == 0 and gluster_docroots:
            content_ready.append(add_content(b, BACKEND_CONTENT_STEP, gluster_docroots, mounts_step.ref).ref)
        containers = add_containers(b, backend, [docker_step.ref, mounts_step.ref, *content_ready])
        # A change rolls one Docker host at a time: each host's 45-roll waits for the previous host's,
        # and for every director's HAProxy to run the change (a new server exists before it is put
        # in rotation), whose runtime API drains and readies the servers.
        previous = containers_ready[-1:]
        containers_ready.append(add_roll(b, backend, containers, [*previous, *ha_ready, *haproxy_rolled]).ref)

    add_smoke_check(builders[topo.master.name], containers_ready + ha_ready)

    nodes = {name: b.plan for name, b in builders.items()}
    cloud_init = {n.name: cloud_init_documents(topo, n) for n in topo.nodes}
    _check_references(nodes)
    # ifupdown asks for a lease once at boot: a DHCP node must not boot before the master serves DHCP.
    dhcp_ready = builders[topo.master.name].plan.step("30-dnsmasq").ref
    boot_after = {n.name: (dhcp_ready,) for n in topo.dhcp_nodes}
    return ClusterPlan(nodes=nodes, cloud_init=cloud_init, boot_after=boot_after)


def _check_references(nodes: dict[str, NodePlan]) -> None:
    """Every dependency names an existing step and every carried file exists: fail at render time, not at deploy time."""
    refs = {s.ref for n in nodes.values() for s in n.steps}
    for n in nodes.values():
        for s in n.steps:
            missing = [str(r) for r in s.after if r not in refs]
            if missing:
                raise ValueError(f"{s.ref} waits for unknown step(s) {', '.join(missing)}")
            for path in s.files:
                if path not in n.files:
                    raise ValueError(f"{s.ref} carries {path}, which is not rendered for {n.name}")

