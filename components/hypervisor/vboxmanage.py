"""Shell text for VBoxManage: pure functions, each a create command and its matching delete.

Kept apart from the Pulumi resources so the exact commands can be read and tested on
their own. Every delete tolerates a half-created object, so a replace never gets stuck.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence

from webcluster.topology import Node

SATA = "SATA"
OS_TYPE = "Debian_64"


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
    """Download (or copy) the cloud image once and convert it to VDI, the format every node disk is cloned from."""
    src, q, v = shlex.quote(source), sh_path(qcow2), sh_path(vdi)
    fetch = f'case {src} in http://*|https://*) curl -fL --retry 3 -o {q}.part {src} && mv -f {q}.part {q} ;; *) cp -f {src} {q} ;; esac'
    return Script(
        _lines(f"mkdir -p \"$(dirname {v})\"", fetch, f"rm -f {v}", f"qemu-img convert -O vdi {q} {v}", f"rm -f {q}"),
        _close_medium("disk", vdi),
    )


def clone_disk(base_vdi: str, target: str, size_mib: int) -> Script:
    t = sh_path(target)
    return Script(
        _lines(f"mkdir -p \"$(dirname {t})\"", f"VBoxManage clonemedium disk {sh_path(base_vdi)} {t} --format VDI", f"VBoxManage modifymedium disk {t} --resize {size_mib}"),
        _close_medium("disk", target),
    )


def blank_disk(target: str, size_mib: int) -> Script:
    t = sh_path(target)
    return Script(_lines(f"mkdir -p \"$(dirname {t})\"", f"VBoxManage createmedium disk --filename {t} --size {size_mib} --format VDI"), _close_medium("disk", target))


def seed_iso(target: str) -> Script:
    """Writes the seed ISO from base64 on stdin (built in Python: no ISO tool needed on the host)."""
    t = sh_path(target)
    return Script(_lines(f"mkdir -p \"$(dirname {t})\"", f"base64 --decode > {t}"), _close_medium("dvd", target))


def _close_medium(kind: str, path: str) -> str:
    p = sh_path(path)
    return f"VBoxManage closemedium {kind} {p} --delete >/dev/null 2>&1 || rm -f {p}\n"


def nat_network(name: str, cidr: str) -> Script:
    n = shlex.quote(name)
    return Script(
        _lines(f"VBoxManage natnetwork add --netname {n} --network {shlex.quote(cidr)} --enable --dhcp off"),
        f"VBoxManage natnetwork remove --netname {n} >/dev/null 2>&1 || true\n",
    )


def port_forward(network: str, rule: str, host_ip: str, host_port: int, guest_ip: str, guest_port: int) -> Script:
    n = shlex.quote(network)
    spec = shlex.quote(f"{rule}:tcp:[{host_ip}]:{host_port}:[{guest_ip}]:{guest_port}")
    return Script(
        _lines(f"VBoxManage natnetwork modify --netname {n} --port-forward-4 {spec}"),
        f"VBoxManage natnetwork modify --netname {n} --port-forward-4 delete {shlex.quote(rule)} >/dev/null 2>&1 || true\n",
    )


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
    create = _lines(
        f"VBoxManage createvm --name {name} --ostype {OS_TYPE} --basefolder {sh_path(base_folder)} --register",
        f"VBoxManage modifyvm {name} " + " ".join(modify),
        f"VBoxManage storagectl {name} --name {SATA} --add sata --controller IntelAhci --portcount {len(disks) + 1}",
        *attach,
        f"VBoxManage startvm {name} --type headless",
    )
    delete = (
        f"VBoxManage controlvm {name} poweroff >/dev/null 2>&1 || true\n"
        "sleep 2\n"
        f"VBoxManage unregistervm {name} >/dev/null 2>&1 || true\n"  # its disks are separate resources
        f"rm -rf {sh_path(folder)}\n"
    )
    return Script(create, delete)
