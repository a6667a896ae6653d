"""The shell text that runs one rendered step on its node: the only place that knows its format.

Pulumi's remote commands send it over SSH; a later end-to-end replay sends the very same
text (``ssh node "$COMMAND" < script``). The script becomes root, installs every file the
step carries (atomically, with its mode), saves the step script under :data:`STEP_DIR` so
an operator can re-run it by hand, and runs it with no stdin. It travels on stdin, not in
the command line: the web content is far larger than the 128 KiB a single argument may be.
Text files travel as quoted here-documents, so ``pulumi preview --diff`` shows readable
changes; binary files travel as base64.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import shlex
from dataclasses import dataclass
from typing import Mapping

from webcluster.render.placeholders import fill, keys_in
from webcluster.render.plan import RenderedFile, Step

STEP_DIR = "/var/lib/ha-web-cluster/steps"
RUN_AS_ROOT = "sudo -n /bin/bash -s"


@dataclass(frozen=True)
class StepCommand:
    command: str  # what the SSH user's login shell runs
    script: str  # fed to it on stdin


def step_command_text(
    step: Step, files: Mapping[str, RenderedFile], values: Mapping[str, str] | None = None, step_dir: str = STEP_DIR
) -> StepCommand:
    """The command and its stdin script; `values` fills the step's placeholders (secrets)."""
    values = values or {}
    body = ["set -eu"]
    for path in step.files:
        rendered = files[path]
        body.append(_install(path, fill(rendered.content, values), rendered.mode))
    script_path = f"{step_dir}/{step.name}.sh"
    body.append(_install(script_path, fill(step.script, values), 0o755))
    body.append("umask 022")  # what the step itself creates (directories, state) is world-readable unless it says otherwise
    body.append(f"exec {shlex.quote(script_path)} </dev/null")
    return StepCommand(RUN_AS_ROOT, "\n".join(body) + "\n")


def secret_keys_of(step: Step, files: Mapping[str, RenderedFile]) -> set[str]:
    """Placeholders the step's text holds (its script and the text files it carries)."""
    keys = keys_in(step.script)
    for path in step.files:
        content = files[path].content
        if isinstance(content, str):
            keys |= keys_in(content)
    return keys


def _install(path: str, content: str | bytes, mode: int) -> str:
    """Write `content` to `path` through a temporary file, so a half-written file is never live.

    The file is created under a umask that already withholds every bit `mode` lacks, and a
    leftover temporary file (an interrupted run) is removed first: a secret is never readable
    by others, not even between its creation and the chmod (which only adds bits such as x)."""
    target = shlex.quote(path)
    temp = shlex.quote(path + ".hawc-new")
    directory = shlex.quote(posixpath.dirname(path) or "/")
    text = content if _heredoc_safe(content) else None
    if text is not None:
        delimiter = _delimiter("HAWC_FILE", text)
        write = f"cat > {temp} <<'{delimiter}'\n{text}{delimiter}"
    else:
        data = content.encode() if isinstance(content, str) else content
        encoded = base64.encodebytes(data).decode()
        delimiter = _delimiter("HAWC_B64", encoded)
        write = f"base64 -d > {temp} <<'{delimiter}'\n{encoded}{delimiter}"
    umask = 0o777 & ~mode & 0o777
    return f"umask 022\nmkdir -p {directory}\nrm -f {temp}\numask {umask:03o}\n{write}\nchmod {mode:o} {temp}\nmv -f {temp} {target}"


def _heredoc_safe(content: str | bytes) -> bool:
    """Text a here-document reproduces exactly: printable UTF-8 ending in a newline, no CR or NUL."""
    return isinstance(content, str) and content.endswith("\n") and "\r" not in content and "\0" not in content


def _delimiter(prefix: str, text: str) -> str:
    """A here-document delimiter that no line of `text` equals."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    lines = set(text.splitlines())
    for size in range(12, 65, 4):
        candidate = f"{prefix}_{digest[:size]}"
        if candidate not in lines:
            return candidate
    raise ValueError("no here-document delimiter fits this text")
