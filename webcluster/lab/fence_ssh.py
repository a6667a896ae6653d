"""Proof of the fence user's SSH access: the real fence_virsh, with the key, against the rendered
forced command (webcluster.render.fence) on a stand-in hypervisor host.

The host side is a directory: the rendered wrapper (bound to a fake `virsh` that keeps the
domains' power state in a JSON file and logs every call), the authorized_keys line as the
stack output renders it, and the fence key pair. Two ways to log in:

- :func:`standin_ssh`, given to fence_virsh as its `ssh_path`: does what sshd does with an
  authorized_keys line once the client proved its key (the key of `-i` must be the line's;
  the line's `command=` runs through `sh -c`, with SSH_ORIGINAL_COMMAND and SSH_CLIENT set).
  Runs anywhere: it proves the wrapper speaks fence_virsh's protocol and refuses the rest.
- :class:`SshdHost`, real OpenSSH in a network namespace (package openssh-server), reached by
  the real ssh client from a second namespace holding a director's address, so sshd itself
  applies `from=`, `restrict` and `command=`.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .. import netns
from ..render import fence
from ..sshkeys import new_key_pair
from ..topology import Topology

FAKE_VIRSH = r'''#!/usr/bin/python3
"""The lab's virsh: the domains' power in a JSON file, every call logged (a stand-in libvirt host)."""
import json, sys
from pathlib import Path
STATE, LOG = Path(sys.argv[0] + ".state.json"), Path(sys.argv[0] + ".log")
args = sys.argv[1:]
with LOG.open("a") as log:
    log.write(" ".join(args) + "\n")
if args[:1] == ["--connect"]:
    args = args[2:]
domains = json.loads(STATE.read_text())
if args == ["list", "--all"]:
    print(" Id   Name             State\n-----------------------------------")
    for i, (name, power) in enumerate(sorted(domains.items())):
        print(f" {i + 1 if power == 'running' else '-':<4} {name:<16} {power}")
    sys.exit(0)
if len(args) == 2 and args[0] in ("domstate", "start", "destroy"):
    verb, name = args
    if name not in domains:
        print(f"error: failed to get domain '{name}'", file=sys.stderr)
        sys.exit(1)
    if verb == "domstate":
        print(domains[name] + "\n")
        sys.exit(0)
    domains[name] = "running" if verb == "start" else "shut off"
    STATE.write_text(json.dumps(domains))
    print(f"Domain '{name}' {'started' if verb == 'start' else 'destroyed'}\n")
    sys.exit(0)
print(f"error: unknown command: {' '.join(args)}", file=sys.stderr)
sys.exit(1)
'''

STANDIN_SSH = r'''#!/usr/bin/python3
"""Stand-in for `ssh` plus the server's sshd, for fence_virsh's ssh_path: the key given with -i must be
the one in {keys}; that line's command= then runs as sshd runs a forced command (through `sh -c`,
SSH_ORIGINAL_COMMAND = the client's command, SSH_CLIENT = {client})."""
import os, re, shlex, subprocess, sys
args = sys.argv[1:]
key, command = None, []
i = 0
while i < len(args):
    a = args[i]
    if a in ("-i", "-p", "-o"):
        key = args[i + 1] if a == "-i" else key
        i += 2
    elif a.startswith("-"):
        i += 1
    elif "@" in a and not command:
        i += 1
    else:
        command, i = args[i:], len(args)
public = subprocess.run(["ssh-keygen", "-y", "-f", key], capture_output=True, text=True).stdout.split() if key else []
for line in open({keys!r}):
    m = re.match(r'^(\S*command="([^"]*)"\S*) (\S+) (\S+)', line)
    if m and public[:2] == [m.group(3), m.group(4)]:
        env = dict(os.environ, SSH_ORIGINAL_COMMAND=" ".join(command), SSH_CLIENT={client!r} + " 50022 22")
        if not command:
            env.pop("SSH_ORIGINAL_COMMAND")
        os.execve("/bin/sh", ["sh", "-c", m.group(2)], env)
