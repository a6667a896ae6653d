"""QEMU guests: disks, NoCloud seed, process, links and snapshots, one directory per guest.

Every guest is a ``qemu-system-x86_64`` (TCG: nested KVM hangs here) started inside the
namespace, with the program's NICs in order (its MACs, one tap per NIC on the NIC's
network bridge) and its data disks as extra virtio disks after the root disk. The root
disk is a copy-on-write overlay on the cached image; the seed ISO holds the cloud-init
documents the program hands its ``CloudInitDisk``. A guest's PID is kept on disk so
``down`` stops exactly the QEMU processes this tool started, even after a crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from components.hypervisor.iso9660 import build_iso

from ..netns import exec_argv
from . import network
from .image import GuestImage
from .qmp import Qmp, QmpError
from .recording import Guest
from .shell import STATE, run

GUESTS = STATE / "guests"
SNAPSHOT = "e2e-provisioned"
# Written when `e2e change` starts changing the running guests: they are no longer the plan's
# baseline, so the next `e2e change` restores them from the snapshots first. `e2e run` removes it.
CHANGED_MARK = STATE / "guests-changed"
# QEMU's TCG translation cache defaults to 1 GiB per guest: ten guests OOM-killed one on a
# 24 GiB host (measured RSS: guest RAM + 1.2 GB). 256 MiB is plenty for a server guest.
TCG_CACHE_MIB = 256


@dataclass(frozen=True)
class GuestFiles:
    dir: Path

    @property
    def root(self) -> Path:
        return self.dir / "root.qcow2"

    def data(self, index: int) -> Path:
        return self.dir / f"data{index}.qcow2"

    @property
    def seed(self) -> Path:
        return self.dir / "seed.iso"

    @property
    def qmp(self) -> Path:
        return self.dir / "qmp.sock"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    @property
    def pid(self) -> Path:
        return self.dir / "qemu.pid"

    @property
    def snapshot_key(self) -> Path:
        return self.dir / "snapshot.key"


def files_of(name: str) -> GuestFiles:
    return GuestFiles(GUESTS / name)


def prepare(guest: Guest, image: GuestImage) -> GuestFiles:
    """Fresh disks and seed (what pulumi-libvirt's Volume and CloudInitDisk would create)."""
    f = files_of(guest.name)
    shutil.rmtree(f.dir, ignore_errors=True)
    f.dir.mkdir(parents=True)
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk), str(f.root)], timeout=60)
    for i, mib in enumerate(guest.data_disks_mib, start=1):
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(f.data(i)), f"{mib}M"], timeout=60)
    f.seed.write_bytes(build_iso(guest.cloud_init))
    return f


