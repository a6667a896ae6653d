"""The step command text, executed for real by bash (files go under a temporary directory)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from components.steps import RUN_AS_ROOT, secret_keys_of, step_command_text
from webcluster.render import render_cluster
from webcluster.render.plan import RenderedFile, Step
from webcluster.stackfile import load_values


def run(script: str) -> subprocess.CompletedProcess:
    """What `sudo -n /bin/bash -s` does with the stdin, minus sudo."""
    return subprocess.run(["/bin/bash", "-s"], input=script.encode(), capture_output=True, timeout=30, check=False)


def make_step(tmp_path: Path, files: dict[str, RenderedFile], script: str) -> Step:
    return Step(node="n1", name="10-test", description="test", script=script, files=tuple(files))


def test_files_are_installed_exactly_then_the_script_runs(tmp_path: Path) -> None:
    tricky = "line one\nHAWC_FILE_x\n$HOME `date` 'q' \"dq\" \\\n"
    files = {
        str(tmp_path / "etc/app/conf"): RenderedFile(str(tmp_path / "etc/app/conf"), tricky, 0o640),
        str(tmp_path / "bin/tool"): RenderedFile(str(tmp_path / "bin/tool"), "#!/bin/sh\necho tool\n", 0o755),
        str(tmp_path / "img.bin"): RenderedFile(str(tmp_path / "img.bin"), bytes(range(256)) * 3),
        str(tmp_path / "no-newline"): RenderedFile(str(tmp_path / "no-newline"), "no trailing newline"),
    }
    script = f"#!/bin/bash\nset -eu\ncat {tmp_path}/etc/app/conf > {tmp_path}/seen\nread -r line || echo 'no stdin' > {tmp_path}/stdin\n"
    step = make_step(tmp_path, files, script)
    command = step_command_text(step, files, step_dir=str(tmp_path / "steps"))
    assert command.command == RUN_AS_ROOT
    result = run(command.script)
    assert result.returncode == 0, result.stderr.decode()
    for path, f in files.items():
        assert Path(path).read_bytes() == f.data, path
        assert stat.S_IMODE(os.stat(path).st_mode) == f.mode, path
        assert not Path(path + ".hawc-new").exists()
    assert (tmp_path / "seen").read_text() == tricky
    assert (tmp_path / "stdin").read_text() == "no stdin\n", "the step script must not read the command's stdin"
    assert stat.S_IMODE(os.stat(tmp_path / "steps/10-test.sh").st_mode) == 0o755


def test_a_failing_step_fails_the_command(tmp_path: Path) -> None:
    step = make_step(tmp_path, {}, "#!/bin/bash\nexit 3\n")
    assert run(step_command_text(step, {}, step_dir=str(tmp_path)).script).returncode == 3


def test_secrets_are_filled_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "haproxy.cfg")
    files = {path: RenderedFile(path, "stats auth admin:@@hawc:secret:statsPassword@@\n")}
    step = make_step(tmp_path, files, "#!/bin/bash\ntrue\n")
    assert secret_keys_of(step, files) == {"statsPassword"}
    text = step_command_text(step, files, {"statsPassword": "s3cr3t"}, step_dir=str(tmp_path)).script
    assert "@@hawc" not in text and "admin:s3cr3t" in text
    with pytest.raises(KeyError):
        step_command_text(step, files, {}, step_dir=str(tmp_path))


def test_text_travels_readably_and_big_content_fits_stdin() -> None:
    plan = render_cluster(load_values({}).config)
    node = plan.nodes["cluster2"]
    text = step_command_text(node.step("30-content"), node.files).script
    assert "<?php" in text, "text files are here-documents, so previews show readable diffs"
    assert len(text) > 128 * 1024, "the content step is bigger than one command-line argument may be"
    assert len(RUN_AS_ROOT) < 100


# --------------------------------------------------------------------------- secret files: private from the start

WRITERS = ("cat", "base64")  # what the install text writes a file's content with


def spy_writers(bin_dir: Path, log: Path) -> None:
    """`cat` and `base64` that log the mode of the file their stdout is (the install's temporary
    file, just created by the shell's redirection, still empty) before doing their job."""
    bin_dir.mkdir()
    for name in WRITERS:
        real = subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True, text=True, check=True).stdout.strip()
        spy = bin_dir / name
        spy.write_text(f'#!/bin/sh\nif [ -f /proc/$$/fd/1 ]; then echo "$(stat -L -c %a /proc/$$/fd/1) $(readlink /proc/$$/fd/1)" >>{log}; fi\nexec {real} "$@"\n')
        spy.chmod(0o755)


def test_secret_files_never_exist_readable_by_others(tmp_path: Path) -> None:
    """Every step of every repository stack, installed for real under a temporary root: each file
    holding a secret is created (before its content is written) with no group or other bits."""
    from conftest import DEV_STACK, TOPOLOGIES
    from webcluster.render.builder import holds_secret
    from webcluster.stackfile import load_stack_file

    log = tmp_path / "modes.log"
    spy_writers(tmp_path / "bin", log)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    checked = 0
    for stack in (DEV_STACK, *TOPOLOGIES):
        plan = render_cluster(load_stack_file(stack).config)
        for node in plan.nodes.values():
            for step in node.steps:
                root = tmp_path / "root" / stack.stem / node.name
                files = {str(root / p.lstrip("/")): RenderedFile(str(root / p.lstrip("/")), f.content, f.mode) for p, f in node.files.items() if p in step.files}
                secret = {p for p, f in files.items() if holds_secret(f.content)}
                if not secret:
                    continue
                mapped = Step(node=step.node, name=step.name, description="", script="#!/bin/sh\ntrue\n", files=tuple(files))
                values = {k: "not-a-real-secret" for k in secret_keys_of(mapped, files)}
                log.write_text("")
                script = step_command_text(mapped, files, values, step_dir=str(root / "steps")).script
                result = subprocess.run(["/bin/bash", "-s"], input=script.encode(), capture_output=True, timeout=60, env=env)
                assert result.returncode == 0, result.stderr.decode()
                created = {line.split(" ", 1)[1].removesuffix(".hawc-new"): int(line.split(" ", 1)[0], 8) for line in log.read_text().splitlines()}
                for path in secret:
                    assert path in created, f"{stack.stem} {node.name} {step.name}: {path} was not written through cat/base64"
                    assert created[path] & 0o077 == 0, f"{stack.stem} {node.name} {step.name}: {path} existed with mode {created[path]:o} before its content was in"
                    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0, path
                    checked += 1
    assert checked >= 10, "the stacks hold secret files (haproxy.cfg, corosync authkey, passwords, TLS keys)"
