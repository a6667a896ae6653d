"""The daemons' own checkers accept every rendered stack, and catch a broken file."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import DEV_STACK, TOPOLOGIES, run_cli
from webcluster import cli, netns
from webcluster.checks import PREFIX, CheckResult, Rule, check_plan, checked_files, format_table, path_is
from webcluster.render import ClusterPlan, render_cluster
from webcluster.render.plan import RenderedFile
from webcluster.stackfile import LoadedStack, load_stack_file
from webcluster.topology import Topology

STACKS = [DEV_STACK, *TOPOLOGIES]
# Checkers every keepalived stack must have run, so a rule that silently stopped matching fails the test.
EXPECTED_CHECKERS = {
    "haproxy -c", "keepalived -t", "dnsmasq --test", "nft -c", "php -l", "bash -n", "shellcheck",
    "dhcp reservations", "sysctl keys", "cloud-init yaml", "cloud-init nics",
}  # fmt: skip


def ours() -> set[str]:
    """Namespaces and links with the checks' prefix that exist now."""
    return {n for n in netns.list_netns() + netns.links_with_prefix(PREFIX) if n.startswith(PREFIX)}


def failures(results: list[CheckResult]) -> list[str]:
    return [f"{r.node} {r.file} ({r.checker}): {r.output}" for r in results if not r.ok]


@pytest.mark.parametrize("stack_file", STACKS, ids=[p.stem for p in STACKS])
def test_every_validator_accepts_the_stack(stack_file: Path) -> None:
    config = load_stack_file(stack_file).config
    plan, topo = render_cluster(config), Topology(config)
    before = ours()
    results = check_plan(plan, topo)
    assert failures(results) == []
    assert {r.checker for r in results} >= EXPECTED_CHECKERS
    for director in topo.directors:
        assert {r.checker for r in results if r.node == director.name} >= {"haproxy -c", "keepalived -t", "dnsmasq --test", "nft -c"}
    linted = [r for r in results if r.checker == "shellcheck" and r.file.startswith("steps/")]
    assert len(linted) == len(plan.all_steps())
    assert ours() <= before, "namespaces or links left behind"


# --------------------------------------------------------------------------- broken files are caught

Edit = Callable[[str], Optional[str]]  # new content, or None to remove the file


def edited(plan: ClusterPlan, node: str, path: str, edit: Edit) -> ClusterPlan:
    """A copy of the plan with one file, step script or cloud-init document of one node changed."""
    plan = copy.deepcopy(plan)
    n = plan.nodes[node]
    if path.startswith("steps/"):
        i = [f"steps/{s.name}.sh" for s in n.steps].index(path)
        n.steps[i] = dataclasses.replace(n.steps[i], script=_changed(n.steps[i].script, edit))
    elif path.startswith("cloud-init/"):
        name = path.removeprefix("cloud-init/")
        plan.cloud_init[node][name] = _changed(plan.cloud_init[node][name], edit)
    elif edit(str(n.files[path].content)) is None:
        del n.files[path]
    else:
        n.files[path] = dataclasses.replace(n.files[path], content=_changed(str(n.files[path].content), edit))
    return plan


def _changed(old: str, edit: Edit) -> str:
    new = edit(old)
    assert new is not None and new != old, "the edit must change the file"
    return new


def sub(old: str, new: str) -> Edit:
    return lambda text: text.replace(old, new, 1)


def append(line: str) -> Edit:
    return lambda text: text + line + "\n"


