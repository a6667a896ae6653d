"""The guest image: Debian 12 from the Debian mirror only, every package the steps install baked in.

Built with debootstrap on the host (the only outside traffic of the whole run), then
written as a partitioned qcow2 disk without loop devices (``mkfs.ext4 -d``). Guests boot
its kernel directly. The package list comes from the rendered steps' ``apt_install``
lines, so the steps' own ``apt_install`` finds everything installed and never downloads.
Images are cached under :data:`IMAGES` by the hash of everything that goes into them.

The one environment difference: Docker Hub is unreachable, so a stand-in for the stack's
container image (Debian's apache2 + libapache2-mod-php, as ``php:apache`` serves
``/var/www/html``) is baked in as a ``docker save`` archive with php:apache's image
config, and a drop-in makes ``docker.service`` load it when Docker starts, so the 10-docker step's ``docker image inspect`` finds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from webcluster.render.plan import ClusterPlan

from .shell import STATE, log, run

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
IMAGES = STATE / "images"
DEBS = STATE / "debs"  # debootstrap's download cache, shared by both rootfs builds
DISK_MIB = 10 * 1024  # as the program's ROOT_DISK_MIB
STANDIN_TAR = "/var/lib/hawc-e2e/php-apache.tar"
BUILD_VERSION = "6"  # bump when the recipe below changes

# What a Debian 12 genericcloud image has that the steps rely on (ifupdown networking, cloud-init, sshd).
BASE_PACKAGES = (
    "linux-image-cloud-amd64", "systemd-sysv", "udev", "cloud-init", "openssh-server", "sudo", "ifupdown",
    "isc-dhcp-client", "iproute2", "iputils-ping", "netbase", "ca-certificates", "less", "procps", "kmod",
    "python3", "dbus", "e2fsprogs", "util-linux", "lsof", "psmisc",
)
STANDIN_PACKAGES = ("apache2", "libapache2-mod-php")
APT_INSTALL = re.compile(r"^\s*apt_install\s+(.+)$", re.MULTILINE)

FILES: dict[str, str] = {
    "/etc/fstab": "LABEL=hawc-root / ext4 errors=remount-ro 0 1\n",
    "/etc/network/interfaces": "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
    "/etc/cloud/cloud.cfg.d/90-hawc-e2e.cfg": "datasource_list: [NoCloud, None]\n",
    "/etc/apt/sources.list": f"deb {MIRROR} {SUITE} main\n",
    "/etc/hostname": "debian\n",
    # Guests boot the kernel and initrd taken out of the image at build time, so an initramfs a
    # step regenerates (20-raid's `update-initramfs -u`) is never booted here. Built for the
    # running guest only (`dep`) it takes about a minute under TCG instead of ~25 (`most`).
    # Written after the packages are installed: the image's own initrd keeps `most`.
    "/etc/initramfs-tools/conf.d/hawc-e2e.conf": "MODULES=dep\n",
    "/etc/systemd/system/docker.service.d/hawc-e2e-image.conf": (
        "# e2e only: Docker Hub is unreachable; import the stand-in image when Docker starts.\n"
        "[Service]\nExecStartPost=/usr/local/sbin/hawc-e2e-load-image\n"
    ),
    "/usr/local/sbin/hawc-e2e-load-image": (
        "#!/bin/sh\n# Load the stand-in php:apache image once (see docs/e2e.md).\nset -e\n"
        "for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done\n"
        'IMAGE=$(cat /var/lib/hawc-e2e/php-apache.name)\n'
        'docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0\n'
        f"docker load -q -i {STANDIN_TAR} >/dev/null\n"
    ),
}
# Left out of the stand-in's layer: nothing a container serving PHP reads (smaller = faster `docker load`).
# Perl is there only for apache2's maintainer scripts (a2enmod ran at build time); Apache and PHP never load it.
STANDIN_EXCLUDED = ("proc", "sys", "dev", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                    "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf", "usr/share/perl", "usr/share/perl5",
                    "usr/lib/x86_64-linux-gnu/perl", "usr/lib/x86_64-linux-gnu/perl5", "usr/lib/x86_64-linux-gnu/perl-base",
                    "usr/share/i18n")
STANDIN_FILES: dict[str, str] = {
    "/usr/local/bin/apache2-foreground": (
        "#!/bin/sh\n# As php:apache's entrypoint: Apache in the foreground, logs to the container's output.\n"
        "# Writes nothing but the pid file: the root filesystem is read-only, the run and lock\n"
        "# directories are tmpfs (cluster.docker.tmpfs), the log links are made at build time.\nset -e\n"
        ". /etc/apache2/envvars\nmkdir -p \"$APACHE_RUN_DIR\" \"$APACHE_LOCK_DIR\"\n"
        "rm -f \"$APACHE_PID_FILE\"\nexec apache2 -DFOREGROUND \"$@\"\n"
    ),
}
# As php:apache's Dockerfile: Apache's log files are links to the container's output, made at
# build time (a read-only root filesystem takes no new file at run time).
STANDIN_LINKS: dict[str, str] = {
    "/var/log/apache2/error.log": "/dev/stderr",
    "/var/log/apache2/access.log": "/dev/stdout",
    "/var/log/apache2/other_vhosts_access.log": "/dev/stdout",
}


@dataclass(frozen=True)
class GuestImage:
    disk: Path  # qcow2, partition 1 is the root filesystem
    kernel: Path
    initrd: Path


def step_packages(plan: ClusterPlan) -> list[str]:
    """Every package an ``apt_install`` line of a rendered step names."""
    names: set[str] = set()
    for step in plan.all_steps():
        for match in APT_INSTALL.finditer(step.script):
            names |= {w for w in match.group(1).split() if re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", w)}
    return sorted(names)


def image_key(packages: Iterable[str], container_image: str) -> str:
    """Content hash of the recipe: packages, suite, mirror, files, stand-in image name."""
    recipe = {"v": BUILD_VERSION, "suite": SUITE, "mirror": MIRROR, "packages": sorted(packages), "files": FILES,
              "standin": [STANDIN_PACKAGES, STANDIN_FILES, STANDIN_LINKS, STANDIN_CONFIG, STANDIN_EXCLUDED, container_image], "mib": DISK_MIB}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def ensure_image(plan: ClusterPlan, container_image: str) -> GuestImage:
    """The cached image for this plan, built first if missing."""
    baked = sorted(set(step_packages(plan)) - set(BASE_PACKAGES))
    packages = sorted(set(BASE_PACKAGES) | set(baked))
    out = IMAGES / image_key(packages, container_image)
    image = GuestImage(out / "root.qcow2", out / "vmlinuz", out / "initrd.img")
    if image.disk.exists() and image.kernel.exists() and image.initrd.exists():
        log(f"guest image cached: {out}")
        return image
    work = STATE / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        log(f"building the guest image ({len(packages)} packages + dependencies) from {MIRROR}")
        rootfs = _debootstrap(work / "rootfs", list(BASE_PACKAGES), baked)
        _write_files(rootfs, FILES)
        (rootfs / "usr/local/sbin/hawc-e2e-load-image").chmod(0o755)
        _configure(rootfs)
        log("building the php:apache stand-in (Debian apache2 + libapache2-mod-php)")
        standin = _debootstrap(work / "standin", list(STANDIN_PACKAGES), [])
        finish_standin(standin)
        (rootfs / "var/lib/hawc-e2e").mkdir(parents=True, exist_ok=True)
        layer = work / "layer.tar"
        excludes = [f"--exclude=./{d}/*" for d in STANDIN_EXCLUDED]
        run(["tar", "-C", str(standin), *excludes, "-cf", str(layer), "."], timeout=600)
        docker_archive(layer, container_image, rootfs / STANDIN_TAR.lstrip("/"))
        (rootfs / "var/lib/hawc-e2e/php-apache.name").write_text(container_image + "\n")
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _kernel_files(rootfs, tmp)
        log("writing the root filesystem and disk image")
        _disk_image(rootfs, work / "disk.raw", tmp / "root.qcow2")
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"guest image ready: {out}")
    return image


# The image settings php:apache has that the cluster relies on (entrypoint, port, graceful stop).
STANDIN_CONFIG = {
    "Cmd": ["apache2-foreground"],
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "ExposedPorts": {"80/tcp": {}},
    "StopSignal": "SIGWINCH",
    "WorkingDir": "/var/www/html",
}


def docker_archive(layer: Path, name: str, out: Path) -> None:
    """A one-layer image in `docker save` format, so `docker load` gives it php:apache's config
    (`docker import --change` cannot set STOPSIGNAL)."""
    with open(layer, "rb") as f:
        digest = hashlib.file_digest(f, "sha256")
    diff_id = f"sha256:{digest.hexdigest()}"
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": STANDIN_CONFIG,
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layer_name = f"{digest.hexdigest()}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": [layer_name]}]).encode()
    with tarfile.open(out, "w") as archive:
        for member, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        archive.add(layer, arcname=layer_name)


def finish_standin(standin: Path) -> None:
    """The stand-in's own files on top of its bootstrap: entrypoint, log links, mod_php enabled."""
    _write_files(standin, STANDIN_FILES)
    (standin / "usr/local/bin/apache2-foreground").chmod(0o755)
    for link, target in STANDIN_LINKS.items():
        path = standin / link.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(target)
    run(["chroot", str(standin), "a2enmod", "-q", "php8.2"], timeout=60, check=False)


