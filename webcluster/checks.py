"""Run the daemons' own config checkers on a rendered plan, node by node, for real.

A template can render a file that looks right and that the daemon still refuses
(an unresolvable server name, an interface the node does not have). So every
node's files, placeholders filled with dummy values, are laid out in a throwaway
:class:`~webcluster.sandbox.Sandbox` with the node's NICs, and each daemon checks
its file at its real path, as it would on the VM. Where a checker is blind
(dnsmasq never reads its reservation files, nothing reads cloud-init before boot)
a structural check compares the file with the model.

What checks which file is the table :data:`RULES`: one row per (file matcher,
checker); adding a checker is one line.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import ipaddress
import itertools
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

import yaml

from . import netns, pki
from .model import StackConfig
from .render import render_cluster
from .render import https, placeholders
from .render.backend import CONTAINERS_DIR
from .cib import crm_load, empty_quorate_cib
from .render.plan import ClusterPlan, NodePlan, RenderedFile
from .render.storage import RAID_CONF
from .sandbox import Sandbox
from .topology import Node, Topology

PREFIX = "hawc-chk-"  # every namespace and link we create starts with it
TIMEOUT_S = 60


class Outcome(NamedTuple):
    ok: bool
    output: str


@dataclass(frozen=True)
class CheckResult:
    node: str
    file: str  # absolute path on the node, or steps/<name>.sh, cloud-init/<name>
    checker: str
    ok: bool
    output: str


# --------------------------------------------------------------------------- a node under check


class NodeEnv:
    """One node under check: its files laid out on the host, and on first need its sandbox with the model's NICs."""

    def __init__(self, topo: Topology, node: Node, files: list[RenderedFile], sandbox: Sandbox, link_names: Iterator[str]):
        self.topo = topo
        self.node = node
        self.files = {f.path: f for f in files}
        self.sandbox = sandbox
        self.sandbox.write_files(files)
        self._link_names = link_names
        self._links: list[str] = []
        self._created = False
        self._sandbox_error: Optional[str] = None

    def host_path(self, f: RenderedFile) -> Path:
        """Where the node's file lies on the host (host-side checkers read it there)."""
        return self.sandbox.path(f.path)

    def scratch(self, name: str) -> Path:
        """A private work directory for one checker (copies, logs)."""
        path = self.sandbox.state / "check" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def text(self, f: RenderedFile) -> str:
        return f.data.decode()

    def run_inside(self, argv: Sequence[str]) -> Outcome:
        """Run a checker inside the node: its /etc, its /etc/hosts, its NICs and addresses."""
        if not self._created:
            self._created = True  # close() cleans up even after a half-done creation
            try:
                self._create_sandbox()
            except (netns.CommandError, OSError, subprocess.SubprocessError) as exc:
                self._sandbox_error = f"could not create the node's sandbox (needs root and network namespaces): {exc}"
        if self._sandbox_error:
            return Outcome(False, self._sandbox_error)
        return run_command(self.sandbox.argv(argv))

    def _create_sandbox(self) -> None:
        self.sandbox.create([])
        for nic in self.node.nics:
            outside = next(self._link_names)
            self._links.append(outside)
            netns.veth_into(self.sandbox.name, nic.name, outside, mac=nic.mac)
            if nic.address is not None and nic.bond is None:
                netns.add_address(self.sandbox.name, nic.name, f"{nic.address}/{nic.prefix}")

    def close(self) -> None:
        """Remove the links, the namespaces and the laid-out files."""
        for link in self._links:
            netns.del_link(link)
        self.sandbox.destroy()


