"""The fence user's SSH access: what the directors log in with and what the hypervisor host lets them do.

The directors' fence devices log into the hypervisor host with an SSH key (fence-agents'
`identity_file`, a root-only file on each director) rather than a password, and the host's
`authorized_keys` line for that key (a stack output, the public half only) allows nothing but
a forced command: :func:`wrapper_script`, a stand-in for the shell fence_virsh expects that
runs only `virsh list --all` and `virsh domstate|start|destroy` of the director domains,
and only from the directors' addresses. A stolen key can then power the directors off or
on, which the fence agent can anyway, and nothing else.
"""

from __future__ import annotations

import shlex

from ..topology import Topology
from .templating import render

PACEMAKER_DIR = "/etc/ha-web-cluster/pacemaker"
FENCE_KEY = f"{PACEMAKER_DIR}/fence.key"
FENCE_PASSWORD = f"{PACEMAKER_DIR}/fence.password"
WRAPPER_PATH = "/usr/local/sbin/hawc-fence-virsh"  # where docs/pacemaker.md installs the `fenceCommand` output
VIRSH = "/usr/bin/virsh"
CONNECT = "qemu:///system"
# Every restriction OpenSSH knows (`restrict`, the forwardings spelled out for the reader), but a
# terminal: fence_virsh asks for one (`ssh -t`) and gives up without it (real sshd: "PTY allocation
# request failed", ssh exits 255). The forced command still decides what runs on that terminal.
KEY_OPTIONS = ("restrict", "pty", "no-port-forwarding", "no-agent-forwarding", "no-X11-forwarding")


def uses_key(topo: Topology) -> bool:
    return topo.cluster.pacemaker.fence_login == "key"


def secret_file(topo: Topology) -> tuple[str, str]:
    """(path on each director, secret key) of what the fence agent logs in with."""
    return (FENCE_KEY, "fenceSshKey") if uses_key(topo) else (FENCE_PASSWORD, "fencePassword")


def credentials(topo: Topology) -> dict[str, str]:
    """The fence devices' login parameters: a file path, never the secret itself (the CIB holds none)."""
    if uses_key(topo):
        return {"identity_file": FENCE_KEY}
    return {"password_script": f"/bin/cat {FENCE_PASSWORD}"}


def domains(topo: Topology) -> list[str]:
    """The director VMs' names on the hypervisor (the fence devices' plugs), in config order."""
    vms = topo.cluster.pacemaker.fence_vms
    return [vms.get(d.name, d.name) for d in topo.cluster.directors]


def director_addresses(topo: Topology) -> list[str]:
    """Every address a director may reach the hypervisor host from (its SSH source address)."""
    found: list[str] = []
    for d in topo.directors:
        for address in (d.external, d.internal, d.heartbeat):
            if str(address) not in found:
                found.append(str(address))
    return found


def wrapper_script(topo: Topology, virsh: str = VIRSH, connect: str = CONNECT, path: str = WRAPPER_PATH) -> str:
    """The forced command (bash) for the host's fence user; `virsh`/`connect` differ only in the lab's proof."""
    return render(
        "hypervisor/fence-virsh.sh.j2",
        cluster=topo.cluster.pacemaker.cluster_name,
        path=path,
        virsh=shlex.quote(virsh),
        connect=shlex.quote(connect),
        domains=" ".join(shlex.quote(d) for d in domains(topo)),
    )


def forces_command(topo: Topology) -> bool:
    """Whether the host can confine the key to power operations: fence_virsh's commands are known;
    fence_vbox's (VBoxManage on a host of any OS) are not wrapped, its key is only restricted."""
    return topo.cluster.pacemaker.fence_agent(topo.config.hypervisor) == "fence_virsh"


def key_options(topo: Topology, path: str = WRAPPER_PATH, sources: list[str] | None = None) -> str:
    """The options part of the authorized_keys line: from the directors only, and (fence_virsh) the forced command."""
    sources = director_addresses(topo) if sources is None else sources
    options = [*KEY_OPTIONS, f'from="{",".join(sources)}"']
    if forces_command(topo):
        options.append(f'command="{path}"')
    return ",".join(options)


def authorized_keys_line(options: str, public_key: str, comment: str) -> str:
    """One authorized_keys line: options, the key's type and base64 (any comment it had replaced)."""
    kind, blob = public_key.split()[:2]
    return f"{options} {kind} {blob} {comment}"
