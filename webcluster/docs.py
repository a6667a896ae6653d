"""Generate the configuration reference from the model's field descriptions (one source of truth)."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .model import SECRET_KEYS, StackConfig


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is None:
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return " \\| ".join(f"`{m.value}`" for m in annotation)
        return getattr(annotation, "__name__", str(annotation)).replace("IPv4Address", "IPv4 address").replace("IPv4Network", "CIDR")
    args = [a for a in get_args(annotation) if a is not type(None)]
    if str(origin).endswith("Literal"):
        return " \\| ".join(f"`{a}`" for a in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    return " \\| ".join(_type_name(a) for a in args) + (" or null" if len(args) < len(get_args(annotation)) else "")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} items (the seed's)"
    value = value.value if isinstance(value, Enum) else value
    text = json.dumps(value, default=str)
    return f"`{text}`" if len(text) < 60 else "the seed's (long)"


def _nested(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _section(model: type[BaseModel], prefix: str, out: list[str], seen: set[str]) -> None:
    rows = []
    children = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        rows.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
        nested = _nested(field.annotation)
        if nested is not None:
            is_list = get_origin(field.annotation) is list
            children.append((nested, f"{path}[]." if is_list else f"{path}."))
    title = prefix.rstrip(".") or "top level"
    out.append(f"\n### `{title}`\n")
    out.append("| key | type | default | meaning |\n|---|---|---|---|")
    out.extend(rows)
    for nested, child_prefix in children:
        if child_prefix not in seen:
            seen.add(child_prefix)
            _section(nested, child_prefix, out, seen)


def configuration_reference() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `webcluster/model.py` by `python -m webcluster docs`; do not edit by hand.",
        "Every key lives under the `ha-web-cluster:` namespace of `Pulumi.<stack>.yaml`",
        "(`pulumi config set ha-web-cluster:hypervisor virtualbox`, or `--path` for nested keys:",
        "`pulumi config set --path 'ha-web-cluster:cluster.vrrp.advertInterval' 0.2`).",
        "An empty stack config reproduces the seed's cluster; unknown keys are rejected.",
        "Nested keys you leave out keep their defaults. Lists (directors, services, backends, ...)",
        "replace the default list as a whole. Maps with a default (`cluster.vrrp.routerIds`,",
        "`cluster.gluster.volumes[].options`) merge with it key by key, so",
        "`pulumi config set --path 'ha-web-cluster:cluster.vrrp.routerIds.external' 60` changes that",
        "one id; to remove a default key, set it to `null` in the stack file.",
        "",
        "## Secrets",
        "",
        "Set with `pulumi config set --secret ha-web-cluster:<key> <value>`; the program generates",
        "every one that is not set, and keeps them as Pulumi secrets end to end.",
        "",
        "| key | meaning |\n|---|---|",
    ]
    out.extend(f"| `{k}` | {v} |" for k, v in SECRET_KEYS.items())
    out.append("\n## Keys")
    _section(StackConfig, "", out, set())
    return "\n".join(out) + "\n"
