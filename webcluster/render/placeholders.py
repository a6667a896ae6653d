"""Markers for values the renderer must not know: secrets and values only Pulumi computes.

Rendered files carry ``@@hawc:secret:statsPassword@@``; whoever holds the value
(Pulumi inside an ``apply``, the lab with its generated values) calls :func:`fill`.
Keeping the marker in the rendered text keeps the text itself free of secrets, so
its hash can drive step triggers without leaking anything.
"""

from __future__ import annotations

import re
from typing import Mapping

MARKER = re.compile(r"@@hawc:(secret|value):([A-Za-z0-9]+)@@")


def secret(key: str) -> str:
    return f"@@hawc:secret:{key}@@"


def value(key: str) -> str:
    return f"@@hawc:value:{key}@@"


def keys_in(text: str) -> set[str]:
    return {m.group(2) for m in MARKER.finditer(text)}


def fill(text: str | bytes, values: Mapping[str, str]) -> str | bytes:
    """Replace every marker; a marker without a value is an error, never left behind.

    Binary content (the page's image) carries no marker and is returned as it is.
    """
    if isinstance(text, bytes):
        return text

    def sub(m: re.Match) -> str:
        key = m.group(2)
        if key not in values:
            raise KeyError(f"no value for placeholder {m.group(0)}")
        return values[key]

    return MARKER.sub(sub, text)
