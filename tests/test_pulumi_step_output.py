"""No step prints a secret: a failing step's error message carries all of its output.

pulumi-command v1.2.1 fails a remote Command with `"%w: running %q:\\n%s"`, the command and its
whole combined stdout/stderr (provider/pkg/provider/remote/commandOutputs.go, run), whatever
`logging` says and whether or not stdout/stderr are secret outputs; the engine shows and logs
that message in clear. So a secret may reach a step only in its stdin, be written only to
files, and be read only by programs that do not print it. Checked here with every secret the
rendered cluster uses filled in with a generated value (the shapes the program generates).
"""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Mapping

import pytest

from components.secrets import GENERATORS, SSH_KEY_SECRETS
from components.steps import RUN_AS_ROOT, step_command_text
from webcluster.render import ClusterPlan, render_cluster
from webcluster.render import gluster_tls, https
from webcluster.render.placeholders import fill, keys_in
from webcluster.stackfile import load_values

# Stacks in which every secret key is used: VRRP v2 (vrrpAuthPass) and Pacemaker with fencing.
STACKS = {
    "keepalived-vrrp2": {"ha-web-cluster:cluster": {"vrrp": {"version": 2, "advertInterval": 1}}},
    "pacemaker": {"ha-web-cluster:haStack": "pacemaker"},
}
TRACING = re.compile(r"(^|[;&|]\s*)set\s+(-[a-zA-Z]*[xv]|-o\s+(xtrace|verbose))|\b(ba)?sh\s+-[a-zA-Z]*[xv]|BASH_XTRACEFD|\bPS4=", re.M)
HEREDOC = re.compile(r"<<-?\s*'?([A-Za-z0-9_]+)'?\s*$")
READERS = {"cat", "tee", "head", "tail"}
PRINTERS = READERS | {"echo", "printf"}


