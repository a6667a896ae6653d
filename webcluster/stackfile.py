"""Read `Pulumi.<stack>.yaml` the way the Pulumi program reads its config.

Only `ha-web-cluster:*` keys belong to the model; other namespaces (provider
settings such as `libvirt:uri`) are ignored, unless the namespace looks like a misspelling
of ours (a key Pulumi would silently ignore). Secret keys must be `secure:` values
and are never decrypted here: we only note that they are set. Every way a file can be
unreadable (a folder, binary data, a mapping with a key twice, `config:` not a mapping)
is a :class:`ConfigError` naming the file, never a traceback.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .model import SECRET_KEYS, StackConfig
from .validation import ConfigError, Problem, parse

PROJECT = "ha-web-cluster"
MISSPELLING_RATIO = 0.8  # difflib similarity above which a foreign namespace is taken for a typo of ours
TOP_LEVEL_KEYS = {"config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment"}


class DuplicateKey(yaml.YAMLError):
    """The same key twice in one mapping."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that rejects a mapping with the same key twice (YAML says keys are unique;
    PyYAML would silently keep the last one, and Pulumi's own reader refuses the file)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKey(f"key {key!r} appears twice (lines {seen[key]} and {line}): keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


@dataclass
class LoadedStack:
    name: str
    config: StackConfig
    secrets_set: set[str] = field(default_factory=set)  # secret keys given (encrypted) in the file
    warnings: list[Problem] = field(default_factory=list)


def stack_path(stack: str, root: Path | None = None) -> Path:
    return (root or Path.cwd()) / f"Pulumi.{stack}.yaml"


def stack_names(root: Path) -> list[str]:
    """The stacks that have a `Pulumi.<stack>.yaml` in `root`."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("Pulumi.*.yaml") if p.is_file())


def _looks_like_project(namespace: str) -> bool:
    return namespace != PROJECT and difflib.SequenceMatcher(None, namespace.lower(), PROJECT).ratio() >= MISSPELLING_RATIO


def split_values(raw: dict[str, Any]) -> tuple[dict[str, Any], set[str], list[Problem]]:
    """Project keys without their prefix, the secret keys present, and misuse of secrets."""
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    problems: list[Problem] = []
    for full_key, value in (raw or {}).items():
        namespace, _, key = str(full_key).partition(":")
        if not key:
            namespace, key = PROJECT, namespace
        if _looks_like_project(namespace):
            problems.append(Problem(str(full_key), f"namespace {namespace!r} looks like a misspelling of {PROJECT!r} (Pulumi would ignore this key): write `{PROJECT}:{key}`"))
            continue
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


def load_values(raw: dict[str, Any], name: str = "inline", where: str = "config") -> LoadedStack:
    """`where` names the mapping in errors (the stack file's `config:`)."""
    if not isinstance(raw, dict):
        raise ConfigError([Problem(where, f"must be a mapping of `{PROJECT}:<key>: <value>` lines, not a {_yaml_kind(raw)}")])
    values, secrets, problems = split_values(raw)
    try:
        config, warnings = parse(values)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return LoadedStack(name, config, secrets, warnings)


def _yaml_kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), type(value).__name__)


def _read_text(path: Path) -> str:
    """The file's text; a missing file lists the stacks that exist, a folder or binary data is named as such."""
    if path.is_dir():
        raise ConfigError([Problem(str(path), "is a directory: give a stack file (Pulumi.<stack>.yaml)")])
    if not path.exists():
        known = stack_names(path.parent) if path.parent.is_dir() else []
        hint = f"stacks in {path.parent}: {', '.join(known)}" if known else f"no Pulumi.<stack>.yaml in {path.parent}"
        raise ConfigError([Problem(str(path), f"stack file not found ({hint})")])
    data = path.read_bytes()
    binary = ConfigError([Problem(str(path), "is not a text file (binary data): give a YAML stack file")])
    if b"\0" in data:
        raise binary
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise binary from None


def load_stack_file(path: Path) -> LoadedStack:
    text = _read_text(path)
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except DuplicateKey as exc:
        raise ConfigError([Problem(str(path), str(exc))]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(str(path), f"not valid YAML: {' '.join(str(exc).split())}")]) from None
    if not isinstance(doc, dict):
        raise ConfigError([Problem(str(path), f"expected a mapping with a `config:` key, not a {_yaml_kind(doc)}")])
    unknown = set(doc) - TOP_LEVEL_KEYS
    if unknown:
        raise ConfigError([Problem(str(path), f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}")])
    name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    config = doc.get("config")
    return load_values({} if config is None else config, name, where=f"{path}: config")
