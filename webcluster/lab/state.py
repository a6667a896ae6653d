"""Names and on-disk state of the lab, so `down` finds everything `up` made, even after a crash."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets as pysecrets
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..sandbox import Sandbox, proc_stat
from ..sshkeys import new_key_pair

LAB_ROOT = Path(os.environ.get("HAWC_LAB_ROOT", "/var/lib/hawc-lab"))
NETNS_PREFIX = "hwl-"  # every lab namespace
LINK_PREFIX = "hwl"  # every lab bridge and veth end in the root namespace
CLIENT = "client"
HYPERVISOR = "hypervisor"  # the hypervisor host's addresses (external gateway, libvirt host address): adminNetworks' `host`
NETWORKS = ("external", "internal", "heartbeat")
BRIDGES = {"external": "hwl-ext", "internal": "hwl-int", "heartbeat": "hwl-hb"}


def netns_name(node: str) -> str:
    return f"{NETNS_PREFIX}{node}"[:32]


def sandbox(node: str) -> Sandbox:
    return Sandbox(netns_name(node), LAB_ROOT / "nodes" / node)


def outside_link(node_index: int, nic_index: int) -> str:
    """Root-namespace end of a node's NIC (interface names are limited to 15 characters)."""
    return f"{LINK_PREFIX}{node_index:03d}n{nic_index}"


@dataclass
class Process:
    node: str
    role: str  # dnsmasq, haproxy, keepalived, container:<name>, glusterd, ...
    pid: int
    argv: list[str]
    log: str
    # The PID's start time (clock ticks since boot, /proc/PID/stat): a PID the kernel has given to
    # another process since (pid_max is 32768 here; a CI run wraps it) has another. 0: not known.
    started: int = 0


@dataclass
class LabState:
    stack: str
    stack_file: str
    client_address: str = ""
    processes: list[Process] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)  # host mountpoint dirs we had to create
    loop_devices: list[str] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=dict)  # node -> outside link names, in NIC order
    secrets_file: str = ""
    complete: bool = False  # set when `up` finished

    @staticmethod
    def path() -> Path:
        return LAB_ROOT / "state.json"

    def save(self) -> None:
        LAB_ROOT.mkdir(parents=True, exist_ok=True)
        tmp = self.path().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(self.path())

    @classmethod
    def load(cls) -> Optional["LabState"]:
        try:
            raw = json.loads(cls.path().read_text())
        except (OSError, ValueError):
            return None
        raw["processes"] = [Process(**p) for p in raw.get("processes", [])]
        return cls(**raw)

    def find(self, node: str, role: str) -> Optional[Process]:
        for p in self.processes:
            if p.node == node and p.role == role:
                return p
        return None

    def replace(self, proc: Process) -> None:
        self.forget(proc.node, proc.role)
        self.processes.append(proc)

    def forget(self, node: str, role: str) -> None:
        self.processes = [p for p in self.processes if not (p.node == node and p.role == role)]


def lab_secrets() -> dict[str, str]:
    """Generated once per lab and kept root-only; the lab never prints them. A lab made before a
    secret existed gets the missing ones added, the others kept."""
    path = LAB_ROOT / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    missing = {k: make() for k, make in _secret_makers().items() if k not in values}
    if not missing:
        return values
    values.update(missing)
    LAB_ROOT.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    return values


def _secret_makers() -> dict[str, Callable[[], str]]:
    """How each lab secret is made; only the missing ones are (a key pair costs an ssh-keygen run)."""
    alphabet = string.ascii_letters + string.digits

    def word(n: int) -> Callable[[], str]:
        return lambda: "".join(pysecrets.choice(alphabet) for _ in range(n))

    return {
        "statsPassword": word(20),
        "vrrpAuthPass": word(8),
        "haclusterPassword": word(20),
        "corosyncKey": lambda: pysecrets.token_urlsafe(128),
        "fencePassword": word(20),
        "fenceSshKey": lambda: new_key_pair("hawc-lab-fence")[0],
        "qdeviceSeed": word(32),
        "sshPublicKey": lambda: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdhbGtpbmctbGFiLW5vLXNzaC1oZXJlAAAAAAAAAA lab",
    }


# --------------------------------------------------------------------------- faults in force


def faults_path() -> Path:
    return LAB_ROOT / "faults.json"


def faults_in_force() -> dict[str, dict[str, Any]]:
    """What `lab` verbs (and the scenarios, through them) broke and did not undo yet, oldest first.

    Kept beside state.json rather than in it: a verb run from another shell must not overwrite
    the daemons' PIDs a running command holds in memory, nor lose its record when that command saves."""
    try:
        return json.loads(faults_path().read_text())
    except (OSError, ValueError):
        return {}


def record_fault(key: str, fault: Optional[dict[str, Any]]) -> None:
    """Record a fault under key (its words, e.g. `cut standby1 internal`), or forget it (None)."""
    LAB_ROOT.mkdir(parents=True, exist_ok=True)
    with open(LAB_ROOT / "faults.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # read-modify-write: two verbs at once keep both records
        faults = faults_in_force()
        faults.pop(key, None)
        if fault is not None:
            faults[key] = fault
        tmp = faults_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(faults, indent=2))
        tmp.replace(faults_path())


class LabBusy(RuntimeError):
    pass


LOCK_HOLDER = "HAWC_LAB_LOCK_HOLDER"  # environment: PID of the process holding the lab lock


def _held_by_ancestor() -> bool:
    """Whether a parent of ours holds the lab lock (a lab command run by a lab test, say): it waits for us."""
    holder = os.environ.get(LOCK_HOLDER, "")
    pid = os.getpid()
    for _ in range(64):  # bounded walk up the process tree
        if str(pid) == holder:
            return True
        try:
            pid = int(proc_stat(pid)[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid <= 1:
            return False
    return False


@contextlib.contextmanager
def exclusive(timeout: float = 1800.0, poll: float = 0.5):
    """One lab user at a time (up, down, test, bench, the verbs, the lab tests): others wait, bounded.
    A process whose ancestor holds the lock runs on (the holder waits for its child)."""
    if _held_by_ancestor():
        yield
        return
    LAB_ROOT.mkdir(parents=True, exist_ok=True)
    with open(LAB_ROOT / "lock", "w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabBusy(f"another lab command held {LAB_ROOT / 'lock'} for {timeout:.0f} s") from None
                time.sleep(poll)
        previous = os.environ.get(LOCK_HOLDER)
        os.environ[LOCK_HOLDER] = str(os.getpid())
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(LOCK_HOLDER, None)
            else:
                os.environ[LOCK_HOLDER] = previous
            fcntl.flock(f, fcntl.LOCK_UN)
