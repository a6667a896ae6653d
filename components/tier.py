"""What every tier component does: declare its nodes' VMs and run its configuration steps.

A tier owns some nodes (their VMs) and some steps. Each step becomes one
``command.remote.Command`` that installs the files the step carries and runs its script
(text from :func:`components.steps.step_command_text`). It waits for what
``ClusterPlan.dependencies`` says and for its node's VM; it re-runs when the step's
digest (script + carried files, placeholders unfilled) changes or the VM is replaced,
and never otherwise. Steps are idempotent, so a replace (no delete command) is safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

import pulumi

from webcluster.render.content import CONTENT_DIR
from webcluster.render.plan import ClusterPlan, Step
from webcluster.topology import Node, Topology

from .command import remote
from .hypervisor import Machine, Platform
from .hypervisor.base import CloudInit
from .registry import StepRegistry
from .secrets import ClusterSecrets
from .steps import RUN_AS_ROOT, secret_keys_of, step_command_text


@dataclass
class Deployment:
    """What all tiers share: the rendered cluster, the platform, the secrets, and what is declared so far."""

    topology: Topology
    plan: ClusterPlan
    platform: Platform
    secrets: ClusterSecrets
    cloud_init: Mapping[str, CloudInit]
    machines: dict[str, Machine] = field(default_factory=dict)
    steps: StepRegistry = field(default_factory=StepRegistry)


@dataclass(frozen=True)
class TierArgs:
    deployment: Deployment
    nodes: tuple[Node, ...]  # VMs this tier owns
    steps: tuple[Step, ...]  # configuration steps this tier runs


def is_content_step(step: Step) -> bool:
    """A step that publishes the web pages into shared docroots (on the NAS for NFS, on one Docker
    host for Gluster): the web content is its own tier, whichever node it runs on."""
    return any(path.startswith(CONTENT_DIR + "/") for path in step.files)


def step_resource_name(step: Step) -> str:
    return f"{step.node}-{step.name}"


class Tier(pulumi.ComponentResource):
    """Base of the tier components; subclasses say which nodes and steps they own and what they report."""

    TYPE: ClassVar[str]
    ROLES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, args: TierArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(self.TYPE, name, None, opts)
        d = args.deployment
        for node in args.nodes:
            boot_after = d.steps.resources(d.plan.boot_after.get(node.name, ()))
            d.machines[node.name] = d.platform.machine(node, d.cloud_init[node.name], parent=self, boot_after=boot_after)
        self.step_commands: dict[str, remote.Command] = {step_resource_name(s): self._declare_step(s, d) for s in args.steps}
        summary = self.describe(d.topology)
        self.register_outputs({**summary, "nodes": [n.name for n in args.nodes], "steps": sorted(self.step_commands)})

    @classmethod
    def owns_step(cls, step: Step, node: Node) -> bool:
        return node.role in cls.ROLES and not is_content_step(step)

    def describe(self, topology: Topology) -> dict[str, Any]:
        """Set this tier's output attributes and return them for register_outputs."""
        return {}

    def _declare_step(self, step: Step, d: Deployment) -> remote.Command:
        node_plan = d.plan.nodes[step.node]
        machine = d.machines[step.node]
        keys = secret_keys_of(step, node_plan.files)
        if keys:
            values = pulumi.Output.all(**{k: d.secrets.values[k] for k in sorted(keys)})
            script: pulumi.Input[str] = pulumi.Output.secret(values.apply(lambda v: step_command_text(step, node_plan.files, v).script))
        else:
            script = step_command_text(step, node_plan.files).script
        command = remote.Command(
            step_resource_name(step),
            connection=machine.connection,
            create=RUN_AS_ROOT,  # the same command for every step; the step travels on stdin
            stdin=script,
            triggers=[node_plan.step_digest(step), machine.instance_id],
            add_previous_output_in_env=False,  # it would need sshd's AcceptEnv, and may hold secrets
            logging=remote.Logging.NONE if keys else None,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*machine.ready, *d.steps.resources(d.plan.dependencies(step))],
                additional_secret_outputs=["stdout", "stderr"] if keys else None,
            ),
        )
        d.steps.add(step.ref, command)
        return command
