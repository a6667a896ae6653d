"""Small helpers every role module uses to add files and steps to a node's plan."""

from __future__ import annotations

from typing import Any, Iterable

from ..topology import Topology
from .placeholders import MARKER
from .plan import NodePlan, RenderedFile, Step, StepRef
from .templating import render

# Where steps record what a daemon last read (the change stamps of templates/steps/_header.sh.j2).
STEP_STAMPS = "/var/lib/ha-web-cluster/stamps"


def holds_secret(content: str | bytes) -> bool:
    """Whether a file carries a secret placeholder (its installed copy then holds the secret)."""
    return isinstance(content, str) and any(m.group(1) == "secret" for m in MARKER.finditer(content))


class NodeBuilder:
    """Wraps one NodePlan: renders templates into files, and step templates into steps."""

    def __init__(self, topo: Topology, plan: NodePlan):
        self.topo = topo
        self.plan = plan

    @property
    def name(self) -> str:
        return self.plan.name

    def file(self, path: str, template: str, mode: int = 0o644, **context: Any) -> str:
        return self.raw(path, render(template, **context), mode)

    def raw(self, path: str, content: str | bytes, mode: int = 0o644) -> str:
        if mode & 0o077 and holds_secret(content):
            raise ValueError(f"{self.name}:{path} holds a secret, so its mode must give nothing to group or others (0600 or stricter), not {mode:04o}")
        self.plan.add(RenderedFile(path, content, mode))
        return path

    def step(
        self,
        name: str,
        description: str,
        template: str,
        files: Iterable[str] = (),
        after: Iterable[StepRef] = (),
        **context: Any,
    ) -> Step:
        script = render(template, step=name, node=self.name, description=description, stamps=STEP_STAMPS, **context)
        step = Step(
            node=self.name,
            name=name,
            description=description,
            script=script,
            files=tuple(files),
            after=tuple(sorted(set(after), key=str)),
        )
        self.plan.steps.append(step)
        self.plan.steps.sort(key=lambda s: s.name)
        return step