SYNTAX = ("bash -n", "shellcheck")  # both see a shell syntax error
BROKEN = {  # id: (node, file edited, edit, file that must fail (default: the edited one), checkers that fail, fragment of the first's output)
    "haproxy server name unknown": ("cluster1", "/etc/haproxy/haproxy.cfg", sub("cluster2:8081", "cluster9:8081"), None, "haproxy -c", "could not resolve address 'cluster9'"),
    "hosts file lacks a backend": ("standby1", "/etc/hosts", sub("10.0.100.4\tcluster4.cluster cluster4 server3\n", ""), "/etc/haproxy/haproxy.cfg", "haproxy -c", "'cluster4'"),
    "keepalived interface missing": ("cluster1", "/etc/keepalived/keepalived.conf", sub("interface enp0s9", "interface enp0s10"), None, "keepalived -t", "Non-existent interface"),
    "keepalived check script missing": ("standby2", "/etc/keepalived/check_haproxy.sh", lambda _: None, "/etc/keepalived/keepalived.conf", "keepalived -t", "not found"),
    "dnsmasq option misspelt": ("cluster1", "/etc/dnsmasq.conf", append("dhcp-rnage=10.0.100.2,10.0.100.9"), None, "dnsmasq --test", "bad option"),
    "nft statement misspelt": ("cluster1", "/etc/nftables.conf", sub("masquerade", "masquerad"), None, "nft -c", "syntax error"),
    "reservation with a wrong MAC": ("cluster1", "/etc/dnsmasq.hosts.conf", lambda t: t.replace(t[:17], "52:54:00:00:00:01", 1), None, "dhcp reservations", "missing reservation"),
    "ethers address outside": ("cluster1", "/etc/ethers", sub("10.0.100.3", "10.0.101.3"), None, "dhcp reservations", "not inside the internal network"),
    "sysctl key unknown": ("cluster1", "/etc/sysctl.d/60-ha-web-cluster.conf", append("net.ipv4.ip_forwarding = 1"), None, "sysctl keys", "net.ipv4.ip_forwarding"),
    "php syntax error": ("cluster2", "/etc/ha-web-cluster/www/pi.php", append("<?php $x = ; ?>"), None, "php -l", "syntax error"),
    "step script syntax error": ("nas", "steps/20-raid.sh", sub("\nfi\n", "\n"), None, SYNTAX, "syntax error"),
    "step script shellcheck warning": ("gluster1", "steps/30-volumes.sh", append("echo \"$undefined_variable\""), None, "shellcheck", "SC2154"),
    "reconcile script syntax error": ("cluster3", "/usr/local/sbin/hawc-containers", sub("done\n", ""), None, SYNTAX, "syntax error"),
    "container definition unquoted": ("cluster4", "/etc/ha-web-cluster/containers/cluster41p.env", append("DOCROOT=/nfs/raid/www (old)"), None, "bash -n", "syntax error"),
    "user-data not YAML": ("gluster2", "cloud-init/user-data", append("users: [unclosed"), None, "cloud-init yaml", "not valid YAML"),
    "network-config wrong MAC": ("cluster3", "cloud-init/network-config", lambda t: t.replace(t.split('macaddress: "')[1][:17], "52:54:00:00:00:02"), None, "cloud-init nics", "must match MAC"),
    "network-config route cloud-init 22.4 rejects": ("cluster1", "cloud-init/network-config", sub("to: 0.0.0.0/0", "to: default"), None, "cloud-init nics", "not a CIDR"),
}  # fmt: skip


