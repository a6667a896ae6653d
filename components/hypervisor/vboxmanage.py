"""Shell text for VBoxManage: pure functions, each a create command and its matching delete.

Kept apart from the Pulumi resources so the exact commands can be read and tested on
their own. Every delete tolerates a half-created object, so a replace never gets stuck.
Every create tolerates what an earlier attempt left: pulumi-command saves no state for a
failed create (its delete never runs), so the retry finds a registered VM, a NAT network,
a port-forward rule or a disk already there; and any non-trigger input change re-runs
create in place on the finished object. Each create therefore makes its object what it
should be, from any of those starting points.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence

from webcluster.topology import Node

SATA = "SATA"
OS_TYPE = "Debian_64"
INTERPRETER = ["/bin/sh", "-c"]  # set on every local.Command: pulumi-command's default on Windows is `cmd /C`
UNLOCK_WAIT_S = 60  # how long a VM's session may stay locked after poweroff before its delete fails


@dataclass(frozen=True)
class Script:
    create: str
    delete: str


def sh_path(path: str) -> str:
    """A double-quoted shell word; a leading `~` becomes $HOME (the default base folder uses it)."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    if path == "~" or path.startswith("~/"):
        return '"$HOME' + escaped[1:] + '"'
    return f'"{escaped}"'


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def _lines(*lines: str) -> str:
    return "\n".join(["set -e", *lines]) + "\n"


def vbox_mac(mac: str) -> str:
    return mac.replace(":", "").upper()


def base_image(source: str, qcow2: str, vdi: str) -> Script:
    """Download (or copy) the cloud image once and convert it to VDI, the format every node disk is cloned from.

    The VDI appears only complete (converted beside it, then renamed), so an existing one is
    done: a retry or an in-place re-run skips it. A new source changes this text, which
    replaces the resource (delete first).
    """
    src, q, v = shlex.quote(source), sh_path(qcow2), sh_path(vdi)
    part = sh_path(vdi + ".part")
    fetch = f'case {src} in http://*|https://*) curl -fL --retry 3 -o {q}.part {src} && mv -f {q}.part {q} ;; *) cp -f {src} {q} ;; esac'
    return Script(
        _lines(
            f'mkdir -p "$(dirname {v})"',
            f"if [ ! -s {v} ]; then",
            f"  {fetch}",
            f"  qemu-img convert -O vdi {q} {part}",
            f"  VBoxManage closemedium disk {v} >/dev/null 2>&1 || true  # a stale registration of a removed file",
            f"  mv -f {part} {v}",
            f"  rm -f {q}",
            "fi",
        ),
        _close_medium("disk", vdi),
    )


def _ensure_medium(kind: str, path: str, make: str) -> list[str]:
    """Lines that make the medium at `path` unless a usable one is there (left by an earlier attempt or run).

    A file VirtualBox cannot open (an interrupted write) is removed first, and so is a
    registration whose file is gone; either would make `make` fail with "already exists".
    """
    p = sh_path(path)
    return [
        f'mkdir -p "$(dirname {p})"',
        f"if [ -e {p} ] && ! VBoxManage showmediuminfo {kind} {p} >/dev/null 2>&1; then",
        f"  VBoxManage closemedium {kind} {p} --delete >/dev/null 2>&1 || rm -f {p}",
        "fi",
        f"if [ ! -e {p} ]; then",
        f"  VBoxManage closemedium {kind} {p} >/dev/null 2>&1 || true",
        f"  {make}",
        "fi",
    ]


def clone_disk(base_vdi: str, target: str, size_mib: int) -> Script:
    """A node's root disk, cloned from the base VDI; resized only when its capacity differs (an attached disk cannot be)."""
    t = sh_path(target)
    capacity = f"VBoxManage showmediuminfo disk {t} | sed -n 's/^Capacity: *\\([0-9]*\\) MBytes.*/\\1/p'"
    return Script(
        _lines(
            *_ensure_medium("disk", target, f"VBoxManage clonemedium disk {sh_path(base_vdi)} {t} --format VDI"),
            f'[ "$({capacity})" = {size_mib} ] || VBoxManage modifymedium disk {t} --resize {size_mib}',
        ),
        _close_medium("disk", target),
    )


def blank_disk(target: str, size_mib: int) -> Script:
    t = sh_path(target)
    return Script(_lines(*_ensure_medium("disk", target, f"VBoxManage createmedium disk --filename {t} --size {size_mib} --format VDI")), _close_medium("disk", target))


def seed_iso(target: str) -> Script:
    """Writes the seed ISO from base64 on stdin (built in Python: no ISO tool needed on the host), whole or not at all."""
    t = sh_path(target)
    part = sh_path(target + ".part")
    return Script(_lines(f'mkdir -p "$(dirname {t})"', f"base64 --decode > {part}", f"mv -f {part} {t}"), _close_medium("dvd", target))


def _close_medium(kind: str, path: str) -> str:
    p = sh_path(path)
    return f"VBoxManage closemedium {kind} {p} --delete >/dev/null 2>&1 || rm -f {p}\n"


