"""A node on one Linux machine: a network namespace plus a private mount namespace.

Inside, /etc and /usr/sbin are overlays (host directory below, the node's own files on
top: its rendered configuration, programs only the lab gives it such as the lab's fence
agent), and /run, /var/lib/<daemon> and /var/log/<daemon> are the node's own. So every daemon
reads its rendered files at their real absolute paths, unchanged, and several nodes
run the same daemon side by side without sharing sockets, pid files or state. This
is the one place where a lab path differs from a VM path.

Both the config checks (daemon validators) and the namespace lab use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from . import netns
from .render.plan import RenderedFile

# Directories each node gets privately (tmpfs or a directory in its state dir).
PRIVATE_DIRS = (
    "/run",
    "/var/lib/haproxy",
    "/var/lib/glusterd",
    "/var/log/glusterfs",
    "/var/lib/pacemaker",
    "/var/lib/corosync",
    "/var/log/pacemaker",
    "/var/log/corosync",
    "/var/lib/misc",
    "/var/lib/dhcp",
    "/var/lib/ha-web-cluster",  # the rendered steps' change stamps
    "/var/lib/prometheus",  # node-exporter's textfile directory (the directors' hawc_vip_held)
    "/dev/shm",
)
# haproxy's chroot and the daemons' runtime directories (a package's tmpfiles.d would make them at boot).
RUNTIME_DIRS = ("/run/haproxy", "/run/keepalived", "/run/dnsmasq", "/run/gluster", "/run/corosync-qdevice", "/run/corosync-qnetd", "/run/resource-agents")
# Directories a node sees as the host's with its own files on top (overlayfs).
OVERLAY_DIRS = ("/etc", "/usr/sbin", "/usr/lib/ssl")  # /usr/lib/ssl: Debian's Gluster reads its TLS files there


@dataclass
class Sandbox:
    name: str  # network namespace name
    state: Path  # per-node state directory (overlay upper dir, private dirs)

    @property
    def mount_ns(self) -> Path:
        return self.state / "mnt"

    @property
    def uts_ns(self) -> Path:
        return self.state / "uts"

    @property
    def etc_upper(self) -> Path:
        return self.upper("/etc")

    def upper(self, directory: str) -> Path:
        """The overlay's upper dir of one of OVERLAY_DIRS: the node's own files there."""
        return self.state / f"{directory.strip('/').replace('/', '_')}-upper"

    def exists(self) -> bool:
        return netns.exists(self.name) and _is_nsfs_mount(self.mount_ns)

    # ------------------------------------------------------------------ lifecycle
    def create(self, files: Iterable[RenderedFile], hosts: Optional[str] = None, hostname: Optional[str] = None) -> None:
        """Create the namespaces and lay out the node's files; harmless if it already exists.

        `hostname`: the node's own (a UTS namespace): daemons that look their host name up
        (corosync, Pacemaker, Apache) find it in the node's /etc/hosts instead of asking DNS.
        """
        netns.add_netns(self.name)
        self.state.mkdir(parents=True, exist_ok=True)
        self.write_files(files)
        if hosts is not None:
            self.write_files([RenderedFile("/etc/hosts", hosts)])
        if _is_nsfs_mount(self.mount_ns):
            return
        script = ["set -e"]
        for d in OVERLAY_DIRS:
            upper, work = self.upper(d), self.state / f"{d.strip('/').replace('/', '_')}-work"
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(exist_ok=True)
            script.append(f"mount -t overlay overlay -o lowerdir={d},upperdir={upper},workdir={work} {d}")
        for d in PRIVATE_DIRS:
            src = self.private(d)
            src.mkdir(parents=True, exist_ok=True)
            if d == "/dev/shm":
                src.chmod(0o1777)  # as the tmpfs it stands for: every user's shared memory (Pacemaker's IPC)
            script.append(f"mkdir -p {d} 2>/dev/null || true; mount --bind {src} {d}")
        script.append("mkdir -p " + " ".join(RUNTIME_DIRS))
        if hostname:
            script.append(f"hostname {hostname}")
        self.mount_ns.touch()
        self.uts_ns.touch()
        netns.run(["unshare", f"--mount={self.mount_ns}", f"--uts={self.uts_ns}", "--propagation", "private", "sh", "-c", "\n".join(script)])

    def destroy(self) -> None:
        """Kill what runs inside, drop both namespaces and the state directory."""
        netns.del_netns(self.name)
        for ns in (self.mount_ns, self.uts_ns):
            if _is_nsfs_mount(ns):
                subprocess.run(["umount", "-l", str(ns)], capture_output=True)
        if self.state.exists():
            _umount_below(self.state)
            shutil.rmtree(self.state, ignore_errors=True)

    def private(self, directory: str) -> Path:
        """Where one of PRIVATE_DIRS of the node lives on the host."""
        return self.state / "private" / directory.strip("/").replace("/", "_")

    def clear_runtime(self) -> None:
        """What a reboot does to a node: /run and /dev/shm start empty (stale pid files and IPC
        segments of killed daemons gone), then the runtime directories. Only while nothing runs in it."""
        for d in ("/run", "/dev/shm"):
            for child in self.private(d).iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        self.run(["mkdir", "-p", *RUNTIME_DIRS])

    # ------------------------------------------------------------------ files & processes
    def write_files(self, files: Iterable[RenderedFile]) -> None:
        """Files under an overlaid directory go into its upper dir; others under state/root (see path())."""
        for f in files:
            target = self.path(f.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_private_first(target, f.data, f.mode)

    def path(self, node_path: str) -> Path:
        """Where a node's absolute path lives on the host (for files we lay out ourselves): in an
        overlay's upper dir, in one of the node's private dirs (glusterd's secure-access lives in
        /var/lib/glusterd), else under state/root."""
        for d in OVERLAY_DIRS:
            if node_path.startswith(d + "/"):
                return self.upper(d) / node_path[len(d) + 1:]
        for d in PRIVATE_DIRS:
            if node_path.startswith(d + "/"):
                return self.private(d) / node_path[len(d) + 1:]
        return self.state / "root" / node_path.lstrip("/")

    def argv(self, argv: Sequence[str]) -> list[str]:
        """Run argv inside the node: its network, its private mounts, its host name."""
        uts = [f"--uts={self.uts_ns}"] if self.uts_ns.exists() else []  # nodes made before they had one
        return ["nsenter", f"--net=/run/netns/{self.name}", f"--mount={self.mount_ns}", *uts, "--", *argv]

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 30, input: Optional[str] = None) -> subprocess.CompletedProcess:
        return netns.run(self.argv(argv), check=check, timeout=timeout, input=input)

    def spawn(self, argv: Sequence[str], log: Path) -> subprocess.Popen:
        """Start a long-running daemon inside the node, output to `log`."""
        return spawn(self.argv(argv), log)


def write_private_first(target: Path, data: bytes, mode: int) -> None:
    """Write a file that exists only with `mode`'s owner bits until its content is in (the lab's
    copy of the steps' install): a secret is never readable by others, not for an instant."""
    private = mode & 0o700
    try:  # an existing file keeps its inode (a file in a mounted overlay's upper dir must), made private first
        fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW)
        os.fchmod(fd, private)
        os.ftruncate(fd, 0)
    except FileNotFoundError:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, private)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        os.fchmod(out.fileno(), mode)


def spawn(argv: Sequence[str], log: Path) -> subprocess.Popen:
    """A long-running daemon in a session of its own (its process group can be signalled), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")
    try:
        return subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()


def _is_nsfs_mount(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(path) for line in f)
    except OSError:
        return False


def _umount_below(root: Path) -> None:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (which may hold spaces and parentheses):
    [0] state, [1] parent PID, [11] utime, [12] stime, [19] start time (clock ticks since boot).
    OSError when there is no such process."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
