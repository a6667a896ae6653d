"""Read the stack's configuration the way `python -m webcluster validate` reads the stack file.

The engine hands the program every `<project>:<key>` as a string (objects as JSON) and
says which ones are secret. Secret values never leave ``pulumi.Config().get_secret``:
here they are replaced by the ``secure`` marker a stack file holds, so
:func:`webcluster.stackfile.load_values` applies exactly the same rules (and the
same clear errors) before the program declares a single resource.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from webcluster.stackfile import PROJECT, LoadedStack, load_values

SECURE_MARKER = {"secure": "(held by pulumi.Config)"}


def engine_config() -> tuple[dict[str, str], set[str]]:
    """All config the engine passed (explicit settings win over the environment) and its secret keys."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env())
    secret |= {k for k in values if runtime_config.is_config_secret(k)}
    return values, secret


def stack_values(values: dict[str, str], secret: set[str]) -> dict[str, Any]:
    """Every key as a stack file holds it: project objects parsed, secrets as `secure` markers.

    Other namespaces stay in, as plain text, so a misspelled project namespace is reported
    (load_values ignores the other providers' keys)."""
    return {
        key: SECURE_MARKER if key in secret else _parse(value) if key.startswith(PROJECT + ":") else value
        for key, value in values.items()
    }


def _parse(value: Any) -> Any:
    """Structured values arrive as JSON text; plain strings stay strings."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        return json.loads(value)
    return value


def read_stack() -> LoadedStack:
    """The validated stack config; raises ConfigError listing every problem. Logs the model's warnings."""
    values, secret = engine_config()
    loaded = load_values(stack_values(values, secret), pulumi.get_stack())
    for warning in loaded.warnings:
        pulumi.log.warn(str(warning))
    return loaded