def generated_values(keys: set[str]) -> dict[str, str]:
    """Values shaped as components.secrets generates them: 8 or 32 alphanumerics, or 256 random bytes in base64."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    out = {}
    for key in keys:
        if gluster_tls.is_tls_key(key) or https.is_tls_key(key):  # a private key, as pulumi-tls gives it
            out[key] = f"-----BEGIN PRIVATE KEY-----\n{base64.b64encode(secrets.token_bytes(96)).decode()}\n-----END PRIVATE KEY-----\n"
        elif key == "corosyncKey":
            out[key] = base64.b64encode(secrets.token_bytes(256)).decode()
        else:
            length = 8 if key == "vrrpAuthPass" else 32
            out[key] = "".join(secrets.choice(alphabet) for _ in range(length))
    return out


def rendered(stack: str) -> tuple[ClusterPlan, dict[str, str]]:
    plan = render_cluster(load_values(STACKS[stack]).config)
    from components.secrets import secrets_in

    keys = secrets_in(plan)
    assert {k for k in keys if not gluster_tls.is_tls_key(k) and not https.is_tls_key(k)} <= set(GENERATORS) | SSH_KEY_SECRETS | {"statsPassword", "haclusterPassword", "fencePassword", "qdeviceSeed"}
    return plan, generated_values(keys)


def public_values(plan: ClusterPlan) -> dict[str, str]:
    """The value placeholders (certificates, the SSH public key): needed to fill, not secret."""
    keys = {k for n in plan.nodes.values() for f in n.files.values() if isinstance(f.content, str) for k in keys_in(f.content)}
    return {k: f"-----BEGIN CERTIFICATE-----\n{k}\n-----END CERTIFICATE-----\n" for k in keys if k.startswith("glusterC")}


def leaked(text: str, values: Mapping[str, str]) -> list[str]:
    return [k for k, v in values.items() if v in text]


def outside_heredocs(script: str) -> tuple[str, list[str]]:
    """The shell code a step's stdin executes (here-document bodies removed) and each here-document's opening line."""
    code, openers, delimiter = [], [], None
    for line in script.splitlines():
        if delimiter is not None:
            if line == delimiter:
                delimiter = None
            continue
        match = HEREDOC.search(line)
        if match:
            delimiter = match.group(1)
            openers.append(line)
        code.append(line)
    return "\n".join(code), openers


# --------------------------------------------------------------------------- where a secret reaches the output


def secret_paths(plan: ClusterPlan, node: str, values: Mapping[str, str]) -> set[str]:
    """Files of the node whose content holds a secret once filled."""
    filling = values | public_values(plan)
    return {path for path, f in plan.nodes[node].files.items() if isinstance(f.content, str) and leaked(fill(f.content, filling), values)}


def printing_lines(script: str, paths: set[str]) -> Iterator[tuple[int, str]]:
    """Lines where echo/printf/cat/tee/head/tail write a secret file's content (or its variable) to the step's output.

    A reference is the path itself, a variable assigned it, or a positional parameter of a
    function called with it. Output that a pipe, a command substitution or a file redirect
    consumes - on the line or for the whole `{ ...; }` / `( ... )` group - is not printed.
    """
    lines = script.splitlines()
    variables = {m.group(1) for line in lines for m in [re.match(r"^\s*(?:local\s+)?([A-Za-z_]\w*)=(\S+)", line)] if m and m.group(2).strip("\"'") in paths}
    functions = {m.group(1) for line in lines for p in paths for m in [re.match(r"^\s*([A-Za-z_]\w*)\s+.*" + re.escape(p), line)] if m}
    consumed = _consumed_groups(lines)
    current_function = None
    for number, line in enumerate(lines):
        start = re.match(r"^([A-Za-z_]\w*)\(\)\s*\{", line)
        if start:
            current_function = start.group(1)
        elif line.startswith("}"):
            current_function = None
        refs = [re.escape(p) for p in paths] + [r"\$\{?" + v + r"\b" for v in variables]
        if current_function in functions:
            refs.append(r"\$[1-9@*]")
        if number in consumed or line.lstrip().startswith("#"):
            continue
        for segment in re.split(r"&&|\|\||;", line):
            words = segment.split()
            if not words or words[0] not in PRINTERS:
                continue
            if "|" in segment or re.search(r"(^|[^&])>\s*[^&\s]", segment) or "$(" in line[: line.find(segment)]:
                continue
            # cat/head/tail/tee print a file named by the reference; echo/printf print the name
            # itself, so only a file read inside them, `$(cat REF)` or `$(<REF)`, is content
            readers = refs if words[0] in READERS else [r"\$\(\s*(cat|head|tail|<)[^)]*" + r for r in refs]
            if any(re.search(r, segment) for r in readers):
                yield number + 1, line


def _consumed_groups(lines: list[str]) -> set[int]:
    """Line numbers inside a `{`/`(` group whose closing line pipes or redirects it to a file."""
    consumed: set[int] = set()
    stack: list[int] = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.endswith("{") or stripped == "(" or stripped.endswith("| (") or stripped.endswith("$("):
            stack.append(number)
        elif (stripped.startswith("}") or stripped.startswith(")")) and stack:
            opened = stack.pop()
            rest = stripped[1:]
            if "|" in rest or re.search(r">\s*[^&\s]", rest) or lines[opened].rstrip().endswith("$("):
                consumed.update(range(opened, number + 1))
    return consumed


def test_the_scanner_finds_a_printed_secret_file() -> None:
    """The rule can fail: each of these prints the fence password; the consumed forms do not."""
    path = "/etc/ha-web-cluster/pacemaker/fence.password"
    printed = [
        f"cat {path}",
        f'echo "password: $(cat {path})"',
        f"P={path}\nhead -c 8 \"$P\" >&2",
        f'show() {{\n\tcat "$1"\n}}\nshow {path}',
    ]
    for script in printed:
        assert list(printing_lines(script, {path})), script
    consumed = [
        f"cat {path} | sha256sum",
        f"x=$(cat {path})",
        f'{{\n\tcat {path}\n\tprintf x\n}} | openssl dgst -sha256',
        f"cat {path} > /tmp/copy",
        f"set_password hacluster {path}",
        f'P={path}\necho "$P: must have 16 characters" >&2',
    ]
    for script in consumed:
        assert not list(printing_lines(script, {path})), script


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_no_step_prints_or_traces_a_secret(stack: str) -> None:
    plan, values = rendered(stack)
    assert values, "the stack uses secrets"
    found_secret_file = False
    for step in plan.all_steps():
        files = plan.nodes[step.node].files
        command = step_command_text(step, files, values | public_values(plan))
        assert command.command == RUN_AS_ROOT and not leaked(command.command, values)
        code, openers = outside_heredocs(command.script)
        assert not leaked(code, values), f"{step.ref}: a secret outside a here-document body"
        for opener in openers:
            assert re.match(r"^(cat|base64 -d) > \S+\.hawc-new <<'HAWC_(FILE|B64)_[0-9a-f]+'$", opener), f"{step.ref}: a here-document not written to a file: {opener}"
        script = fill(step.script, values)
        assert not leaked(script, values), f"{step.ref}: the step script itself holds a secret (it must read a file)"
        assert not TRACING.search(command.script) and not TRACING.search(script), f"{step.ref}: shell tracing prints every expanded word"
        paths = secret_paths(plan, step.node, values)
        found_secret_file |= bool(paths & set(step.files))
        assert list(printing_lines(script, paths)) == [], f"{step.ref} prints a secret file"
    assert found_secret_file


# --------------------------------------------------------------------------- the validators steps run on secret files


def _validator_line(plan: ClusterPlan, step_name: str, program: str) -> list[str]:
    step = next(s for s in plan.all_steps() if s.node == "cluster1" and s.name == step_name)
    line = next(line for line in step.script.splitlines() if line.startswith(program + " "))
    return line.split()


@pytest.mark.parametrize(
    ("program", "step_name", "path", "key", "break_it"),
    [
        ("haproxy", "40-haproxy", "/etc/haproxy/haproxy.cfg", "statsPassword", lambda t, v: t.replace(f"admin:{v}", f"admin {v}").replace("stats auth", "stats authx")),
        ("keepalived", "50-keepalived", "/etc/keepalived/keepalived.conf", "vrrpAuthPass", lambda t, v: t.replace(f"auth_pass {v}", f"auth_pass {v}{v}\n\tbogus_keyword {v}")),
    ],
)
def test_a_failing_validator_does_not_print_the_secret(program: str, step_name: str, path: str, key: str, break_it, tmp_path: Path) -> None:
    """The config checks the steps run, on the secret-bearing file broken next to the secret (the worst case for an echoed line)."""
    if shutil.which(program) is None:
        pytest.fail(f"{program} missing: scripts/bootstrap.sh installs it")
    plan, values = rendered("keepalived-vrrp2")
    argv = _validator_line(plan, step_name, program)
    text = fill(plan.nodes["cluster1"].files[path].content, values)
    assert values[key] in text
    target = tmp_path / Path(path).name
    target.write_text(break_it(text, values[key]))
    argv = [str(target) if a == path else a for a in argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 or program == "keepalived", "the broken file fails its check"
    assert values[key] not in result.stdout + result.stderr, f"{' '.join(argv)} printed the secret"
