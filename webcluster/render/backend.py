"""Docker hosts: Docker, the shared docroot mounts, the web content and the containers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..model import Backend, Docker
from ..topology import Topology
from . import gluster_tls
from .builder import NodeBuilder
from .content import add_content_files
from .plan import Step, StepRef

CONTAINERS_DIR = "/etc/ha-web-cluster/containers"
RECONCILE = "/usr/local/sbin/hawc-containers"
ROTATION = "/usr/local/sbin/hawc-rotation"  # drain / idle / up / ready of this host's servers on every director
FSTAB = "/etc/ha-web-cluster/fstab"
NAS_CONTENT_STEP = "40-content"  # the NFS docroot, written on the NAS (the export is read-only)
BACKEND_CONTENT_STEP = "30-content"  # the Gluster docroots, through the first Docker host's mounts
# A release left is removed no sooner than this (minutes): PHP's realpath cache (realpath_cache_ttl,
# 120 s by default) may still resolve a path through the old `current` that long.
RELEASE_GRACE_MIN = 5
CONTAINER_DOCROOT_MOUNT = "/var/www"  # the docroot's parent; /var/www/html is its symlink html -> current


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    options: str


def mounts(topo: Topology, backend: Backend) -> list[Mount]:
    """Only the storages this host's containers use."""
    c = topo.cluster
    used = {k.docroot for k in backend.containers}
    out = []
    if "nfs" in used:
        out.append(Mount(f"{c.nas.name}:/", c.docker.nfs_mountpoint, "nfs", c.nas.mount_options))
    servers = [s.name for s in c.gluster.servers]
    for v in c.gluster.volumes:
        if v.name in used:
            backup = ":".join(servers[1:])
            cache = c.gluster.fuse_cache_s
            opts = "defaults,_netdev" + (f",backup-volfile-servers={backup}" if backup else "") + f",attribute-timeout={cache},entry-timeout={cache},negative-timeout={cache}"
            out.append(Mount(f"{servers[0]}:/{v.name}", v.mountpoint, "glusterfs", opts))
    return out


def container_env_path(name: str) -> str:
    return f"{CONTAINERS_DIR}/{name}.env"


def hardening_options(d: Docker) -> list[str]:
    """`docker run` options of every web container: least privilege and resource limits.
    They go into each container's definition, so changing one replaces the containers."""
    opts = ["--cap-drop=ALL", *(f"--cap-add={cap}" for cap in sorted(set(d.cap_add)))]
    if d.no_new_privileges:
        opts.append("--security-opt=no-new-privileges")
    opts += [f"--memory={d.memory_mib}m", f"--memory-swap={d.memory_mib}m", f"--cpus={d.cpus_arg}", f"--pids-limit={d.pids_limit}"]
    if d.read_only:
        opts.append("--read-only")
    opts += [f"--tmpfs={path}:rw,nosuid,nodev,noexec,size={d.tmpfs_mib}m" for path in d.tmpfs]
    return opts


def add_backend(b: NodeBuilder, backend: Backend, storage_ready: dict[str, StepRef]) -> tuple[Step, Step]:
    """Docker and the mounts; returns (mounts step, docker step)."""
    topo = b.topo
    docker = b.step("10-docker", "Docker engine and the web image", "steps/backend/10-docker.sh.j2", image=topo.cluster.docker.image)
    ms = mounts(topo, backend)
    fstab = b.file(FSTAB, "backend/fstab.j2", node=backend, mounts=ms)
    wait = [storage_ready[k] for k in sorted({k.docroot for k in backend.containers}) if k in storage_ready]
    tls = gluster_tls.add_files(b)  # the Gluster client's key and certificate, before it mounts
    mount_step = b.step("20-mounts", "NFS and Gluster docroot mounts", "steps/backend/20-mounts.sh.j2", files=[fstab, *tls], after=wait)
    return mount_step, docker


def add_content(b: NodeBuilder, name: str, docroots: list[str], after: StepRef, mountpoint: Optional[str] = None) -> Step:
    """Publish the web pages into shared docroots (once, from one node): the NFS docroot on the
    NAS itself (the Docker hosts mount it read-only), the Gluster ones from a Docker host.
    `mountpoint`: refuse to write unless it is mounted."""
    files = add_content_files(b)
    keep = b.topo.cluster.docker.keep_releases
    return b.step(name, "web content into " + ", ".join(docroots) + " (a new release, one switch)", "steps/common/content.sh.j2", files=files, after=[after],
                  docroots=docroots, sources=files, mountpoint=mountpoint, keep=keep, grace_min=RELEASE_GRACE_MIN)


def add_containers(b: NodeBuilder, backend: Backend, after: list[StepRef]) -> Step:
    """40-containers: the definitions and scripts, and the first creation on every host at once
    (a host with none of our containers serves nothing, so it has nothing to drain)."""
    topo = b.topo
    files = []
    for k in backend.containers:
        files.append(b.file(container_env_path(k.name), "backend/container.env.j2", c=k, host=backend.name, bind=backend.address, image=topo.cluster.docker.image, docroot=topo.docroot(k.docroot), docroot_mount=CONTAINER_DOCROOT_MOUNT, options=hardening_options(topo.cluster.docker)))
    script = b.file(RECONCILE, "backend/hawc-containers.j2", mode=0o755, definitions=CONTAINERS_DIR)
    files += [script, add_rotation(b, backend)]
    return b.step(
        "40-containers",
        f"{len(backend.containers)} web containers, created at once where none exists yet",
        "steps/backend/40-containers.sh.j2",
        files=files,
        after=after,
        reconcile=RECONCILE,
    )


def add_roll(b: NodeBuilder, backend: Backend, containers: Step, after: list[StepRef]) -> Step:
    """45-roll: any change of the containers, one Docker host at a time (the callers chain these
    steps), each host drained on every director first. It installs the same files as 40-containers,
    so it re-runs exactly when they change, once every host has them."""
    return b.step(
        "45-roll",
        f"{len(backend.containers)} web containers changed one Docker host at a time",
        "steps/backend/45-roll.sh.j2",
        files=containers.files,
        after=[containers.ref, *after],
        reconcile=RECONCILE,
        rotation=ROTATION,
    )


def rotation_servers(topo: Topology, backend: Backend) -> list[str]:
    """`backend/server` of every HAProxy server this host's containers are, in service order."""
    return [f"{topo.backend_section(s)}/{c.name}" for s in topo.cluster.haproxy.services for b, c in topo.service_members(s) if b.name == backend.name]


# How many times hawc-rotation asks a director that does not answer within directorAnswerS before
# it skips it. Once was not enough: in the e2e a CPU-starved standby missed the 3 s bound for
# `health down` and `state ready`, was skipped, and kept this host's servers in maintenance.
# A director that is off refuses or times out every try: it costs tries x directorAnswerS a phase.
ROTATION_ANSWER_TRIES = 3


def add_rotation(b: NodeBuilder, backend: Backend) -> str:
    """The script that takes this host's servers out of every director's rotation and back (docs/rolling.md)."""
    c = b.topo.cluster
    d = c.docker
    return b.file(ROTATION, "backend/hawc-rotation.j2", mode=0o755, directors=[str(x.internal) for x in c.directors],
                  servers=rotation_servers(b.topo, backend), port=c.haproxy.stats.runtime_api_port,
                  drain_timeout_s=d.drain_timeout_s, ready_timeout_s=d.ready_timeout_s, answer_s=d.director_answer_s, answer_tries=ROTATION_ANSWER_TRIES)
