"""The Pulumi program run under the SDK's mock engine for the e2e stack: what it declares, as plain data.

Uses the test harness's recording monitor (``tests/pulumi_harness.py``) unchanged. From
the recorded resources it keeps what the replay needs: each VM (memory, vCPUs, NICs in
order with their MACs and networks, data disk sizes, the cloud-init documents handed to
its seed) and each remote command (connection, command, stdin, and the dependency graph).
Nothing here renders or orders steps itself: that is the program's job.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .domainxml import domain_nic_slots

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "libvirt:index/domain:Domain"
VOLUME = "libvirt:index/volume:Volume"
NETWORK = "libvirt:index/network:Network"
SEED = "libvirt:index/cloudInitDisk:CloudInitDisk"
MIB = 1024 * 1024


def _harness() -> Any:
    """tests/pulumi_harness.py, the one place that knows how to run the program under mocks."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import pulumi_harness  # noqa: PLC0415 - lives in tests/, imported on demand

    return pulumi_harness


def stack_config(stack: str) -> dict[str, Any]:
    """The `config:` of Pulumi.<stack>.yaml as the recording runs the program with it (keys prefixed)."""
    return _harness().stack_config(stack)


@dataclass(frozen=True)
class GuestNic:
    mac: str
    network: str  # external | internal | heartbeat (the libvirt network's name without "hawc-")
    pci_slot: Optional[int]  # where the Domain's XSLT puts it (None: libvirt's choice, in order)


@dataclass(frozen=True)
class Guest:
    """One VM as the program declares it."""

    name: str
    memory_mib: int
    vcpus: int
    nics: tuple[GuestNic, ...]
    data_disks_mib: tuple[int, ...]
    cloud_init: dict[str, str]
    boot_after: frozenset[str] = frozenset()  # remote steps the Domain depends on (created = booted after them)


@dataclass(frozen=True)
class RemoteStep:
    """One ``command:remote:Command``: where it connects, what it runs, what it waits for."""

    name: str  # resource name, e.g. cluster1-40-haproxy
    guest: str  # the VM it runs on (its dependency on a Domain)
    host: str
    port: int
    user: str
    private_key: Optional[str]
    proxy: Optional[dict[str, Any]]
    command: str
    stdin: str
    after: frozenset[str]  # names of the remote steps it waits for
    # pulumi-command's `triggers` (components/tier.py: the step's digest, the VM's instance id): a
    # change of them re-runs `create` (webcluster/e2e/changes.py). Not part of the snapshot key.
    triggers: tuple[str, ...] = ()


@dataclass
class PlanRecording:
    stack: str
    guests: dict[str, Guest]
    steps: dict[str, RemoteStep]
    outputs: dict[str, Any] = field(default_factory=dict)  # stack outputs, secrets unwrapped

    def ordered(self) -> list[RemoteStep]:
        """A topological order of the steps (ties by name, so runs are repeatable)."""
        done: list[RemoteStep] = []
        placed: set[str] = set()
        pending = sorted(self.steps)
        while pending:
            ready = [n for n in pending if self.steps[n].after <= placed]
            if not ready:
                raise ValueError(f"dependency cycle among {', '.join(pending)}")
            done += [self.steps[n] for n in ready]
            placed |= set(ready)
            pending = [n for n in pending if n not in placed]
        return done


def record(stack: str, private_key: str, public_key: str, secrets: Optional[dict[str, str]] = None, overrides: Optional[dict[str, Any]] = None) -> PlanRecording:
    """Run Pulumi.<stack>.yaml under mocks with a real SSH key pair and extract guests and steps.
    `secrets` and `overrides` (stack keys without the project prefix): a changed configuration."""
    h = _harness()
    from .pki import provider_outputs  # noqa: PLC0415 - imports the program's components

    rec = h.run_stack(stack, secrets={**(secrets or {}), "sshPrivateKey": private_key}, provider_outputs=provider_outputs,
                      **{**(overrides or {}), "sshPublicKey": public_key.strip()})
    by_urn = rec.resources
    by_id = {r.id: r for r in by_urn.values()}
    step_names = {u: r.name for u, r in by_urn.items() if r.type == h.STEP_TYPE}
    guests = {r.name: _guest(h, r, by_id, frozenset(step_names[u] for u in r.dependencies if u in step_names)) for r in by_urn.values() if r.type == DOMAIN}
    domain_urns = {u: r.name for u, r in by_urn.items() if r.type == DOMAIN}
    steps: dict[str, RemoteStep] = {}
    for urn, r in by_urn.items():
        if r.type != h.STEP_TYPE:
            continue
        inputs = h.unwrap(r.inputs)
        conn = inputs["connection"]
        machines = [domain_urns[u] for u in r.dependencies if u in domain_urns]
        if len(machines) != 1:
            raise ValueError(f"{r.name} waits for {len(machines)} VMs, expected exactly one")
        after = frozenset(by_urn[u].name for u in r.dependencies if u in by_urn and by_urn[u].type == h.STEP_TYPE)
        steps[r.name] = RemoteStep(
            r.name, machines[0], conn["host"], int(conn.get("port") or 22), conn["user"], conn.get("privateKey"),
            conn.get("proxy"), inputs["create"], inputs.get("stdin") or "", after, tuple(str(t) for t in inputs.get("triggers") or ()),
        )
    return PlanRecording(stack, guests, steps, h.unwrap(rec.outputs))


def _guest(h: Any, domain: Any, by_id: dict[str, Any], boot_after: frozenset[str]) -> Guest:
    inputs = h.unwrap(domain.inputs)
    declared = inputs["networkInterfaces"]
    slots = domain_nic_slots((inputs.get("xml") or {}).get("xslt"), domain.name, [n["mac"] for n in declared])
    nics = tuple(
        GuestNic(n["mac"], by_id[n["networkId"]].inputs["name"].removeprefix("hawc-"), slot) for n, slot in zip(declared, slots)
    )
    volumes = [by_id[d["volumeId"]] for d in inputs["disks"]]
    data = tuple(int(v.inputs["size"]) // MIB for v in volumes if "baseVolumeId" not in v.inputs)
    seed = h.unwrap(by_id[inputs["cloudinit"]].inputs)
    docs = {"user-data": seed["userData"], "meta-data": seed["metaData"], "network-config": seed["networkConfig"]}
    return Guest(domain.name, int(inputs["memory"]), int(inputs["vcpu"]), nics, data, docs, boot_after)