def _debootstrap(target: Path, packages: list[str], dormant: list[str]) -> Path:
    """A minbase bootstrap, then apt-get (which resolves alternatives and virtual packages) for
    `packages`, then for `dormant`: installed but with every service they enabled disabled again.

    The steps' packages are baked in only so nothing is downloaded at replay; on a real cloud
    image they are absent, so their daemons must not run on every guest from the first boot
    (Docker, glusterd, haproxy... on all ten guests also cost the CPU TCG does not have).
    The steps enable what their node needs."""
    DEBS.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", f"--cache-dir={DEBS}", "--variant=minbase", SUITE, str(target), MIRROR], timeout=2400)
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no service starts inside the image build\nexit 101\n")
    policy.chmod(0o755)
    archives = target / "var/cache/apt/archives"
    mounts = [(Path("/proc"), target / "proc", ["-t", "proc", "proc"]), (DEBS, archives, ["--bind", str(DEBS)])]
    mounted: list[Path] = []
    try:
        for _, where, how in mounts:
            where.mkdir(parents=True, exist_ok=True)
            run(["mount", *how, str(where)], timeout=30)
            mounted.append(where)
        env = ["env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"]
        run(["chroot", str(target), *env, "apt-get", "update", "-qq"], timeout=600)
        run(["chroot", str(target), *env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], timeout=2400)
        if dormant:
            enabled = _enablement_links(target)
            run(["chroot", str(target), *env, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *dormant], timeout=2400)
            for link in sorted(_enablement_links(target) - enabled):
                (target / link).unlink()
    finally:
        for where in reversed(mounted):
            run(["umount", "-l", str(where)], timeout=30, check=False)
        policy.unlink(missing_ok=True)
    run(["chroot", str(target), "apt-get", "clean"], timeout=60, check=False)
    return target


