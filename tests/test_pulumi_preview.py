"""Preview quality: a one-line config change touches only what must change; no change touches nothing."""

from __future__ import annotations

import copy

from pulumi_harness import Recording, run_stack

SEED_BACKENDS = [
    {
        "name": f"cluster{h}",
        "aliases": [f"server{h - 1}"],
        "address": f"10.0.100.{h}",
        "containers": [{"name": f"cluster{h}{i}p", "port": 8080 + i} for i in (1, 2, 3)] + [{"name": f"cluster{h}4p", "port": g, "docroot": "gv0"}],
    }
    for h, g in ((2, 8084), (3, 8085), (4, 8086))
]


def changed(before: Recording, after: Recording) -> set[str]:
    """Resources added, removed, or whose recorded inputs differ (what `pulumi preview` would show)."""
    names = {r.urn: r.name for r in [*before.resources.values(), *after.resources.values()]}
    return {
        names[urn]
        for urn in set(before.resources) | set(after.resources)
        if urn not in before.resources or urn not in after.resources or before.resources[urn].inputs != after.resources[urn].inputs
    }


def test_running_twice_without_change_changes_nothing() -> None:
    assert changed(run_stack("dev"), run_stack("dev")) == set()
    assert changed(run_stack("dev", hypervisor="virtualbox"), run_stack("dev", hypervisor="virtualbox")) == set()


def test_spelling_out_the_defaults_changes_nothing() -> None:
    assert changed(run_stack("dev"), run_stack("dev", cluster={"backends": SEED_BACKENDS})) == set()


def test_one_more_container_touches_its_host_and_the_load_balancers_only() -> None:
    more = copy.deepcopy(SEED_BACKENDS)
    more[1]["containers"].append({"name": "cluster35p", "port": 8087})  # the one-line change
    before = run_stack("dev", cluster={"backends": SEED_BACKENDS})
    after = run_stack("dev", cluster={"backends": more})
    # cluster3's firewall opens the new container's port to the directors.
    assert changed(before, after) == {"cluster3-01-firewall", "cluster3-40-containers", "cluster3-45-roll", "cluster1-40-haproxy", "standby1-40-haproxy", "standby2-40-haproxy",
                                     "cluster1-60-haproxy-roll", "standby1-60-haproxy-roll", "standby2-60-haproxy-roll"}
    step = after.steps()["cluster3-40-containers"]
    assert step.inputs["triggers"][0] != before.steps()["cluster3-40-containers"].inputs["triggers"][0], "the digest trigger re-runs it"


def test_changing_a_vm_size_reruns_only_that_nodes_steps() -> None:
    before = run_stack("dev", cluster={"nas": {"resources": {"vcpus": 1, "memoryMib": 512}}})
    after = run_stack("dev", cluster={"nas": {"resources": {"vcpus": 2, "memoryMib": 512}}})
    assert changed(before, after) == {"nas"}, "only the domain's inputs change; its id (a step trigger) changes on replace"
    assert before.steps()["nas-20-raid"].inputs["triggers"][1] == before.named("libvirt:index/domain:Domain", "nas").id