def run_command(argv: Sequence[str], env: Optional[dict[str, str]] = None) -> Outcome:
    """A checker's verdict is its exit code; its output explains a failure."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except FileNotFoundError:
        return Outcome(False, f"{argv[0]} is not installed")
    except subprocess.TimeoutExpired:
        return Outcome(False, f"{argv[0]} did not finish within {TIMEOUT_S} s")
    output = "\n".join(s.strip() for s in (proc.stdout, proc.stderr) if s.strip())
    return Outcome(proc.returncode == 0, output or f"exit {proc.returncode}")


# --------------------------------------------------------------------------- matchers and runners

Matcher = Callable[[RenderedFile], bool]
Runner = Callable[[NodeEnv, RenderedFile], Outcome]


def path_is(path: str) -> Matcher:
    return lambda f: f.path == path


def glob(pattern: str) -> Matcher:
    return lambda f: fnmatch.fnmatch(f.path, pattern)


def any_of(*matchers: Matcher) -> Matcher:
    return lambda f: any(m(f) for m in matchers)


SHELL_SHEBANG = re.compile(rb"^#!\s*(/bin/(ba)?sh|/usr/bin/env +(ba)?sh)\s")


def is_shell_script(f: RenderedFile) -> bool:
    """Executable files with a shell shebang (step scripts are laid out that way too)."""
    return bool(f.mode & 0o111) and SHELL_SHEBANG.match(f.data) is not None


PYTHON_SHEBANG = re.compile(rb"^#!\s*/usr/bin/python3(\s|$)")


def is_python_script(f: RenderedFile) -> bool:
    """Executable files with the system python3 shebang (the directors' backend check)."""
    return bool(f.mode & 0o111) and PYTHON_SHEBANG.match(f.data) is not None


def inside(*argv: str) -> Runner:
    """A daemon's checker run inside the node; `{path}` is the file's path on the node."""
    return lambda env, f: env.run_inside([a.replace("{path}", f.path) for a in argv])


def on_host(*argv: str) -> Runner:
    """A checker that needs nothing of the node but the file; `{file}` is where it lies on the host."""
    return lambda env, f: run_command([a.replace("{file}", str(env.host_path(f))) for a in argv])


# --------------------------------------------------------------------------- corosync and pacemaker


def corosync_test(env: NodeEnv, f: RenderedFile) -> Outcome:
    """corosync -t reads only where a ring0_addr is local, and reports to the config's log targets:
    check a copy that logs to stderr and to a file in the check's own directory."""
    work = env.scratch("corosync")
    conf = work / "corosync.conf"
    conf.write_text(with_check_logging(env.text(f), work / "corosync.log"))
    return env.run_inside(["corosync", "-t", "-c", str(conf)])


def with_check_logging(text: str, logfile: Path) -> str:
    """The corosync config with its top-level `logging { }` section replaced by one for the check."""
    out, depth, skipping = [], 0, False
    for line in text.splitlines():
        if depth == 0 and re.match(r"\s*logging\s*\{", line):
            skipping = True
        if not skipping:
            out.append(line)
        depth += line.count("{") - line.count("}")
        if skipping and depth == 0:
            skipping = False
    out += ["logging {", "\tto_stderr: yes", "\tto_syslog: no", "\tto_logfile: yes", f"\tlogfile: {logfile}", "}"]
    return "\n".join(out) + "\n"


def crm_load_and_verify(env: NodeEnv, f: RenderedFile) -> Outcome:
    """A crmsh configuration: load it into an empty offline CIB, then crm_verify that CIB."""
    cib = empty_quorate_cib(env.scratch("crm") / "cib.xml")
    errors = crm_load(cib, env.host_path(f))
    if errors:
        return Outcome(False, "\n".join(errors))
    verify = run_command(["crm_verify", "-x", str(cib)])
    return Outcome(verify.ok, verify.output or "crm loaded, crm_verify clean")


# --------------------------------------------------------------------------- structural checks


MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def expected_reservations(topo: Topology) -> set[tuple[str, str, str]]:
    """(MAC, address, name) of every node that gets its address from dnsmasq."""
    return {(nic.mac, str(nic.address), n.name) for n in topo.dhcp_nodes for nic in n.nics if nic.dhcp}


def reservation_problems(rows: list[tuple[str, ...]], expected: set[tuple[str, ...]], topo: Topology) -> list[str]:
    """Malformed MACs, addresses outside the internal network, duplicates, and differences from the model."""
    internal = topo.network_of("internal")
    rows = [(row[0].lower(), *row[1:]) for row in rows]  # dnsmasq takes MACs in either case
    problems = []
    for row in rows:
        mac, address = row[0], row[1]
        if not MAC.match(mac):
            problems.append(f"{','.join(row)}: {mac!r} is not a MAC address")
        try:
            if ipaddress.IPv4Address(address) not in internal:
                problems.append(f"{','.join(row)}: {address} is not inside the internal network {internal}")
        except ValueError:
            problems.append(f"{','.join(row)}: {address!r} is not an IPv4 address")
    for column, what in ((0, "MAC"), (1, "address")):
        values = [r[column] for r in rows]
        problems += [f"{what} {v} is reserved twice" for v in sorted(set(values)) if values.count(v) > 1]
    found = set(rows)
    problems += [f"missing reservation {','.join(r)}" for r in sorted(expected - found)]
    problems += [f"reservation {','.join(r)} is not in the model" for r in sorted(found - expected)]
    return problems


def parse_rows(text: str, separator: Optional[str], width: int) -> tuple[list[tuple[str, ...]], list[str]]:
    """Non-comment lines split into `width` fields; lines of another shape are problems."""
    rows, problems = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = tuple(p.strip() for p in line.split(separator))
        if len(fields) != width:
            problems.append(f"{line!r}: expected {width} fields")
        else:
            rows.append(fields)
    return rows, problems


def dhcp_hostsfile(env: NodeEnv, f: RenderedFile) -> Outcome:
    """dnsmasq --test never opens dhcp-hostsfile: compare its MAC,IP,name lines with the model."""
    rows, problems = parse_rows(env.text(f), ",", 3)
    problems += reservation_problems(rows, expected_reservations(env.topo), env.topo)
    return Outcome(not problems, "\n".join(problems) or f"{len(rows)} reservations match the model")


def ethers(env: NodeEnv, f: RenderedFile) -> Outcome:
    """/etc/ethers (read-ethers) must hold the same MAC/IP pairs as the reservations."""
    rows, problems = parse_rows(env.text(f), None, 2)
    expected = {(mac, address) for mac, address, _ in expected_reservations(env.topo)}
    problems += reservation_problems(rows, expected, env.topo)
    return Outcome(not problems, "\n".join(problems) or f"{len(rows)} MAC/IP pairs match the model")


def sysctl_keys(env: NodeEnv, f: RenderedFile) -> Outcome:
    """Every key names a kernel setting (read from /proc/sys, never written: the check must not change the host)."""
    rows, problems = parse_rows(env.text(f), "=", 2)
    missing = [key for key, _ in rows if not Path("/proc/sys", key.replace(".", "/")).exists()]
    problems += [f"{key}: no such kernel setting" for key in missing]
    return Outcome(not problems, "\n".join(problems) or f"{len(rows)} known settings")


def cloud_init_yaml(env: NodeEnv, f: RenderedFile) -> Outcome:
    """cloud-init reads these only at first boot: they must be YAML mappings naming this node."""
    text = env.text(f)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return Outcome(False, f"not valid YAML: {exc}")
    if not isinstance(doc, dict):
        return Outcome(False, "not a YAML mapping")
    name = env.node.name
    if f.path.endswith("user-data") and (not text.startswith("#cloud-config\n") or doc.get("hostname") != name):
        return Outcome(False, f"user-data must start with #cloud-config and set hostname: {name}")
    if f.path.endswith("meta-data") and doc.get("local-hostname") != name:
        return Outcome(False, f"meta-data must set local-hostname: {name}")
    return Outcome(True, "valid YAML")


def network_config(env: NodeEnv, f: RenderedFile) -> Outcome:
    """Every NIC of the model is in network-config with its name, MAC and address (bond: the first slave only)."""
    try:
        doc = yaml.safe_load(env.text(f)) or {}
    except yaml.YAMLError as exc:
        return Outcome(False, f"not valid YAML: {exc}")
    nics = {n.name: n for n in env.node.nics}
    problems = [] if doc.get("version") == 2 else ["version must be 2"]
    for name, eth in (doc.get("ethernets") or {}).items():
        nic = nics.get(name)
        if nic is None:
            problems.append(f"{name}: the model has no such NIC on {env.node.name}")
            continue
        if (eth.get("match") or {}).get("macaddress") != nic.mac or eth.get("set-name") != name:
            problems.append(f"{name}: must match MAC {nic.mac} and set-name {name}")
        first_slave = nic.bond is None or nic.name == env.node.nics[0].name
        want = [] if nic.dhcp or not first_slave else [f"{nic.address}/{nic.prefix}"]
        if list(eth.get("addresses") or []) != want or bool(eth.get("dhcp4")) != nic.dhcp:
            problems.append(f"{name}: expected {'dhcp4' if nic.dhcp else want}")
        for route in eth.get("routes") or []:
            # Debian 12's cloud-init (22.4) fails its whole network stage on `to: default`.
            try:
                ipaddress.IPv4Network(str(route.get("to")))
            except ValueError:
                problems.append(f"{name}: route destination {route.get('to')!r} is not a CIDR (cloud-init 22.4 rejects it)")
    missing = set(nics) - set(doc.get("ethernets") or {})
    if missing:
        problems.append(f"NICs not named by MAC: {', '.join(sorted(missing))}")
    return Outcome(not problems, "\n".join(problems) or "NICs match the model")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Rule:
    checker: str
    matches: Matcher
    run: Runner


RULES: tuple[Rule, ...] = (
    Rule("haproxy -c", path_is("/etc/haproxy/haproxy.cfg"), inside("haproxy", "-c", "-f", "{path}")),
    Rule("keepalived -t", path_is("/etc/keepalived/keepalived.conf"), inside("keepalived", "-t", "-f", "{path}")),
    Rule("dnsmasq --test", path_is("/etc/dnsmasq.conf"), inside("dnsmasq", "--test", "-C", "{path}")),
    Rule("nft -c", path_is("/etc/nftables.conf"), inside("nft", "-c", "-f", "{path}")),
    Rule("corosync -t", path_is("/etc/corosync/corosync.conf"), corosync_test),
    Rule("crm_verify", glob("*cib*.xml"), on_host("crm_verify", "-x", "{file}")),
    Rule("crm_verify", glob("*.crm"), crm_load_and_verify),
    Rule("php -l", glob("*.php"), on_host("php", "-l", "{file}")),
    # Container definitions and raid.conf are not scripts, but hawc-containers and the 20-raid step source them.
    Rule("bash -n", any_of(is_shell_script, glob(f"{CONTAINERS_DIR}/*.env"), path_is(RAID_CONF)), on_host("bash", "-n", "{file}")),
    Rule("python3 compile", is_python_script, on_host(sys.executable, "-I", "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", "{file}")),
    Rule("shellcheck", is_shell_script, on_host("shellcheck", "--severity=warning", "{file}")),
    Rule("dhcp reservations", path_is("/etc/dnsmasq.hosts.conf"), dhcp_hostsfile),
    Rule("dhcp reservations", path_is("/etc/ethers"), ethers),
    Rule("sysctl keys", glob("/etc/sysctl.d/*.conf"), sysctl_keys),
    Rule("cloud-init yaml", glob("cloud-init/*"), cloud_init_yaml),
    Rule("cloud-init nics", path_is("cloud-init/network-config"), network_config),
)


# --------------------------------------------------------------------------- running a plan


@functools.lru_cache(maxsize=1)
def dummy_https_pem() -> str:
    """A throwaway certificate and key in HAProxy's `crt` format: `haproxy -c` loads the file."""
    with tempfile.TemporaryDirectory(prefix="hawc-check-pki-") as tmp:
        m = pki.ensure_server(Path(tmp) / "pki.json", ["192.0.2.1"], ["check.invalid"], "hawc-check throwaway CA")
    return https.pem_bundle(m[pki.SERVER_CERT] + m[pki.CA_KEY], m[pki.SERVER_KEY])


def dummy_value(key: str) -> str:
    """A well-formed stand-in for a secret or a Pulumi-computed value (never a real one)."""
    if key == https.PEM_KEY:
        return dummy_https_pem()
    digest = hashlib.sha256(f"hawc-check/{key}".encode()).hexdigest()
    special = {
        "vrrpAuthPass": digest[:8],  # keepalived takes 8 characters at most
        "corosyncKey": base64.b64encode(hashlib.sha512(digest.encode()).digest() * 2).decode(),  # 128 bytes
        "sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdhd2MtY2hlY2stZHVtbXkta2V5LW5vdC1yZWFsLTAwMA hawc-check",
    }
    return special.get(key, f"chk{digest[:16]}")


def checked_files(plan: ClusterPlan, node: NodePlan) -> list[RenderedFile]:
    """The node's files, its step scripts and its cloud-init documents (laid out as `render` writes them),
    with every placeholder filled with a dummy value."""
    files = list(node.files.values())
    files += [RenderedFile(f"steps/{s.name}.sh", s.script, 0o755) for s in node.steps]
    files += [RenderedFile(f"cloud-init/{name}", text) for name, text in plan.cloud_init.get(node.name, {}).items()]
    return [_filled(f) for f in files]


def _filled(f: RenderedFile) -> RenderedFile:
    if isinstance(f.content, bytes):
        return f
    values = {key: dummy_value(key) for key in placeholders.keys_in(f.content)}
    return RenderedFile(f.path, placeholders.fill(f.content, values), f.mode)


def check_node(env: NodeEnv, rules: Sequence[Rule] = RULES) -> list[CheckResult]:
    """Every rule on every matching file of one node, in file order."""
    results = []
    for f in sorted(env.files.values(), key=lambda f: f.path):
        for rule in rules:
            if rule.matches(f):
                outcome = rule.run(env, f)
                results.append(CheckResult(env.node.name, f.path, rule.checker, outcome.ok, outcome.output))
    return results


def check_plan(plan: ClusterPlan, topo: Topology, nodes: Optional[Iterable[str]] = None, rules: Sequence[Rule] = RULES) -> list[CheckResult]:
    """Check every node of a rendered plan (or only `nodes`); each node's sandbox is removed right after its checks.

    Names carry a random tag, so concurrent runs never touch each other's namespaces or links;
    a link name is the prefix, the tag and a counter (15 characters, the kernel's limit).
    """
    tag = secrets.token_hex(2)[:3]
    links = (f"{PREFIX}{tag}{i:03x}" for i in itertools.count())
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{tag}-"))
    results: list[CheckResult] = []
    try:
        for name in nodes or plan.nodes:
            sandbox = Sandbox(f"{PREFIX}{tag}-{name}", base / name)
            env = NodeEnv(topo, topo.node(name), checked_files(plan, plan.nodes[name]), sandbox, links)
            try:
                results += check_node(env, rules)
            finally:
                env.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


def check_config(config: StackConfig, nodes: Optional[Iterable[str]] = None) -> list[CheckResult]:
    """Render a validated config and check it."""
    return check_plan(render_cluster(config), Topology(config), nodes)


def format_table(results: Sequence[CheckResult], verbose: bool = False) -> str:
    """One row per check; the output of every failure (of every check with `verbose`) below the table."""
    rows = [("node", "file", "checker", "result")] + [(r.node, r.file, r.checker, "ok" if r.ok else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3] for row in rows]
    for r in results:
        if verbose or not r.ok:
            lines.append(f"\n{r.node} {r.file} ({r.checker}):")
            lines += [f"    {line}" for line in r.output.splitlines()]
    failed = sum(not r.ok for r in results)
    nodes = len({r.node for r in results})
    lines.append(f"\n{len(results)} checks on {nodes} nodes: {failed} failed")
    return "\n".join(lines)
