"""What rendering produces: per node, files at absolute paths and ordered steps.

Both the Pulumi components and the lab consume these objects; `write_plan` puts
them on disk for `python -m webcluster render`.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..errors import UsageError

Content = Union[str, bytes]


@dataclass(frozen=True)
class RenderedFile:
    path: str  # absolute path on the node
    content: Content
    mode: int = 0o644

    @property
    def data(self) -> bytes:
        return self.content.encode() if isinstance(self.content, str) else self.content

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.path.encode() + b"\0" + f"{self.mode:o}".encode() + b"\0" + self.data).hexdigest()


@dataclass(frozen=True)
class StepRef:
    node: str
    name: str

    def __str__(self) -> str:
        return f"{self.node}/{self.name}"


@dataclass(frozen=True)
class Step:
    """One configuration step: a script run as root on a node after the files it carries are installed."""

    node: str
    name: str  # e.g. "40-haproxy"; the number orders steps within a node
    description: str
    script: str
    files: tuple[str, ...] = ()  # absolute paths of the node's files this step installs
    after: tuple[StepRef, ...] = ()  # steps on other nodes (or this one) that must finish first

    @property
    def ref(self) -> StepRef:
        return StepRef(self.node, self.name)


@dataclass
class NodePlan:
    name: str
    role: str
    files: dict[str, RenderedFile] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)

    def add(self, *files: RenderedFile) -> None:
        for f in files:
            if f.path in self.files:
                raise ValueError(f"{self.name}: {f.path} rendered twice")
            self.files[f.path] = f

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"{self.name}/{name}")

    def step_digest(self, step: Step) -> str:
        """Hash of everything a step carries: changes exactly when the step must run again."""
        h = hashlib.sha256(step.script.encode())
        for path in step.files:
            h.update(self.files[path].digest.encode())
        return h.hexdigest()


@dataclass
class ClusterPlan:
    nodes: dict[str, NodePlan]
    cloud_init: dict[str, dict[str, str]]  # node -> {"user-data": ..., "meta-data": ..., "network-config": ...}
    # node -> steps that must have run before the node boots (a DHCP client asks once, at boot)
    boot_after: dict[str, tuple[StepRef, ...]] = field(default_factory=dict)

    def all_steps(self) -> list[Step]:
        return [s for n in self.nodes.values() for s in n.steps]

    def dependencies(self, step: Step) -> list[StepRef]:
        """What a step waits for: its declared steps plus the previous step on its own node."""
        node_steps = self.nodes[step.node].steps
        index = node_steps.index(step)
        previous = [node_steps[index - 1].ref] if index else []
        return sorted(set(step.after) | set(previous), key=str)

    def ordered_steps(self) -> list[Step]:
        """A topological order of every step - what a replay (lab, e2e) follows."""
        steps = {s.ref: s for s in self.all_steps()}
        deps = {ref: set(self.dependencies(s)) for ref, s in steps.items()}
        done: list[Step] = []
        placed: set[StepRef] = set()
        pending = list(steps)
        while pending:
            ready = [r for r in pending if deps[r] <= placed]
            if not ready:
                raise ValueError(f"dependency cycle among {', '.join(map(str, pending))}")
            for r in ready:
                done.append(steps[r])
                placed.add(r)
            pending = [r for r in pending if r not in placed]
        return done


RENDER_MARK = ".hawc-render"  # marks a folder as written by write_plan, so a new render may replace it


def _fresh_output(out: Path) -> None:
    """Empty `out` if it holds an earlier render (no stale node folders survive), refuse any other
    non-empty folder: replacing a tree we did not write could delete someone's files."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / RENDER_MARK).is_file():
            raise UsageError(f"--out {out}: folder is not empty and holds no earlier render ({RENDER_MARK}): give a new or empty folder")
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / RENDER_MARK).write_text("written by `python -m webcluster render`; the next render replaces this folder\n")


def write_plan(plan: ClusterPlan, out: Path) -> list[Path]:
    """Write every node's files under out/<node>/<abs path>, steps under out/<node>/steps/,
    replacing an earlier render in `out`."""
    _fresh_output(out)
    written: list[Path] = []
    for node in plan.nodes.values():
        root = out / node.name
        for f in node.files.values():
            written.append(_write(root / f.path.lstrip("/"), f.data, f.mode))
        for s in node.steps:
            written.append(_write(root / "steps" / f"{s.name}.sh", s.script.encode(), 0o755))
        for name, text in plan.cloud_init.get(node.name, {}).items():
            written.append(_write(root / "cloud-init" / name, text.encode(), 0o644))
    return written


def _write(path: Path, data: bytes, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path
