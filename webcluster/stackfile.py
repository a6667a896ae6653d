"""Read `Pulumi.<stack>.yaml` the way the Pulumi program reads its config.

Only `ha-web-cluster:*` keys belong to the model; other namespaces (provider
settings such as `libvirt:uri`) are ignored. Secret keys must be `secure:` values
and are never decrypted here: we only note that they are set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .model import SECRET_KEYS, StackConfig
from .validation import ConfigError, Problem, parse

PROJECT = "ha-web-cluster"


@dataclass
class LoadedStack:
    name: str
    config: StackConfig
    secrets_set: set[str] = field(default_factory=set)  # secret keys given (encrypted) in the file
    warnings: list[Problem] = field(default_factory=list)


def stack_path(stack: str, root: Path | None = None) -> Path:
    return (root or Path.cwd()) / f"Pulumi.{stack}.yaml"


def split_values(raw: dict[str, Any]) -> tuple[dict[str, Any], set[str], list[Problem]]:
    """Project keys without their prefix, the secret keys present, and misuse of secrets."""
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    problems: list[Problem] = []
    for full_key, value in (raw or {}).items():
        namespace, _, key = str(full_key).partition(":")
        if not key:
            namespace, key = PROJECT, namespace
        if namespace != PROJECT:
            continue
        is_secure = isinstance(value, dict) and set(value) == {"secure"}
        if key in SECRET_KEYS:
            if is_secure:
                secrets.add(key)
            else:
                problems.append(Problem(key, "is a secret: store it with `pulumi config set --secret`, never in clear text"))
        elif is_secure:
            problems.append(Problem(key, "is stored as a secret but is not a secret key (secret keys: " + ", ".join(sorted(SECRET_KEYS)) + ")"))
        else:
            values[key] = value
    return values, secrets, problems


def load_values(raw: dict[str, Any], name: str = "inline") -> LoadedStack:
    values, secrets, problems = split_values(raw)
    try:
        config, warnings = parse(values)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return LoadedStack(name, config, secrets, warnings)


def load_stack_file(path: Path) -> LoadedStack:
    if not path.exists():
        raise ConfigError([Problem(str(path), "stack file not found")])
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(str(path), f"not valid YAML: {exc}")]) from None
    if not isinstance(doc, dict):
        raise ConfigError([Problem(str(path), "expected a mapping with a `config:` key")])
    unknown = set(doc) - {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}
    if unknown:
        raise ConfigError([Problem(str(path), f"unknown top-level key(s): {', '.join(sorted(unknown))}")])
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    return load_values(doc.get("config") or {}, name)