def nat_network(name: str, cidr: str) -> Script:
    """Set the network to what it should be if it exists (a retry, or an in-place re-run), else add it."""
    n = shlex.quote(name)
    settings = f"--netname {n} --network {shlex.quote(cidr)} --enable --dhcp off"
    return Script(
        _lines(f"VBoxManage natnetwork modify {settings} >/dev/null 2>&1 || VBoxManage natnetwork add {settings}"),
        f"VBoxManage natnetwork remove --netname {n} >/dev/null 2>&1 || true\n",
    )


def port_forward(network: str, rule: str, host_ip: str, host_port: int, guest_ip: str, guest_port: int) -> Script:
    """Replace a rule of that name (VirtualBox refuses to add one twice), so a retry or re-run succeeds."""
    n = shlex.quote(network)
    spec = shlex.quote(f"{rule}:tcp:[{host_ip}]:{host_port}:[{guest_ip}]:{guest_port}")
    delete = f"VBoxManage natnetwork modify --netname {n} --port-forward-4 delete {shlex.quote(rule)} >/dev/null 2>&1 || true"
    return Script(_lines(delete, f"VBoxManage natnetwork modify --netname {n} --port-forward-4 {spec}"), delete + "\n")


def nic_options(index: int, mac: str, attachment: str, network: str) -> list[str]:
    """`attachment` is natnetwork or intnet; VirtualBox numbers NICs from 1."""
    i = index + 1
    kind = "nat-network" if attachment == "natnetwork" else "intnet"
    return [f"--nic{i} {attachment}", f"--{kind}{i} {shlex.quote(network)}", f"--macaddress{i} {vbox_mac(mac)}", f"--cableconnected{i} on"]


def vm(node: Node, base_folder: str, nics: Sequence[list[str]], root: str, data: Sequence[str], seed: str) -> Script:
    """Create, wire and start one headless VM: disks on SATA ports in model order, the seed last."""
    name = shlex.quote(node.name)
    folder = join(base_folder, node.name)
    modify = [f"--memory {node.memory_mib}", f"--cpus {node.vcpus}", "--ioapic on", "--rtcuseutc on", "--boot1 disk", "--boot2 none", "--boot3 none", "--boot4 none"]
    modify += [opt for nic in nics for opt in nic]
    modify += ["--uart1 0x3F8 4", f"--uartmode1 file {sh_path(join(folder, 'serial.log'))}"]
    disks = [root, *data]
    attach = [
        f"VBoxManage storageattach {name} --storagectl {SATA} --port {port} --device 0 --type hdd --medium {sh_path(path)}" for port, path in enumerate(disks)
    ]
    attach.append(f"VBoxManage storageattach {name} --storagectl {SATA} --port {len(disks)} --device 0 --type dvddrive --medium {sh_path(seed)}")
    state = f"VBoxManage showvminfo {name} --machinereadable 2>/dev/null | sed -n 's/^VMState=\"\\(.*\\)\"$/\\1/p'"
    create = _lines(
        f'case "$({state})" in',
        "  running|paused|starting) exit 0 ;;  # started by an earlier run: done",
        "esac",
        *_remove_vm(node.name, folder),  # what a failed attempt left: registered, never started
        f"VBoxManage createvm --name {name} --ostype {OS_TYPE} --basefolder {sh_path(base_folder)} --register",
        f"VBoxManage modifyvm {name} " + " ".join(modify),
        f"VBoxManage storagectl {name} --name {SATA} --add sata --controller IntelAhci --portcount {len(disks) + 1}",
        *attach,
        f"VBoxManage startvm {name} --type headless",
    )
    return Script(create, "\n".join(["set -e", *_remove_vm(node.name, folder)]) + "\n")


def _remove_vm(vm_name: str, folder: str) -> list[str]:
    """Power off and unregister the VM if registered, waiting (bounded) until its session is unlocked; then its folder.

    `unregistervm` fails while the VM's session is still locked, which lasts a moment after
    `poweroff` returns; a fixed sleep was a guess. Its disks are separate resources.
    """
    name = shlex.quote(vm_name)
    return [
        f"if VBoxManage showvminfo {name} >/dev/null 2>&1; then",
        f"  VBoxManage controlvm {name} poweroff >/dev/null 2>&1 || VBoxManage discardstate {name} >/dev/null 2>&1 || true",
        "  tries=0",
        f"  until VBoxManage unregistervm {name} >/dev/null 2>&1 || ! VBoxManage showvminfo {name} >/dev/null 2>&1; do",
        "    tries=$((tries + 1))",
        f'    [ "$tries" -lt {UNLOCK_WAIT_S} ] || {{ echo "VM {vm_name}: session still locked after {UNLOCK_WAIT_S} s, cannot unregister it" >&2; exit 1; }}',
        "    sleep 1",
        "  done",
        "fi",
        f"rm -rf {sh_path(folder)}",
    ]