def start(index: int, guest: Guest, image: GuestImage, restore: Optional[str] = None) -> int:
    """Start the guest's QEMU in the namespace (from a saved snapshot if `restore`); returns its PID."""
    f = files_of(guest.name)
    argv = [
        "qemu-system-x86_64", "-name", f"hwe-{guest.name}", "-machine", "pc", "-accel", f"tcg,tb-size={TCG_CACHE_MIB}", "-cpu", "qemu64",
        "-smp", str(guest.vcpus), "-m", str(guest.memory_mib), "-display", "none", "-monitor", "none",
        "-serial", f"file:{f.console}", "-qmp", f"unix:{f.qmp},server=on,wait=off",
        "-kernel", str(image.kernel), "-initrd", str(image.initrd),
        "-append", f"root=/dev/vda1 ro console=ttyS0,115200 panic=10 {KERNEL_DIAGNOSTICS}",
        "-drive", f"file={f.root},if=virtio,format=qcow2,cache=unsafe",
    ]
    for i, _ in enumerate(guest.data_disks_mib, start=1):
        argv += ["-drive", f"file={f.data(i)},if=virtio,format=qcow2,cache=unsafe"]
    argv += ["-drive", f"file={f.seed},if=ide,media=cdrom,readonly=on"]
    for n, nic in enumerate(guest.nics):
        tap = network.tap_name(index, n)
        network.add_tap(tap, nic.network)
        argv += ["-netdev", f"tap,id=nic{n},ifname={tap},script=no,downscript=no", "-device", f"virtio-net-pci,netdev=nic{n},mac={nic.mac}{_pci_address(nic.pci_slot)}"]
    if restore:
        argv += ["-loadvm", restore]
    f.qmp.unlink(missing_ok=True)
    log_file = open(f.dir / "qemu.log", "ab")
    proc = subprocess.Popen(exec_argv(network.NETNS, argv), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    f.pid.write_text(str(proc.pid))
    deadline = time.monotonic() + 120
    while not f.qmp.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{guest.name}: QEMU exited ({proc.returncode}): {(f.dir / 'qemu.log').read_text()[-1500:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{guest.name}: QEMU did not open its QMP socket")
        time.sleep(0.2)
    return proc.pid


# SysRq from QMP even though Debian's kernel.sysrq leaves the task dumps off: a guest that stops
# answering SSH explains itself on its serial console.
KERNEL_DIAGNOSTICS = "sysrq_always_enabled"
SYSRQ_DUMPS = ("w", "m")  # tasks blocked in uninterruptible sleep; memory


def dump_kernel_state(name: str) -> None:
    """Ask the guest's kernel (SysRq, sent as keys) to print its blocked tasks and memory on the console."""
    with Qmp(files_of(name).qmp) as q:
        for key in SYSRQ_DUMPS:
            q.execute("send-key", keys=[{"type": "qcode", "data": k} for k in ("alt", "sysrq", key)])


def _pci_address(slot: Optional[int]) -> str:
    """QEMU's form of the domain XML's <address type='pci' bus='0x00' slot=.../>."""
    return "" if slot is None else f",addr=0x{slot:02x}"


def alive(name: str) -> bool:
    pid = _pid(name)
    return pid is not None and _is_qemu(pid)


def set_link(name: str, nic_index: int, up: bool) -> None:
    """Plug or unplug one NIC (the guest sees carrier loss, as with a pulled cable)."""
    with Qmp(files_of(name).qmp) as q:
        q.execute("set_link", name=f"nic{nic_index}", up=up)


def save_snapshot(name: str, tag: str, key: str) -> None:
    """Internal qcow2 snapshot of RAM, devices and every writable disk."""
    f = files_of(name)
    with Qmp(f.qmp) as q:
        out = q.hmp(f"savevm {tag}")
    if out.strip():
        raise QmpError(f"{name}: savevm: {out.strip()}")
    f.snapshot_key.write_text(key)


def snapshot_matches(name: str, key: str) -> bool:
    f = files_of(name)
    return f.snapshot_key.exists() and f.snapshot_key.read_text() == key and f.root.exists()


def power_off(name: str, timeout: float = 20) -> None:
    """Pull the plug: QMP quit, then SIGKILL to the recorded PID if it lingers."""
    pid = _pid(name)
    if pid is None or not _is_qemu(pid):
        return
    try:
        with Qmp(files_of(name).qmp, timeout=5) as q:
            q.execute("quit")
    except (OSError, QmpError):
        pass
    deadline = time.monotonic() + timeout
    while _is_qemu(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _is_qemu(pid):
        os.kill(pid, signal.SIGKILL)
    files_of(name).pid.unlink(missing_ok=True)


def started() -> list[str]:
    """The guests this tool started (a recorded PID), by name."""
    return [d.name for d in sorted(GUESTS.iterdir()) if (d / "qemu.pid").exists()] if GUESTS.exists() else []


def stop_all() -> list[str]:
    """Power off every guest this tool started (by recorded PID); returns their names."""
    stopped = started()
    for name in stopped:
        power_off(name)
    return stopped


def _pid(name: str) -> Optional[int]:
    try:
        return int(files_of(name).pid.read_text())
    except (OSError, ValueError):
        return None


def _is_qemu(pid: int) -> bool:
    """True if `pid` is still a QEMU we started (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"qemu-system" in cmdline and b"hwe-" in cmdline
