"""A stack file with some config keys changed, for a lab beside the original one (the bench's
Pacemaker lab, its Gluster-without-TLS lab): the same document, the keys merged in."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml


def _merge(base: Any, change: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base) if isinstance(base, Mapping) else {}
    for key, value in change.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, Mapping) else value
    return out


def stack_variant(stack_file: Path, out_dir: Path, label: str, changes: Mapping[str, Any]) -> Path:
    """`Pulumi.<stack>-<label>.yaml` in out_dir: stack_file with each top-level config key of
    `changes` (without the project prefix) merged into the stack's own value."""
    from ..stackfile import PROJECT

    doc = yaml.safe_load(stack_file.read_text()) or {}
    config = doc.setdefault("config", {})
    for key, value in changes.items():
        current = config.pop(key, None)
        current = config.pop(f"{PROJECT}:{key}", current)
        config[f"{PROJECT}:{key}"] = _merge(current, value) if isinstance(value, Mapping) else value
    name = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"Pulumi.{name}-{label}.yaml"
    out.write_text(f"# {stack_file.name} with {label}, written by the lab.\n" + yaml.safe_dump(doc, sort_keys=False))
    return out
