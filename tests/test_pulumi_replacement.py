"""What `pulumi up` replaces after a config change, by the providers' own replace rules.

The mock engine records inputs but never diffs them, so :func:`replaced` applies the rules
the real engine would: a resource is replaced when an input its provider marks ForceNew
changes, or one its `replaceOnChanges` option names; a replaced resource gets a new id, and
every input holding the old id then changes too (to a fixed point). The ForceNew tables are
the top-level schema fields with `ForceNew: true` in terraform-provider-libvirt v0.8.1
(libvirt/resource_libvirt_{domain,network,volume,cloud_init}.go, which pulumi-libvirt 0.5.4
bridges; a domain's `xml` replaces through its nested `xslt`), and pulumi-command v1.2.1's
`triggers` (provider/pkg/provider/common/inputs.go: `provider:"replaceOnChanges"`).
Domain ids are libvirt UUIDs, network ids too, a CloudInitDisk's id is `<key>;<fresh uuid>`
(libvirt/cloudinit_def.go, buildTerraformKey): all new on replacement.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pulumi_harness import STEP_TYPE, Recording, Registered, run_stack

from components.hypervisor.libvirt import DOMAIN_REPLACE_ON

DOMAIN = "libvirt:index/domain:Domain"
NETWORK = "libvirt:index/network:Network"
VOLUME = "libvirt:index/volume:Volume"
SEED_DISK = "libvirt:index/cloudInitDisk:CloudInitDisk"

FORCE_NEW: dict[str, set[str]] = {
    DOMAIN: {"name", "description", "vcpu", "memory", "firmware", "type", "nvram", "coreosIgnition", "fwCfgName", "filesystems", "disks", "graphics", "cpu", "cmdlines", "xml"},
    NETWORK: {"name", "domain", "mode", "bridge", "addresses", "dhcp", "routes", "xml"},
    VOLUME: {"name", "pool", "source", "size", "format", "baseVolumeId", "baseVolumePool", "baseVolumeName", "xml"},
    SEED_DISK: {"name", "pool", "userData", "metaData", "networkConfig"},
    STEP_TYPE: {"triggers"},
}
PATH = re.compile(r"^(\w+)(?:\[\*\](?:\.(\w+))?)?$")  # `field`, `list[*]` (the SDK's own, for triggers) or `list[*].field`


def _at(inputs: dict[str, Any], path: str) -> Any:
    field, sub = PATH.match(path).groups()
    value = inputs.get(field)
    return [e.get(sub) for e in value or []] if sub else value


def replaced(before: Recording, after: Recording) -> set[str]:
    """URNs the engine would replace going from `before` to `after` (both present in each)."""
    common = [urn for urn in before.resources if urn in after.resources]
    out: set[str] = set()
    while True:
        stale = {before.resources[u].id: f"{before.resources[u].id}#replaced" for u in out}

        def new(value: Any) -> Any:
            text = json.dumps(value, sort_keys=True)
            for old, fresh in stale.items():
                text = text.replace(json.dumps(old)[1:-1], fresh)
            return json.loads(text)

        grown = set(out)
        for urn in common:
            b, a = before.resources[urn], after.resources[urn]
            old_in, new_in = b.inputs, new(a.inputs)
            paths = FORCE_NEW.get(a.type, set()) | set(a.replace_on_changes)
            if any(_at(old_in, p) != _at(new_in, p) for p in paths):
                grown.add(urn)
        if grown == out:
            return out
        out = grown


def names(rec: Recording, urns: set[str], typ: str) -> set[str]:
    return {rec.resources[u].name for u in urns if rec.resources[u].type == typ}


def steps_of(rec: Recording, nodes: set[str]) -> set[str]:
    return {name for name in rec.steps() if name.split("-", 1)[0] in nodes}


DIRECTORS = {"cluster1", "standby1", "standby2"}
ALL_NODES = DIRECTORS | {"nas", "gluster1", "gluster2", "gluster3", "cluster2", "cluster3", "cluster4"}


@pytest.fixture(scope="module")
def seed() -> Recording:
    return run_stack("dev")


@pytest.mark.parametrize(
    ("network", "cidr", "nodes"),
    [("external", "192.168.123.0/24", DIRECTORS), ("internal", "10.0.200.0/24", ALL_NODES)],
)
def test_a_cidr_change_replaces_exactly_the_domains_on_that_network_and_reruns_their_steps(seed: Recording, network: str, cidr: str, nodes: set[str]) -> None:
    moved = run_stack("dev", cluster={"networks": {network: {"cidr": cidr}}})
    gone = replaced(seed, moved)
    assert names(seed, gone, NETWORK) == {f"network-{network}"}, "addresses/xml are ForceNew on a network"
    assert names(seed, gone, DOMAIN) == nodes, "the guests must not stay on the deleted bridge"
    assert names(seed, gone, VOLUME) == set(), "disks are kept: the new domain boots the same root disk"
    assert steps_of(seed, nodes) <= names(seed, gone, STEP_TYPE), "every step of a replaced VM runs again"
    assert names(seed, gone, STEP_TYPE) - steps_of(seed, nodes) <= {s for s in seed.steps() if seed.steps()[s].inputs["triggers"][0] != moved.steps()[s].inputs["triggers"][0]}, (
        "a step of another VM re-runs only when its own files change"
    )


def test_the_domains_replace_options_are_what_forces_it(seed: Recording) -> None:
    """Without DOMAIN_REPLACE_ON a network replacement would update the domains in place (network_interface has no ForceNew)."""
    moved = run_stack("dev", cluster={"networks": {"external": {"cidr": "192.168.123.0/24"}}})
    for r in seed.of_type(DOMAIN).values():
        assert r.replace_on_changes == DOMAIN_REPLACE_ON
    stripped = {urn: _without_replace_options(r) for urn, r in moved.resources.items()}
    plain = Recording(moved.stack, stripped, moved.outputs, moved.component_outputs)
    assert names(seed, replaced(seed, plain), DOMAIN) == set()


def test_a_new_seed_alone_replaces_the_domain(seed: Recording) -> None:
    """A changed cloud-init (here: another SSH key) gives every node a new CloudInitDisk; `cloudinit` is not ForceNew upstream."""
    rekeyed = run_stack("dev", sshPublicKey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther other@host")
    gone = replaced(seed, rekeyed)
    assert names(seed, gone, SEED_DISK) == {f"{n}-seed" for n in ALL_NODES}
    assert names(seed, gone, DOMAIN) == ALL_NODES
    assert names(seed, gone, NETWORK) == set()


def test_no_change_replaces_nothing(seed: Recording) -> None:
    assert replaced(seed, run_stack("dev")) == set()


def _without_replace_options(r: Registered) -> Registered:
    return Registered(**{**r.__dict__, "replace_on_changes": []})
