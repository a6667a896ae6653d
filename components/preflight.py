"""What the providers run on the machine that runs Pulumi, checked before any resource is declared.

pulumi-libvirt (terraform-provider-libvirt v0.8.1) does part of its work with local programs,
looked up on PATH by exactly these names:
- every `xml.xslt` (our networks and domains all have one) is applied by running `xsltproc`
  (libvirt/utils_xslt.go, `transformXML`: exec.Command("xsltproc", "--nomkdir", "--nonet", ...));
- every `CloudInitDisk` is built by running `mkisofs` (libvirt/cloudinit_def.go, `createISO`:
  exec.Command("mkisofs", "-output", ..., "-volid", "cidata", ...)); Debian's genisoimage has it.
Without them `pulumi up` fails half-way, after the pool and the volumes exist. Checking here
makes `pulumi preview` fail at once, naming the package (webcluster.hostdeps).

The VirtualBox platform runs its VBoxManage scripts through /bin/sh (local.Command's
interpreter, set explicitly): a Windows host has none (pulumi-command would run `cmd /C`).
"""

from __future__ import annotations

import shutil
import sys
from typing import Callable, Optional

import pulumi

from webcluster.hostdeps import package_of
from webcluster.model import Hypervisor, StackConfig

# Programs a provider runs locally, by hypervisor; the name is what the provider execs.
PROVIDER_PROGRAMS: dict[Hypervisor, tuple[str, ...]] = {
    Hypervisor.libvirt: ("xsltproc", "mkisofs"),
}
SHELL = "/bin/sh"


def problems(config: StackConfig, which: Callable[[str], Optional[str]] = shutil.which, platform: str = sys.platform) -> list[str]:
    """One line per missing program (with the Debian package to install) or unsupported host."""
    out = []
    for program in PROVIDER_PROGRAMS.get(config.hypervisor, ()):
        if which(program) is None:
            package = package_of(program)
            hint = f"install the Debian/Ubuntu package {package}" if package else "install it"
            out.append(f"{program} not found on PATH: the {config.hypervisor.value} provider runs it on this machine; {hint}")
    if config.hypervisor == Hypervisor.virtualbox and platform == "win32":
        out.append(f"hypervisor virtualbox runs its VBoxManage scripts with {SHELL}: run Pulumi on Linux or macOS (Windows, native or WSL, is not supported)")
    return out


def check(config: StackConfig) -> None:
    """Raise (before any resource exists) when this machine cannot run what the stack's provider runs."""
    found = problems(config)
    if found:
        raise pulumi.RunError(f"this machine cannot deploy stack {pulumi.get_stack()}:\n" + "\n".join(f"  error: {p}" for p in found))
