"""What the host needs: every external program the project runs, and the Debian package
that provides it.

One list, read by three consumers so they cannot drift apart:
- `scripts/bootstrap.sh` installs exactly these packages (`python3 -m webcluster.hostdeps packages`);
- `bootstrap.sh --check` (run by the test command) fails naming the package of any program
  that is missing (`python3 -m webcluster.hostdeps check`);
- `tests/test_hostdeps.py` scans the code for the programs it calls and fails on one that is
  not listed here, and maps the agents named in rendered CIBs to their packages.

Standard library only: bootstrap runs it before the Python requirements are installed.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Debian package -> programs of it that the project runs on the host (a name looked up on
# PATH plus sbin, or an absolute path). Grouped by who needs them.
PACKAGES: dict[str, tuple[str, ...]] = {
    # namespaces, links, mounts, loop bricks (lab, checks, e2e)
    "iproute2": ("ip", "tc", "bridge"),
    "mount": ("mount", "umount", "losetup"),
    "util-linux": ("mountpoint", "unshare", "nsenter", "setpriv", "blkid", "flock"),
    "coreutils": ("truncate", "dd", "chown", "chroot", "cat", "mkdir", "rm", "test", "timeout"),
    "bash": ("bash",),
    "dash": ("sh", "/bin/sh"),  # /bin/sh: the VirtualBox scripts' interpreter
    "tar": ("tar",),
    "psmisc": ("fuser",),
    "procps": ("sysctl", "pgrep"),  # the lab runs the directors' rendered 10-sysctl step
    "curl": ("curl",),
    "xfsprogs": ("mkfs.xfs",),
    "e2fsprogs": ("mkfs.ext4",),
    "nftables": ("nft",),
    "iptables": ("iptables",),  # the lab's added latency (NFQUEUE; this kernel has no sch_netem)
    "nmap": ("nmap",),  # the lab's port scan from the client namespace
    "iputils-ping": ("ping",),  # the lab's "nothing inside answers" proof
    "isc-dhcp-client": ("dhclient",),
    "openssl": ("openssl",),
    "tmux": ("tmux",),  # the lab test that drives `lab watch` in a terminal
    # the daemons the lab runs and whose validators `check` calls
    "haproxy": ("haproxy",),
    "keepalived": ("keepalived",),
    "dnsmasq-base": ("dnsmasq",),
    "apache2": ("apache2", "apache2ctl"),
    "libapache2-mod-php": ("/usr/lib/apache2/modules/libphp8.2.so",),
    "php-cli": ("php",),
    "apache2-utils": ("ab",),
    "glusterfs-server": ("glusterd", "gluster"),
    "glusterfs-client": ("glusterfs", "mount.glusterfs"),
    # the Pacemaker stack (lab, crm_verify, the agents the rendered CIB names)
    "corosync": ("corosync", "corosync-cfgtool", "corosync-quorumtool", "corosync-keygen"),
    "corosync-qdevice": ("corosync-qdevice", "corosync-qdevice-tool"),
    "corosync-qnetd": ("corosync-qnetd", "corosync-qnetd-tool", "corosync-qnetd-certutil"),
    "libnss3-tools": ("certutil",),
    "pacemaker": ("pacemakerd",),
    "pacemaker-cli-utils": ("crm_verify", "cibadmin", "crm_resource", "crm_simulate", "crm_attribute", "crm_mon", "stonith_admin", "attrd_updater"),
    "crmsh": ("crm",),
    "resource-agents": ("/usr/lib/ocf/resource.d/heartbeat/IPaddr2", "/usr/lib/ocf/resource.d/heartbeat/ethmonitor"),
    # ethmonitor refuses to start without these (check_binary arping, bc: "not installed")
    "iputils-arping": ("arping",),
    "bc": ("bc",),
    "fence-agents": ("fence_virsh", "fence_vbox"),
    # shell checks of the rendered steps
    "shellcheck": ("shellcheck",),
    # what pulumi-libvirt runs on the machine that runs Pulumi, and the e2e's guests
    "xsltproc": ("xsltproc",),
    "genisoimage": ("mkisofs",),
    "qemu-system-x86": ("qemu-system-x86_64",),
    "qemu-utils": ("qemu-img",),
    "debootstrap": ("debootstrap",),
    "openssh-client": ("ssh", "ssh-keygen"),
    "libarchive-tools": ("bsdtar",),
}

# Prefix of an agent in a CIB -> (directory of its executable, package). A rendered CIB can
# name any agent of these families; the package is what makes its metadata readable.
AGENT_FAMILIES: dict[str, tuple[str, str]] = {
    "stonith:": ("/usr/sbin", "fence-agents"),
    "ocf:heartbeat:": ("/usr/lib/ocf/resource.d/heartbeat", "resource-agents"),
    "ocf:pacemaker:": ("/usr/lib/ocf/resource.d/pacemaker", "pacemaker"),
}

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def package_of(program: str) -> str | None:
    """The package that provides `program` (a bare name or an absolute path), if listed."""
    for package, programs in PACKAGES.items():
        if program in programs or any(Path(p).name == program for p in programs):
            return package
    return None


def agent_executable(agent: str) -> tuple[Path, str]:
    """(executable, package) of a CIB agent such as `stonith:fence_virsh` or `ocf:heartbeat:IPaddr2`."""
    for prefix, (directory, package) in AGENT_FAMILIES.items():
        if agent.startswith(prefix):
            return Path(directory) / agent[len(prefix):], package
    raise ValueError(f"agent {agent!r}: unknown family (known: {', '.join(AGENT_FAMILIES)})")


def is_present(program: str) -> bool:
    if program.startswith("/"):
        return os.access(program, os.X_OK) or Path(program).is_file()
    return shutil.which(program, path=SEARCH_PATH) is not None


def missing() -> dict[str, list[str]]:
    """Package -> its listed programs that this machine lacks."""
    gaps: dict[str, list[str]] = {}
    for package, programs in PACKAGES.items():
        absent = [p for p in programs if not is_present(p)]
        if absent:
            gaps[package] = absent
    return gaps


def main(argv: list[str]) -> int:
    if argv == ["packages"]:
        print("\n".join(PACKAGES))
        return 0
    if argv == ["check"]:
        gaps = missing()
        for package, programs in gaps.items():
            print(f"error: {', '.join(programs)} not found: install the Debian package {package} (scripts/bootstrap.sh does)", file=sys.stderr)
        if not gaps:
            print(f"host programs: all {sum(map(len, PACKAGES.values()))} present ({len(PACKAGES)} packages)")
        return 2 if gaps else 0
    print("usage: python3 -m webcluster.hostdeps packages|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
