"""Programs the providers run on the Pulumi machine: missing ones fail the program before any resource.

terraform-provider-libvirt v0.8.1 (bridged by pulumi-libvirt 0.5.4) execs them by these exact
names, from PATH: `xsltproc` for every `xml.xslt` (libvirt/utils_xslt.go, transformXML) and
`mkisofs` for every CloudInitDisk (libvirt/cloudinit_def.go, createISO).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from pulumi_harness import attempt_program, stack_with

from components import preflight
from webcluster.stackfile import load_values

DOMAIN = "libvirt:index/domain:Domain"
NETWORK = "libvirt:index/network:Network"
SEED_DISK = "libvirt:index/cloudInitDisk:CloudInitDisk"


def path_without(tmp_path: Path, *hidden: str) -> str:
    """A PATH holding every program of this machine's PATH except `hidden` (links in one directory)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in reversed(os.environ["PATH"].split(os.pathsep)):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = os.path.join(directory, name)
            if name not in hidden and os.access(target, os.X_OK) and not os.path.isdir(target):
                link = bin_dir / name
                if link.is_symlink():
                    link.unlink()
                link.symlink_to(target)
    return str(bin_dir)


def test_the_provider_needs_what_the_program_declares() -> None:
    """The rule's premise: every network that has addresses and every domain carries an XSLT; every node a CloudInitDisk."""
    rec, error = attempt_program(stack_with("dev"))
    assert error is None
    assert all(d.inputs["xml"]["xslt"] for d in rec.of_type(DOMAIN).values())
    assert any(n.inputs.get("xml", {}).get("xslt") for n in rec.of_type(NETWORK).values())
    assert len(rec.of_type(SEED_DISK)) == len(rec.of_type(DOMAIN)) == 10


@pytest.mark.parametrize(("program", "package"), [("xsltproc", "xsltproc"), ("mkisofs", "genisoimage")])
def test_a_missing_provider_program_fails_before_any_resource(program: str, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shutil.which(program), f"{program} is installed on this machine (scripts/bootstrap.sh)"
    monkeypatch.setenv("PATH", path_without(tmp_path, program))
    assert shutil.which(program) is None
    rec, error = attempt_program(stack_with("dev"))
    assert error is not None
    assert f"{program} not found on PATH" in str(error) and f"package {package}" in str(error), str(error)
    assert rec.resources == {}, "nothing may be declared when the provider could not apply it"


def test_virtualbox_stacks_do_not_need_the_libvirt_programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", path_without(tmp_path, "xsltproc", "mkisofs"))
    rec, error = attempt_program(stack_with("dev", hypervisor="virtualbox"))
    assert error is None and rec.resources


def test_virtualbox_on_windows_is_refused_with_the_reason() -> None:
    """pulumi-command v1.2.1 local.Command runs `cmd /C` on Windows when no interpreter is set
    (provider/pkg/provider/local/commandOutputs.go, run); ours is /bin/sh, absent there."""
    config = load_values({"ha-web-cluster:hypervisor": "virtualbox"}).config
    found = preflight.problems(config, which=lambda _: "/usr/bin/x", platform="win32")
    assert len(found) == 1 and "/bin/sh" in found[0] and "Windows" in found[0]
    assert preflight.problems(config, which=lambda _: "/usr/bin/x", platform="linux") == []