def _enablement_links(root: Path) -> set[str]:
    """The symlinks under /etc/systemd/system that `systemctl enable` (and package scripts) create."""
    base = root / "etc/systemd/system"
    return {str(p.relative_to(root)) for p in base.rglob("*") if p.is_symlink()} if base.exists() else set()


def _write_files(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def _configure(rootfs: Path) -> None:
    """What a cloud image does at build time: no host identity baked in, serial console, cloud-init first boot."""
    (rootfs / "etc/machine-id").write_text("")
    for key in rootfs.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    run(["chroot", str(rootfs), "systemctl", "enable", "serial-getty@ttyS0.service"], timeout=60, check=False)
    run(["chroot", str(rootfs), "sh", "-c", "rm -rf /var/lib/cloud/* /var/log/*.log; passwd -l root"], timeout=60, check=False)


def _kernel_files(rootfs: Path, out: Path) -> None:
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError("the guest rootfs has no kernel or initrd")
    shutil.copy(kernels[-1], out / "vmlinuz")
    shutil.copy(initrds[-1], out / "initrd.img")


def _mbr(start: int, sectors: int) -> bytes:
    """A DOS partition table with one bootable Linux partition (LBA only; what sfdisk would write)."""
    entry = bytes([0x80, 0xFE, 0xFF, 0xFF, 0x83, 0xFE, 0xFF, 0xFF]) + start.to_bytes(4, "little") + sectors.to_bytes(4, "little")
    return bytes(440) + b"hawc" + bytes(2) + entry + bytes(48) + b"\x55\xaa"


def _disk_image(rootfs: Path, raw: Path, qcow2: Path) -> None:
    """MBR disk, one ext4 partition from 1 MiB filled from `rootfs` (mkfs.ext4 -d: no loop device, no mount)."""
    part = raw.with_suffix(".part")
    run(["truncate", "-s", f"{DISK_MIB - 1}M", str(part)])
    run(["mkfs.ext4", "-q", "-L", "hawc-root", "-d", str(rootfs), str(part)], timeout=1200)
    run(["truncate", "-s", f"{DISK_MIB}M", str(raw)])
    with open(raw, "r+b") as disk:
        disk.write(_mbr(2048, (DISK_MIB - 1) * 2048))
    run(["dd", f"if={part}", f"of={raw}", "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"], timeout=1200)
    part.unlink()
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], timeout=1200)
    raw.unlink()