print("Permission denied (publickey).", file=sys.stderr)
sys.exit(255)
'''


@dataclass(frozen=True)
class FenceHost:
    """A stand-in hypervisor host's files, and the director's side of the key."""

    root: Path
    identity_file: Path  # the director's fence.key
    authorized_keys: Path
    wrapper: Path
    virsh: Path
    options: str  # of the authorized_keys line

    def power(self) -> dict[str, str]:
        return json.loads(Path(str(self.virsh) + ".state.json").read_text())

    def virsh_calls(self) -> list[str]:
        log = Path(str(self.virsh) + ".log")
        return log.read_text().splitlines() if log.exists() else []


def make_host(topo: Topology, root: Path, others: Sequence[str] = ("not-a-director",)) -> FenceHost:
    """Render the host side for `topo`: every director domain running, plus domains that are not directors'."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # sshd's privilege-separated child reads authorized_keys
    virsh = root / "virsh"
    _write(virsh, FAKE_VIRSH, 0o755)
    _write(Path(str(virsh) + ".state.json"), json.dumps({d: "running" for d in [*fence.domains(topo), *others]}), 0o644)
    wrapper = root / "hawc-fence-virsh"
    _write(wrapper, fence.wrapper_script(topo, virsh=str(virsh), connect="test:///lab", path=str(wrapper)), 0o755)
    private, public = new_key_pair("hawc-lab-fence")
    identity = root / "director" / "fence.key"
    identity.parent.mkdir(mode=0o700, exist_ok=True)
    _write(identity, private, 0o600)
    options = fence.key_options(topo, path=str(wrapper))
    keys = root / "authorized_keys"
    _write(keys, fence.authorized_keys_line(options, public, "hawc-fence@lab") + "\n", 0o600)
    return FenceHost(root, identity, keys, wrapper, virsh, options)


def standin_ssh(host: FenceHost, client: str) -> Path:
    """The stand-in ssh+sshd for `host`, as if connecting from address `client`."""
    path = host.root / "standin-ssh"
    _write(path, STANDIN_SSH.format(keys=str(host.authorized_keys), client=client), 0o755)
    return path


def fence_virsh(ip: str, identity: Path, plug: str, action: str, ssh_path: Optional[Path] = None, user: str = "root",
                netns: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real fence agent, with the key (never a password), as pacemaker-fenced runs it."""
    argv = ["fence_virsh", f"--ip={ip}", f"--username={user}", f"--identity-file={identity}", f"--plug={plug}", f"--action={action}",
            "--login-timeout=10", "--shell-timeout=10", "--power-wait=0"]
    if ssh_path is not None:
        argv.append(f"--ssh-path={ssh_path}")
    else:
        argv.append("--ssh-options=-t -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR "
                    "'/bin/bash -c \"PS1=\\\\[EXPECT\\\\]# /bin/bash --noprofile --norc\"'")
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


SSHD = Path("/usr/sbin/sshd")
SSHD_CONFIG = """# The lab's stand-in hypervisor host: key logins only, authorized_keys of the fence proof
ListenAddress {address}
HostKey {root}/host_key
AuthorizedKeysFile {keys}
PidFile {root}/sshd.pid
PermitRootLogin forced-commands-only
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
"""


def sshd_usable() -> Optional[str]:
    """Why real sshd cannot run here (None when it can): the package openssh-server makes both."""
    if not SSHD.is_file():
        return f"{SSHD} missing (Debian package openssh-server)"
    try:
        pwd.getpwnam("sshd")
    except KeyError:
        return "no privilege-separation user sshd (Debian package openssh-server)"
    return None


@dataclass(frozen=True)
class SshdHost:
    host_ns: str  # sshd listens here, on the fence host's address
    director_ns: str  # holds a director's address (allowed by from=) and a stranger's (not allowed)
    address: str
    director: str
    stranger: str


@contextmanager
def sshd_host(host: FenceHost, address: str, director: str, stranger: str, prefix: str = "hawcfence") -> Iterator[SshdHost]:
    """Real OpenSSH on `address` in one namespace, a director's namespace wired to it; both removed after."""
    tag = os.getpid() % 10000
    h, d = f"{prefix}h{tag}", f"{prefix}d{tag}"
    made_run_dir = not Path("/run/sshd").exists()  # sshd's privilege-separation directory
    proc: Optional[subprocess.Popen] = None
    try:
        for ns in (h, d):
            netns.del_netns(ns)
            netns.add_netns(ns)
        netns.ip("link", "add", "fh0", "netns", h, "type", "veth", "peer", "name", "fd0", "netns", d)
        netns.ip("-n", h, "link", "set", "fh0", "up")
        netns.ip("-n", d, "link", "set", "fd0", "up")
        netns.add_address(h, "fh0", f"{address}/24")
        for a in (director, stranger):
            netns.add_address(d, "fd0", f"{a}/24")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.root / "host_key")], check=True, capture_output=True, timeout=30)
        conf = host.root / "sshd_config"
        _write(conf, SSHD_CONFIG.format(address=address, root=host.root, keys=host.authorized_keys), 0o600)
        if made_run_dir:
            Path("/run/sshd").mkdir(mode=0o755)
        log = open(host.root / "sshd.log", "w")
        proc = subprocess.Popen(netns.exec_argv(h, [str(SSHD), "-D", "-e", "-f", str(conf)]), stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):  # bounded: 10 s
            if netns.run(netns.exec_argv(h, ["ss", "-Hltn", "sport = :22"]), check=False).stdout.strip():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(host.root / 'sshd.log').read_text()}")
            time.sleep(0.1)
        else:
            raise RuntimeError("sshd did not listen within 10 s")
        yield SshdHost(h, d, address, director, stranger)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in (h, d):
            netns.del_netns(ns)
        if made_run_dir:
            shutil.rmtree("/run/sshd", ignore_errors=True)


def real_ssh(sshd: SshdHost, identity: Path, *command: str, source: Optional[str] = None, options: Sequence[str] = (),
             timeout: float = 30) -> subprocess.CompletedProcess:
    """The real ssh client from the director's namespace (from `source`, default the director's address)."""
    argv = ["ssh", "-i", str(identity), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-b", source or sshd.director, *options, f"root@{sshd.address}", *command]
    return subprocess.run(netns.exec_argv(sshd.director_ns, argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _write(path: Path, text: str, mode: int) -> None:
    """Created with its final mode (the key is never readable by others)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, mode)
