"""The one jinja2 environment: strict (an undefined name is an error), trailing newlines kept."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        # Shell scripts use ${#array[@]}: keep jinja comments out of their way.
        comment_start_string="{#@",
        comment_end_string="@#}",
    )
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)


def asset(name: str) -> bytes:
    """A static file shipped under templates/ (the page's image)."""
    return (TEMPLATES / name).read_bytes()