@pytest.mark.parametrize("node, path, edit, failing, checkers, fragment", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_file_is_reported(
    dev_stack: LoadedStack, dev_plan: ClusterPlan, node: str, path: str, edit: Edit, failing: Optional[str], checkers: str | tuple[str, ...], fragment: str
) -> None:
    """Exactly the broken file fails, with the checker that should see it; the node's other files still pass."""
    before = ours()
    results = check_plan(edited(dev_plan, node, path, edit), Topology(dev_stack.config), nodes=[node])
    failed = [(r.file, r.checker) for r in results if not r.ok]
    assert failed == [(failing or path, c) for c in ((checkers,) if isinstance(checkers, str) else checkers)], failures(results)
    assert fragment in next(r.output for r in results if not r.ok)
    assert ours() <= before


# --------------------------------------------------------------------------- the pacemaker rows of the table

COROSYNC = """totem {
\tversion: 2
\tcluster_name: cluster_tfm
\ttransport: knet
}
logging {
\tto_syslog: yes
\tlogger_subsys {
\t\tsubsys: QUORUM
\t}
}
quorum {
\tprovider: corosync_votequorum
}
nodelist {
\tnode {
\t\tring0_addr: 10.0.50.1
\t\tname: cluster1
\t\tnodeid: 1
\t}
}
"""
CRM = """primitive vip IPaddr2 params ip=192.168.1.200 cidr_netmask=24 nic=enp0s3 op monitor interval=30s
location pref-cluster1 vip 50: cluster1
property stonith-enabled=false no-quorum-policy=ignore
"""
PACEMAKER_FILES = {  # id: (path, content, ok, fragment of the output)
    "corosync.conf": ("/etc/corosync/corosync.conf", COROSYNC, True, "exiting normally"),
    "corosync.conf of another version": ("/etc/corosync/corosync.conf", COROSYNC.replace("version: 2", "version: 7"), False, "version 2"),
    "crm configuration": ("/etc/ha-web-cluster/pacemaker/cluster.crm", CRM, True, ""),
    "crm constraint on no resource": ("/etc/ha-web-cluster/pacemaker/cluster.crm", CRM.replace("vip 50", "vips 50"), False, "vips"),
    "crm stonith enabled without a device": ("/etc/ha-web-cluster/pacemaker/cluster.crm", CRM.replace("stonith-enabled=false ", ""), False, "STONITH"),
}


@pytest.mark.parametrize("path, content, ok, fragment", PACEMAKER_FILES.values(), ids=PACEMAKER_FILES.keys())
def test_pacemaker_files_are_checked_when_rendered(dev_stack: LoadedStack, dev_plan: ClusterPlan, path: str, content: str, ok: bool, fragment: str) -> None:
    """corosync -t runs in the node (its ring0 address is local there), crm files go through an offline CIB."""
    plan = copy.deepcopy(dev_plan)
    plan.nodes["cluster1"].add(RenderedFile(path, content))
    results = [r for r in check_plan(plan, Topology(dev_stack.config), nodes=["cluster1"]) if r.file == path]
    assert [r.ok for r in results] == [ok], failures(results)
    assert fragment in results[0].output


# --------------------------------------------------------------------------- dummy values, cleanup, CLI


def test_placeholders_are_filled_with_dummy_values(dev_plan: ClusterPlan) -> None:
    files = {f.path: f for f in checked_files(dev_plan, dev_plan.nodes["cluster1"])}
    assert not [p for p, f in files.items() if b"@@hawc:" in f.data]
    assert b"stats auth admin:chk" in files["/etc/haproxy/haproxy.cfg"].data
    assert b"ssh-ed25519 " in files["cloud-init/user-data"].data


def test_sandbox_is_removed_when_a_checker_raises(dev_stack: LoadedStack, dev_plan: ClusterPlan) -> None:
    def explode(env, f):
        assert env.run_inside(["true"]).ok  # the sandbox exists now
        raise RuntimeError("checker crashed")

    before = ours()
    with pytest.raises(RuntimeError, match="checker crashed"):
        check_plan(dev_plan, Topology(dev_stack.config), nodes=["cluster1"], rules=[Rule("explode", path_is("/etc/hosts"), explode)])
    assert ours() <= before


def test_check_command_prints_a_table_and_exits_0() -> None:
    proc = run_cli("check", "--file", str(TOPOLOGIES[0]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = proc.stdout.splitlines()
    assert rows[0].split() == ["node", "file", "checker", "result"]
    assert any(r.split()[:3] == ["cluster1", "/etc/haproxy/haproxy.cfg", "haproxy"] and r.endswith(" ok") for r in rows)
    assert rows[-1].endswith(" nodes: 0 failed")


def test_check_command_exits_1_and_shows_the_failure(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad = CheckResult("cluster1", "/etc/haproxy/haproxy.cfg", "haproxy -c", False, "[ALERT] could not resolve address 'cluster9'")
    good = CheckResult("cluster1", "/etc/hosts", "hosts", True, "fine")
    monkeypatch.setattr("webcluster.checks.check_config", lambda config: [good, bad])
    assert cli.main(["check", "--file", str(DEV_STACK)]) == 1
    out = capsys.readouterr().out
    assert "haproxy -c  FAIL" in out and "    [ALERT] could not resolve address 'cluster9'" in out
    assert "fine" not in out  # passing checks' output only with --verbose
    assert out.rstrip().endswith("2 checks on 1 nodes: 1 failed")
    assert format_table([good], verbose=True).count("fine") == 1
