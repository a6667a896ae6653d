"""The ordering rules, asserted on the dependency graph the engine receives (not on timing)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from pulumi_harness import Recording, run_stack

BACKENDS = ("cluster2", "cluster3", "cluster4")
GLUSTER = ("gluster1", "gluster2", "gluster3")
DIRECTORS = ("cluster1", "standby1", "standby2")


@pytest.fixture(scope="module")
def dev() -> Recording:
    return run_stack("dev")


def closure(rec: Recording, name: str) -> set[str]:
    """Every step `name` waits for, directly or not."""
    steps = rec.steps()
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in rec.depends_on(steps[todo.pop()]) & set(steps):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def direct(rec: Recording, name: str) -> set[str]:
    return rec.depends_on(rec.steps()[name])


def test_nfs_export_before_client_mounts(dev: Recording) -> None:
    for b in BACKENDS:
        assert "nas-30-nfs" in direct(dev, f"{b}-20-mounts")
    assert {"nas-10-bond", "nas-20-raid"} <= closure(dev, "nas-30-nfs")


def test_gluster_peers_then_volumes_then_mounts(dev: Recording) -> None:
    assert {f"{g}-10-bricks" for g in GLUSTER} <= direct(dev, "gluster1-20-peers")
    assert "gluster1-20-peers" in direct(dev, "gluster1-30-volumes")
    for b in BACKENDS:
        assert "gluster1-30-volumes" in direct(dev, f"{b}-20-mounts")


def test_content_before_containers(dev: Recording) -> None:
    assert "cluster2-20-mounts" in direct(dev, "cluster2-30-content")
    for b in BACKENDS:
        assert {"cluster2-30-content", f"{b}-10-docker", f"{b}-20-mounts"} <= direct(dev, f"{b}-40-containers")


def test_directors_serve_the_network_before_internal_nodes_start(dev: Recording) -> None:
    for node in ("nas", *GLUSTER, *BACKENDS):
        assert {"cluster1-30-dnsmasq", *(f"{d}-50-keepalived" for d in DIRECTORS)} <= direct(dev, f"{node}-00-base")


def test_smoke_check_runs_last_on_the_master(dev: Recording) -> None:
    everything = set(dev.steps()) - {"cluster1-90-smoke"}
    assert closure(dev, "cluster1-90-smoke") == everything
    assert not any("cluster1-90-smoke" in dev.depends_on(s) for s in dev.steps().values())


def test_steps_wait_for_their_own_vm(dev: Recording) -> None:
    for name, step in dev.steps().items():
        node = name.split("-")[0]
        assert node in dev.depends_on(step), f"{name} does not wait for its VM"


def test_steps_on_a_node_run_in_order(dev: Recording) -> None:
    by_node: dict[str, list[str]] = {}
    for name in sorted(dev.steps()):
        by_node.setdefault(name.split("-")[0], []).append(name)
    for names in by_node.values():
        for earlier, later in pairwise(names):
            assert earlier in direct(dev, later)


def test_the_step_graph_has_no_cycle(dev: Recording) -> None:
    for name in dev.steps():
        for dep in closure(dev, name):
            assert dep != name, f"{name} waits for itself"


@pytest.mark.parametrize("hypervisor", ["libvirt", "virtualbox"])
def test_dhcp_nodes_boot_after_the_master_serves_dhcp(hypervisor: str) -> None:
    """ifupdown asks for a lease once at boot: a Docker host or Gluster server that boots before
    dnsmasq runs would stay without its address; the directors and the NAS (static) need not wait."""
    rec = run_stack("dev", hypervisor=hypervisor)
    vm_type = "libvirt:index/domain:Domain" if hypervisor == "libvirt" else "command:local:Command"
    vms = {r.name: r for r in rec.of_type(vm_type).values() if r.name in (*DIRECTORS, "nas", *GLUSTER, *BACKENDS) or r.name.endswith("-vm")}
    for node in (*GLUSTER, *BACKENDS):
        vm = vms.get(node) or vms[f"{node}-vm"]
        assert "cluster1-30-dnsmasq" in rec.depends_on(vm), node
    for node in (*DIRECTORS, "nas"):
        vm = vms.get(node) or vms[f"{node}-vm"]
        assert not {n for n in rec.depends_on(vm) if n in rec.steps()}, node


@pytest.mark.parametrize("step", ["30-dnsmasq", "40-haproxy", "50-keepalived"])
def test_directors_are_configured_side_by_side(dev: Recording, step: str) -> None:
    """The directors' config steps do not wait for each other: chained (standbys first) they made
    the master's dnsmasq, HAProxy and keepalived wait for the standbys' on a first deployment, and
    every other node waits for the master (its gateway). A change reloads each daemon in place
    (no connection lost, no VIP move: tests/test_lab_reloads.py)."""
    for d in DIRECTORS:
        assert not {f"{o}-{step}" for o in DIRECTORS if o != d} & closure(dev, f"{d}-{step}"), d
