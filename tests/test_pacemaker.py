"""haStack: pacemaker renders a safe Corosync + Pacemaker cluster, and the daemons' own tools accept it.

Static tests read the rendered files; tool tests load the CIB into an offline CIB with
crmsh and check it with crm_verify, replay the seed's failover test (4.1.1) with
crm_simulate, check corosync.conf with `corosync -t` where the heartbeat address is local,
and make the quorum device's TLS handshake with the certificates the steps derive.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from conftest import free_port
import yaml

from webcluster import netns
from webcluster.cib import crm_load, empty_quorate_cib
from webcluster.lab.pacemaker import pki_script, qnetd_argv  # the lab runs the same
from webcluster.model import SECRET_KEYS, StackConfig
from webcluster.render.gluster_tls import is_tls_key
from webcluster.render import https
from webcluster.render import ClusterPlan, placeholders, render_cluster
from webcluster.render import pacemaker as pm
from webcluster.render import serving
from webcluster.render.plan import RenderedFile
from webcluster.render.templating import render
from webcluster.sandbox import Sandbox
from webcluster.validation import ConfigError, parse

DIRECTORS = ["cluster1", "standby1", "standby2"]  # the seed's order of succession
HEARTBEAT = {"cluster1": "10.0.50.1", "standby1": "10.0.50.2", "standby2": "10.0.50.3"}  # the seed's
NAS_ADDRESS = "10.0.100.100"
PREFIX = "hawc-pm-"  # every namespace and link these tests create
TOPOLOGIES = Path(__file__).parent / "topologies"
CLUSTER_STEPS = ("50-corosync", "51-qdevice", "52-pacemaker", "53-cib", "55-quorum-device", pm.QNETD_STEP)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network and mount namespaces)")


# --------------------------------------------------------------------------- rendering


def values(ha: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """Stack values with haStack pacemaker; `ha` overrides keys of cluster.pacemaker."""
    out: dict[str, Any] = {"haStack": "pacemaker", **top}
    if ha:
        out.setdefault("cluster", {})["pacemaker"] = ha
    return out


def plan_for(ha: dict[str, Any] | None = None, **top: Any) -> ClusterPlan:
    config, _ = parse(values(ha, **top))
    return render_cluster(config)


def topology_plan(name: str, ha: dict[str, Any] | None = None) -> ClusterPlan:
    """A stack file of tests/topologies switched to haStack pacemaker (its secrets dropped)."""
    doc = yaml.safe_load((TOPOLOGIES / name).read_text())["config"]
    top = {k.split(":", 1)[1]: v for k, v in doc.items() if not (isinstance(v, dict) and "secure" in v)}
    top["cluster"] = {**top.get("cluster", {}), "pacemaker": ha or {}}
    config, _ = parse({**top, "haStack": "pacemaker"})
    return render_cluster(config)


@pytest.fixture(scope="module")
def plan() -> ClusterPlan:
    return plan_for()


def text(plan: ClusterPlan, node: str, path: str) -> str:
    content = plan.nodes[node].files[path].content
    assert isinstance(content, str)
    return content


def dummy(key: str) -> str:
    """A well-formed stand-in for a secret (corosync wants a key file of 128 bytes or more)."""
    if key == "corosyncKey":
        return base64.b64encode(bytes(range(128))).decode()
    return f"test-{key}-0123456789"


def filled(f: RenderedFile) -> RenderedFile:
    assert isinstance(f.content, str)
    return RenderedFile(f.path, placeholders.fill(f.content, {k: dummy(k) for k in placeholders.keys_in(f.content)}), f.mode)


def parse_corosync(conf: str) -> dict[str, Any]:
    """corosync.conf as nested dicts; every section is a list (nodelist has several `node`)."""
    root: dict[str, Any] = {}
    stack = [root]
    for raw in conf.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.endswith("{"):
            child: dict[str, Any] = {}
            stack[-1].setdefault(line[:-1].strip(), []).append(child)
            stack.append(child)
        elif line == "}":
            stack.pop()
        elif line:
            key, value = line.split(":", 1)
            stack[-1][key.strip()] = value.strip()
    assert len(stack) == 1, "unbalanced braces"
    return root


def section(conf: dict[str, Any], *path: str) -> dict[str, Any]:
    for name in path:
        (conf,) = conf[name]
    return conf


def crm_objects(cib: str) -> dict[str, list[str]]:
    """crm shell objects by id (property and rsc_defaults sets by their set id): their kind and tokens, unquoted."""
    joined = re.sub(r"\\\n\s*", " ", cib)
    out = {}
    for line in joined.splitlines():
        if line.strip() and not line.startswith("#"):
            kind, ident, *rest = shlex.split(line)
            out[ident.rstrip(":")] = [kind, *rest]
    return out


# --------------------------------------------------------------------------- corosync.conf


def test_corosync_ring_is_the_heartbeat_network_with_the_directors_node_ids(plan: ClusterPlan) -> None:
    conf = parse_corosync(text(plan, "cluster1", pm.COROSYNC_CONF))
    totem = section(conf, "totem")
    assert (totem["cluster_name"], totem["transport"]) == ("cluster_tfm", "knet")
    nodes = [(n["name"], n["nodeid"], n["ring0_addr"]) for n in section(conf, "nodelist")["node"]]
    assert nodes == [(name, str(i + 1), HEARTBEAT[name]) for i, name in enumerate(DIRECTORS)]


def test_corosync_has_crypto_on_a_short_token_and_logs_to_a_file(plan: ClusterPlan) -> None:
    conf = parse_corosync(text(plan, "cluster1", pm.COROSYNC_CONF))
    totem = section(conf, "totem")
    assert (totem["crypto_cipher"], totem["crypto_hash"], totem["keyfile"]) == ("aes256", "sha256", pm.AUTHKEY)
    # 600 ms in all, not 600 ms + 650 ms per node; consensus at corosync's documented minimum, 1.2 x token
    assert (totem["token"], totem["token_coefficient"], totem["consensus"]) == ("600", "0", "720")
    # the link outlives a latency spike: only the token decides that a director is lost
    assert section(totem, "interface") == {"linknumber": "0", "knet_ping_timeout": "1320"}  # token + consensus
    logging = section(conf, "logging")
    assert (logging["to_logfile"], logging["logfile"]) == ("yes", "/var/log/corosync/corosync.log")


def test_corosync_quorum_device_is_qnetd_on_the_nas_with_lms(plan: ClusterPlan) -> None:
    quorum = section(parse_corosync(text(plan, "cluster1", pm.COROSYNC_CONF)), "quorum")
    assert quorum["provider"] == "corosync_votequorum"
    # wait_for_all would be re-armed by the blip of quorum at every join and then wait for every
    # director: a director back while another is still down would stop the VIPs (the lab's 4.1.1).
    assert "wait_for_all" not in quorum
    device = quorum["device"][0]
    assert device["model"] == "net" and "votes" not in device  # lms needs the default: directors - 1
    assert section(device, "net") == {"host": NAS_ADDRESS, "algorithm": "lms", "tls": "required"}
    assert "two_node" not in quorum and "last_man_standing" not in quorum  # both disable a quorum device


def test_every_director_gets_the_same_corosync_conf_and_the_key_as_a_secret(plan: ClusterPlan) -> None:
    confs = {text(plan, d, pm.COROSYNC_CONF) for d in DIRECTORS}
    assert len(confs) == 1
    for d in DIRECTORS:
        key = plan.nodes[d].files[pm.AUTHKEY]
        assert (key.content, key.mode) == (placeholders.secret("corosyncKey"), 0o400)


def test_without_an_arbitrator_there_is_no_device_and_two_directors_use_two_node() -> None:
    three = section(parse_corosync(text(plan_for({"qnetdHost": None}), "cluster1", pm.COROSYNC_CONF)), "quorum")
    assert "device" not in three and "two_node" not in three and three["wait_for_all"] == "1"
    two = section(parse_corosync(text(topology_plan("two-directors.yaml", {"qnetdHost": None}), "lb-a", pm.COROSYNC_CONF)), "quorum")
    assert two["two_node"] == "1"
    with_device = section(parse_corosync(text(topology_plan("two-directors.yaml"), "lb-a", pm.COROSYNC_CONF)), "quorum")
    assert "two_node" not in with_device and section(with_device, "device", "net")["host"] == "172.16.10.50"


# --------------------------------------------------------------------------- the CIB, read


def test_cib_never_ignores_quorum_and_fences(plan: ClusterPlan) -> None:
    cib = text(plan, "cluster1", pm.CIB_CRM)
    assert "no-quorum-policy=ignore" not in cib and "stonith-enabled=false" not in cib
    props = crm_objects(cib)["cib-bootstrap-options"]
    assert "stonith-enabled=true" in props and "no-quorum-policy=stop" in props


@pytest.mark.parametrize("ha, value", [({}, "load-threshold=1000%"), ({"loadThresholdPct": 80}, "load-threshold=80%")])
def test_cib_throttles_recovery_only_under_a_runaway_load(ha: dict, value: str) -> None:
    assert value in crm_objects(text(plan_for(ha), "cluster1", pm.CIB_CRM))["cib-bootstrap-options"]


def test_cib_has_one_fence_device_per_director_that_never_runs_on_it(plan: ClusterPlan) -> None:
    objs = crm_objects(text(plan, "cluster1", pm.CIB_CRM))
    for d in DIRECTORS:
        kind, agent, *params = objs[f"fence-{d}"]
        assert (kind, agent) == ("primitive", "stonith:fence_virsh")
        assert {f"pcmk_host_list={d}", f"plug={d}", "ip=192.168.1.1", "username=fence"} <= set(params)
        assert f"identity_file={pm.FENCE_KEY}" in params, "the fence user logs in with a key"
        assert not [p for p in params if p.startswith(("password", "passwd"))], "no fence password by default"
        assert objs[f"fence-{d}-not-on-{d}"] == ["location", f"fence-{d}", "-inf:", d]
    assert "@@hawc" not in text(plan, "cluster1", pm.CIB_CRM)  # the key stays in a root-only file


def test_fence_login_password_is_still_possible() -> None:
    plan = plan_for({"fenceLogin": "password"})
    objs = crm_objects(text(plan, "cluster1", pm.CIB_CRM))
    assert f"password_script=/bin/cat {pm.FENCE_PASSWORD}" in objs["fence-standby1"]
    assert not [p for p in objs["fence-standby1"] if p.startswith("identity_file")]
    f = plan.nodes["standby1"].files[pm.FENCE_PASSWORD]
    assert (f.content, f.mode) == (placeholders.secret("fencePassword"), 0o600) and pm.FENCE_KEY not in plan.nodes["standby1"].files


def test_cib_vips_are_a_group_in_the_seeds_order_following_the_seeds_succession(plan: ClusterPlan) -> None:
    objs = crm_objects(text(plan, "cluster1", pm.CIB_CRM))
    assert objs["grupo1"] == ["group", "IPVirtual_1", "IPVirtual_2"]
    assert "ip=192.168.1.200" in objs["IPVirtual_1"] and "nic=enp0s3" in objs["IPVirtual_1"]
    assert "ip=10.0.100.200" in objs["IPVirtual_2"] and "nic=enp0s8" in objs["IPVirtual_2"]
    scores = {d: int(objs[f"pref-{d}"][2].rstrip(":")) for d in DIRECTORS}
    assert scores["cluster1"] > scores["standby1"] > scores["standby2"] > 0
    assert "resource-stickiness=0" in objs["rsc-options"]  # the VIPs go back to the master


def test_cib_vips_follow_a_running_haproxy_clone(plan: ClusterPlan) -> None:
    objs = crm_objects(text(plan, "cluster1", pm.CIB_CRM))
    assert objs["haproxy"][:2] == ["primitive", "systemd:haproxy"]
    assert objs["haproxy-clone"][:2] == ["clone", "haproxy"] and "migration-threshold=1" in objs["haproxy-clone"]
    assert objs["vips-with-haproxy"] == ["colocation", "inf:", "grupo1", "haproxy-clone"]


def test_cib_monitors_haproxy_twice_a_second_and_the_vips_every_few(plan: ClusterPlan) -> None:
    objs = crm_objects(text(plan, "cluster1", pm.CIB_CRM))
    for rsc in ("IPVirtual_1", "IPVirtual_2"):
        assert "interval=2s" in objs[rsc]
    assert "interval=500ms" in objs["haproxy"]  # a dead HAProxy is what users notice first
    objs = crm_objects(text(plan_for({"haproxyMonitorMs": 2000}), "cluster1", pm.CIB_CRM))
    assert "interval=2000ms" in objs["haproxy"] and "interval=2s" in objs["IPVirtual_1"]


def test_fencing_none_turns_stonith_off_and_validate_warns() -> None:
    objs = crm_objects(text(plan_for({"fencing": "none"}), "cluster1", pm.CIB_CRM))
    assert "stonith-enabled=false" in objs["cib-bootstrap-options"]
    assert not [i for i, o in objs.items() if o[:2] == ["primitive", "stonith:fence_virsh"]]
    _, warnings = parse(values({"fencing": "none"}))
    assert any(w.path == "cluster.pacemaker.fencing" and "split brain" in w.message for w in warnings)


def test_fencing_auto_picks_the_hypervisors_agent() -> None:
    objs = crm_objects(text(plan_for(hypervisor="virtualbox"), "cluster1", pm.CIB_CRM))
    assert objs["fence-standby1"][:2] == ["primitive", "stonith:fence_vbox"]


def test_fence_vm_names_host_and_extra_params_come_from_the_config() -> None:
    ha = {"fenceHost": "10.0.100.254", "fenceVms": {"standby1": "prod-standby1"}, "fenceParams": {"power_timeout": "30"}}
    objs = crm_objects(text(plan_for(ha), "cluster1", pm.CIB_CRM))
    assert {"plug=prod-standby1", "ip=10.0.100.254", "power_timeout=30"} <= set(objs["fence-standby1"])
    password = {**ha, "fenceLogin": "password", "fenceParams": {"use_sudo": "1"}}  # sudo only without the forced command
    assert "use_sudo=1" in crm_objects(text(plan_for(password), "cluster1", pm.CIB_CRM))["fence-standby1"]


@pytest.mark.parametrize(
    "ha, top, path, fragment",
    [
        ({"fencing": "vbox"}, {}, "cluster.pacemaker.fencing", "cannot fence libvirt"),
        ({"qnetdHost": "standby2"}, {}, "cluster.pacemaker.qnetdHost", "is a director"),
        ({"qnetdHost": "nope"}, {}, "cluster.pacemaker.qnetdHost", "not a node"),
        ({"fenceVms": {"nope": "x"}}, {}, "cluster.pacemaker.fenceVms.nope", "not a director"),
        ({"fenceParams": {"plug": "x"}}, {}, "cluster.pacemaker.fenceParams.plug", "not overridable"),
        ({"fenceParams": {"identity_file": "/x"}}, {}, "cluster.pacemaker.fenceParams.identity_file", "not overridable"),
        ({"fenceParams": {"use_sudo": "1"}}, {}, "cluster.pacemaker.fenceParams.use_sudo", "forced command"),
        ({"fenceParams": {"host_os": 'a"b'}}, {}, "cluster.pacemaker.fenceParams.host_os", "quotes"),
        ({"fenceHost": "a b"}, {}, "cluster.pacemaker.fenceHost", "not a host name"),
        ({"tokenMs": 1000, "consensusMs": 1100}, {}, "cluster.pacemaker.consensusMs", "below 1.2 x tokenMs (1200)"),
        ({"qdeviceTimeoutMs": 3000, "qdeviceSyncTimeoutMs": 4000}, {}, "cluster.pacemaker.qdeviceSyncTimeoutMs", "(4200 ms with qdeviceTimeoutMs 3000)"),
        ({"qdeviceTimeoutMs": 1000}, {}, "cluster.pacemaker.qdeviceTimeoutMs", "greater than or equal to 1250"),
    ],
)
def test_validate_rejects_unsafe_pacemaker_settings(ha: dict, top: dict, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(values(ha, **top))
    assert any(p.path == path and fragment in p.message for p in err.value.problems), err.value.problems


def test_validate_warns_of_a_knet_link_timeout_shorter_than_the_membership_timers() -> None:
    _, warnings = parse(values({"tokenMs": 1000, "knetPingTimeoutMs": 500}))
    assert [w.severity for w in warnings if w.path == "cluster.pacemaker.knetPingTimeoutMs" and "below tokenMs + consensus (2200)" in w.message] == ["warning"]
    _, warnings = parse(values({"tokenMs": 1000}))
    assert not [w for w in warnings if w.path == "cluster.pacemaker.knetPingTimeoutMs"]


def test_validate_warns_without_a_quorum_device() -> None:
    _, warnings = parse(values({"qnetdHost": None}))
    assert [w.severity for w in warnings if w.path == "cluster.pacemaker.qnetdHost" and "last director" in w.message] == ["warning"]


# --------------------------------------------------------------------------- steps


def test_arbitrator_runs_qnetd_after_the_vips_and_directors_check_their_device_after_it(plan: ClusterPlan) -> None:
    assert [s.name for s in plan.nodes["nas"].steps][-1] == pm.QNETD_STEP
    for d in DIRECTORS:
        check = plan.nodes[d].step("55-quorum-device")
        assert [str(r) for r in check.after] == [f"nas/{pm.QNETD_STEP}"]
    order = [str(s.ref) for s in plan.ordered_steps()]  # also: no dependency cycle
    assert order.index("cluster1/53-cib") < order.index("nas/00-base") < order.index(f"nas/{pm.QNETD_STEP}") < order.index("cluster1/55-quorum-device")


def test_cib_is_loaded_once_on_the_master_after_every_director_joined(plan: ClusterPlan) -> None:
    cib = plan.nodes["cluster1"].step("53-cib")
    assert sorted(str(r) for r in cib.after) == [f"{d}/{pm.PACEMAKER_STEP}" for d in sorted(DIRECTORS)]
    assert pm.CIB_CRM in cib.files
    for d in DIRECTORS[1:]:
        assert "53-cib" not in [s.name for s in plan.nodes[d].steps] and pm.CIB_CRM not in plan.nodes[d].files


def test_internal_nodes_wait_for_the_cib(plan: ClusterPlan) -> None:
    after = {str(r) for r in plan.nodes["cluster2"].step("00-base").after}
    assert {"cluster1/53-cib", "standby1/52-pacemaker", "standby2/52-pacemaker"} <= after


def test_secret_files_are_root_only_placeholders(plan: ClusterPlan) -> None:
    secrets = {pm.HACLUSTER_PASSWORD: "haclusterPassword", pm.FENCE_KEY: "fenceSshKey", pm.QDEVICE_SEED: "qdeviceSeed"}
    for path, key in secrets.items():
        f = plan.nodes["standby2"].files[path]
        assert (f.content, f.mode) == (placeholders.secret(key), 0o600)
    assert plan.nodes["nas"].files[pm.QDEVICE_SEED].content == placeholders.secret("qdeviceSeed")
    used = {k for node in plan.nodes.values() for f in node.files.values() if isinstance(f.content, str) for k in placeholders.keys_in(f.content)}
    assert pm.FENCE_PASSWORD not in plan.nodes["standby2"].files, "no fence password by default"
    assert {"corosyncKey", "haclusterPassword", "fenceSshKey", "qdeviceSeed"} <= {k for k in used if not is_tls_key(k) and not https.is_tls_key(k)} <= set(SECRET_KEYS) | {"sshPublicKey"}


def test_no_arbitrator_means_no_qdevice_steps() -> None:
    plan = plan_for({"qnetdHost": None})
    assert pm.QNETD_STEP not in [s.name for s in plan.nodes["nas"].steps]
    assert not {"51-qdevice", "55-quorum-device"} & {s.name for s in plan.nodes["cluster1"].steps}


def test_keepalived_stack_has_nothing_of_pacemaker() -> None:
    plan = render_cluster(StackConfig())
    for node in plan.nodes.values():
        assert not [p for p in node.files if "corosync" in p or "pacemaker" in p]
        assert not [s.name for s in node.steps if s.name in CLUSTER_STEPS]


def test_rendering_is_deterministic() -> None:
    def snapshot(p: ClusterPlan) -> dict[str, Any]:
        return {n: ({k: f.digest for k, f in node.files.items()}, [(s.name, s.script, s.after) for s in node.steps]) for n, node in p.nodes.items()}

    assert snapshot(plan_for()) == snapshot(plan_for())


def cluster_scripts(plan: ClusterPlan) -> Iterator[tuple[str, str]]:
    for node in plan.nodes.values():
        for s in node.steps:
            if s.name in CLUSTER_STEPS:
                yield f"{node.name}/{s.name}", s.script


@pytest.mark.parametrize("ha", [{}, {"qnetdHost": None, "fencing": "none"}])
def test_step_scripts_pass_bash_n_and_shellcheck(ha: dict, tmp_path: Path) -> None:
    scripts = dict(cluster_scripts(plan_for(ha)))
    assert len(scripts) >= (4 if ha else 10)
    for name, script in scripts.items():
        path = tmp_path / (name.replace("/", "_") + ".sh")
        path.write_text(script)
        for argv in (["bash", "-n", str(path)], ["shellcheck", "-S", "warning", str(path)]):
            proc = subprocess.run(argv, capture_output=True, text=True)
            assert proc.returncode == 0, f"{' '.join(argv[:-1])} {name}:\n{proc.stdout}{proc.stderr}"


# --------------------------------------------------------------------------- the CIB, checked by Pacemaker's tools

# crmsh asks systemd for the metadata of systemd:haproxy; without systemd (here) it cannot,
# so the load is forced and that one complaint ignored; every other error still fails.
def offline_cib(tmp_path: Path, crm_text: str, name: str = "cib", check: bool = True) -> Path:
    """An empty CIB of a quorate cluster (as the directors' is, with the quorum device) with the crm file loaded."""
    cib = empty_quorate_cib(tmp_path / f"{name}.xml")
    crm_file = tmp_path / f"{name}.crm"
    crm_file.write_text(crm_text)
    errors = crm_load(cib, crm_file)
    assert not (check and errors), "\n".join(errors)
    return cib


@pytest.mark.parametrize(
    "plan_of, master",
    [
        (lambda: plan_for(), "cluster1"),
        (lambda: plan_for({"fencing": "none"}), "cluster1"),
        (lambda: plan_for(hypervisor="virtualbox"), "cluster1"),
        (lambda: topology_plan("two-directors.yaml", {"fenceParams": {"host_os": "windows"}}), "lb-a"),
        (lambda: plan_for({"fenceLogin": "password"}), "cluster1"),
    ],
    ids=["seed", "fencing-none", "virtualbox", "two-directors", "fence-password"],
)
def test_crm_verify_accepts_the_cib(plan_of: Any, master: str, tmp_path: Path) -> None:
    plan = plan_of()
    cib = offline_cib(tmp_path, text(plan, master, pm.CIB_CRM))
    proc = subprocess.run(["crm_verify", "-x", str(cib)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "grupo1" in cib.read_text()
    if "stonith:" in text(plan, master, pm.CIB_CRM):  # the fence devices crm_verify accepted log in as configured
        login = "password_script" if pm.FENCE_PASSWORD in plan.nodes[master].files else "identity_file"
        assert f'name="{login}"' in cib.read_text()


def test_crm_verify_rejects_stonith_without_devices(tmp_path: Path) -> None:
    """The check has teeth: the safe properties without their fence devices fail."""
    cib_text = text(plan_for(), "cluster1", pm.CIB_CRM)
    kept = [line for line in re.sub(r"\\\n\s*", " ", cib_text).splitlines() if "fence-" not in line]
    cib = offline_cib(tmp_path, "\n".join(kept) + "\n", check=False)
    assert "grupo1" in cib.read_text()
    assert subprocess.run(["crm_verify", "-x", str(cib)], capture_output=True).returncode != 0


def test_loading_the_cib_twice_changes_nothing(plan: ClusterPlan, tmp_path: Path) -> None:
    cib = offline_cib(tmp_path, text(plan, "cluster1", pm.CIB_CRM))
    first = cib.read_text()
    assert not crm_load(cib, tmp_path / "cib.crm")
    assert cib.read_text() == first  # not even the epoch moved


def run_cib_apply(tmp_path: Path, cib: Path, crm_text: str) -> subprocess.CompletedProcess:
    """The 53-cib step's cib_apply, run against an offline CIB (crm forced as in crm_load)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "crm"
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('crm')} -F \"$@\"\n")
    wrapper.chmod(0o755)
    crm_file = tmp_path / "apply.crm"
    crm_file.write_text(crm_text)
    script = render("steps/director/_cib.sh.j2") + f'set -euo pipefail\ncib_apply "{crm_file}" "{tmp_path}/state/cib.ids"\n'
    env = {**os.environ, "CIB_file": str(cib), "PATH": f"{bindir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)


def test_cib_apply_removes_what_the_config_no_longer_defines(tmp_path: Path) -> None:
    cib = tmp_path / "live.xml"
    cib.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True).stdout)
    for ha in ({}, {"fencing": "none"}):
        proc = run_cib_apply(tmp_path, cib, text(plan_for(ha), "cluster1", pm.CIB_CRM))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    xml = cib.read_text()
    assert "fence-cluster1" not in xml and 'name="stonith-enabled" value="false"' in xml and "grupo1" in xml
    assert "removing from the CIB: fence-cluster1 fence-cluster1-not-on-cluster1" in proc.stdout


# The seed's test 4.1.1 at the scheduler: where does the VIP group run after each event?


def simulate(cib: Path, out: Path, *events: str, quorum: bool = True) -> Path:
    argv = ["crm_simulate", "-x", str(cib), "-S", "-q", "true" if quorum else "false", "-O", str(out), *events]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def location(cib: Path, resource: str = "grupo1") -> Optional[str]:
    proc = subprocess.run(["crm_resource", "--locate", "--resource", resource], capture_output=True, text=True, env={**os.environ, "CIB_file": str(cib)})
    m = re.search(r"is running on: (\S+)", proc.stdout)
    return m.group(1) if m else None


def set_attributes(cib: Path, out: Path, values: dict[str, dict[str, str]]) -> Path:
    """Node attributes as the monitors keep them (ethmonitor, backends-up): node -> name -> value, then let the cluster settle."""
    env = {**os.environ, "CIB_file": str(cib)}
    for node, attrs in values.items():
        for name, value in attrs.items():
            subprocess.run(["crm_attribute", "--node", node, "--name", name, "--update", value, "--lifetime", "reboot"], env=env, check=True, capture_output=True)
    return simulate(cib, out)


HEALTHY = {"ethmonitor-enp0s3": "1", "ethmonitor-enp0s8": "1", serving.ATTRIBUTE: "1"}


@pytest.fixture
def running_cluster(plan: ClusterPlan, tmp_path: Path) -> Path:
    """The CIB of three directors up and quorate, their links up and backends reachable, after the cluster settled."""
    cib = offline_cib(tmp_path, text(plan, "cluster1", pm.CIB_CRM))
    up = simulate(cib, tmp_path / "up.xml", *(f"--node-up={d}" for d in DIRECTORS))
    assert location(up) is None, "the VIPs must wait for the link monitors' attributes"
    return set_attributes(up, tmp_path / "healthy.xml", {d: HEALTHY for d in DIRECTORS})


def test_vips_survive_the_master_then_standby1_and_come_back(running_cluster: Path, tmp_path: Path) -> None:
    assert location(running_cluster) == "cluster1"
    assert {location(running_cluster, f"fence-{d}") for d in DIRECTORS} <= set(DIRECTORS)
    no_master = simulate(running_cluster, tmp_path / "1.xml", "--node-fail=cluster1")
    assert location(no_master) == "standby1"
    # standby2 alone keeps quorum only thanks to the quorum device: hence quorum=True here.
    alone = simulate(no_master, tmp_path / "2.xml", "--node-fail=standby1")
    assert location(alone) == "standby2"
    back = simulate(alone, tmp_path / "3.xml", "--node-up=cluster1")
    assert location(back) == "standby2", "a director that just came back has no link attributes yet"
    assert location(set_attributes(back, tmp_path / "4.xml", {"cluster1": HEALTHY})) == "cluster1"


def test_a_failed_node_is_fenced(running_cluster: Path, tmp_path: Path) -> None:
    proc = subprocess.run(["crm_simulate", "-x", str(running_cluster), "-S", "-q", "true", "--node-fail=cluster1"], capture_output=True, text=True)
    assert re.search(r"Fence \(reboot\) cluster1", proc.stdout), proc.stdout


def test_vips_leave_a_director_whose_haproxy_died(running_cluster: Path, tmp_path: Path) -> None:
    failed = simulate(running_cluster, tmp_path / "f.xml", "--op-inject=haproxy_monitor_2000@cluster1=7")  # 7: not running
    assert location(failed) == "standby1"


@pytest.mark.parametrize("nic", ["enp0s3", "enp0s8"])
def test_vips_leave_a_director_whose_link_is_down_and_come_back(running_cluster: Path, tmp_path: Path, nic: str) -> None:
    down = set_attributes(running_cluster, tmp_path / "down.xml", {"cluster1": {f"ethmonitor-{nic}": "0"}})
    assert location(down) == "standby1"
    assert location(set_attributes(down, tmp_path / "up.xml", {"cluster1": {f"ethmonitor-{nic}": "1"}})) == "cluster1"


@pytest.mark.parametrize(
    "failing, where",
    [
        ((), "cluster1"),
        (("cluster1",), "standby1"),  # 150 < 100 + 61
        (("cluster1", "standby1"), "standby2"),  # 150 < 90 + 61
        (("standby1",), "cluster1"),
        (("cluster1", "standby1", "standby2"), "cluster1"),  # every director alike: nothing moves
    ],
)
def test_backends_out_of_reach_is_relative(running_cluster: Path, tmp_path: Path, failing: tuple[str, ...], where: str) -> None:
    after = set_attributes(running_cluster, tmp_path / "b.xml", {d: {serving.ATTRIBUTE: "0"} for d in failing})
    assert location(after) == where


def test_without_quorum_the_vips_stop(running_cluster: Path, tmp_path: Path) -> None:
    lost = simulate(running_cluster, tmp_path / "q.xml", "--node-fail=standby1", "--node-fail=standby2", quorum=False)
    assert location(lost) is None


# --------------------------------------------------------------------------- corosync -t, where the ring address is local


def ring_address(plan: ClusterPlan, node: str) -> str:
    nodes = section(parse_corosync(text(plan, node, pm.COROSYNC_CONF)), "nodelist")["node"]
    return next(n["ring0_addr"] for n in nodes if n["name"] == node)


@pytest.fixture
def director_sandbox(tmp_path: Path) -> Iterator[Any]:
    """make(plan, node): the director's corosync files in a sandbox whose enp0s9 holds its ring address; removed afterwards."""
    made: list[tuple[Sandbox, str]] = []

    def make(plan: ClusterPlan, node: str) -> Sandbox:
        tag = f"{os.getpid() % 10000}{len(made)}"
        box, outside = Sandbox(f"{PREFIX}{tag}", tmp_path / f"sb{tag}"), f"{PREFIX}{tag}"[:15]
        made.append((box, outside))
        box.create([filled(plan.nodes[node].files[p]) for p in (pm.COROSYNC_CONF, pm.AUTHKEY)])
        netns.veth_into(box.name, "enp0s9", outside)
        netns.add_address(box.name, "enp0s9", f"{ring_address(plan, node)}/24")
        return box

    try:
        yield make
    finally:
        for box, outside in made:
            netns.del_link(outside)
            box.destroy()


def corosync_check_copy(conf: str, logdir: Path) -> str:
    """The config with logging to stderr and to a file of the check (validators.md)."""
    return re.sub(r"logging \{.*?\n\}", f"logging {{\n\tto_stderr: yes\n\tto_logfile: yes\n\tlogfile: {logdir}/corosync.log\n}}", conf, flags=re.S)


def corosync_t(box: Sandbox, conf: str, tmp_path: Path) -> tuple[int, str]:
    """Exit code and everything corosync said (stdout, stderr, its log file)."""
    copy = tmp_path / f"check-{box.name}.conf"
    copy.write_text(corosync_check_copy(conf, tmp_path))
    proc = box.run(["corosync", "-t", "-c", str(copy)], check=False)
    log = tmp_path / "corosync.log"
    return proc.returncode, proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")


@needs_root
@pytest.mark.parametrize("topology, node", [(None, d) for d in DIRECTORS] + [("two-directors.yaml", "lb-b")])
def test_corosync_t_accepts_the_config_on_each_director(director_sandbox: Any, tmp_path: Path, topology: Optional[str], node: str) -> None:
    plan = topology_plan(topology) if topology else plan_for()
    code, output = corosync_t(director_sandbox(plan, node), text(plan, node, pm.COROSYNC_CONF), tmp_path)
    assert code == 0, output


@needs_root
@pytest.mark.parametrize(
    "broken, message",
    [(("crypto_cipher: aes256", "crypto_cipher: aes999"), "Invalid cipher"), (("ring0_addr: 10.0.50.1\n", "ring0_addr: 10.0.50.9\n"), "No valid name found for local host")],
)
def test_corosync_t_rejects_a_broken_config(plan: ClusterPlan, director_sandbox: Any, tmp_path: Path, broken: tuple[str, str], message: str) -> None:
    box = director_sandbox(plan, "cluster1")
    code, output = corosync_t(box, text(plan, "cluster1", pm.COROSYNC_CONF).replace(*broken), tmp_path)
    assert code != 0 and message in output, output


# --------------------------------------------------------------------------- quorum-device TLS from the seed


def build_db(plan: ClusterPlan, node: str, call: str, seed: str, tmp_path: Path) -> Path:
    """Run one of the db builders in a sandbox (its /etc is an overlay) and return where the database landed."""
    box = Sandbox(f"{PREFIX}{os.getpid() % 10000}-{node}", tmp_path / node)
    try:
        box.create([RenderedFile(pm.QDEVICE_SEED, seed, 0o600)])
        for _ in range(2):  # the second run must find the database current and keep it
            proc = box.run(["bash", "-c", pki_script(plan, node, call)], check=False, timeout=60)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        db = "corosync/qnetd/nssdb" if node not in DIRECTORS else "corosync/qdevice/net/nssdb"
        out = tmp_path / f"{node}-db"
        shutil.copytree(box.etc_upper / db, out)
        return out
    finally:
        box.destroy()


def tls_handshake(server_db: Path, client_db: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """NSS's test server with qnetd's database (client certificate required) and test client with a director's."""
    port = free_port()
    pidfile = tmp_path / f"selfserv-{port}.pid"
    server = subprocess.Popen(
        ["selfserv", "-d", str(server_db), "-n", "QNetd Cert", "-p", str(port), "-r", "-r", "-i", str(pidfile), "-f", str(server_db / "pwdfile.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        return subprocess.run(
            ["tstclnt", "-d", str(client_db), "-n", "Cluster Cert", "-h", "127.0.0.1", "-p", str(port), "-a", pm.QNETD_SERVER_CN, "-Q"],
            input="", capture_output=True, text=True, timeout=20,
        )
    finally:
        server.kill()
        server.wait()


@needs_root
def test_qnetd_and_a_director_trust_each_other_from_the_seed_alone(plan: ClusterPlan, tmp_path: Path) -> None:
    seed = "a-seed-of-at-least-16-characters"
    qnetd_db = build_db(plan, "nas", "qnetd_db_ensure", seed, tmp_path)
    director_db = build_db(plan, "standby1", "qdevice_db_ensure", seed, tmp_path)
    listing = subprocess.run(["certutil", "-L", "-d", str(director_db)], capture_output=True, text=True).stdout
    assert "Cluster Cert" in listing and "QNet CA" in listing
    subject = subprocess.run(["certutil", "-L", "-d", str(director_db), "-n", "Cluster Cert"], capture_output=True, text=True).stdout
    assert 'Subject: "CN=cluster_tfm"' in subject
    ok = tls_handshake(qnetd_db, director_db, tmp_path)
    assert ok.returncode == 0 and "CN=Qnetd Server" in ok.stdout + ok.stderr, ok.stdout + ok.stderr

    stranger_db = build_db(plan, "standby2", "qdevice_db_ensure", "another-seed-entirely-different", tmp_path)
    assert tls_handshake(qnetd_db, stranger_db, tmp_path).returncode != 0


@needs_root
def test_the_derived_ca_is_the_same_on_every_node(plan: ClusterPlan, tmp_path: Path) -> None:
    seed = "a-seed-of-at-least-16-characters"
    ids = {build_db(plan, node, call, seed, tmp_path).joinpath("ha-web-cluster.id").read_text().split()[0]
           for node, call in (("nas", "qnetd_db_ensure"), ("cluster1", "qdevice_db_ensure"), ("standby2", "qdevice_db_ensure"))}
    assert len(ids) == 1


def wait_until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


@needs_root
def test_qdevice_reaches_qnetd_over_tls_with_the_derived_certificates(plan: ClusterPlan, tmp_path: Path) -> None:
    """The real daemons: qnetd as its own user with the drop-in's options on the NAS, corosync and
    corosync-qdevice on cluster1, linked by the internal network. qnetd ACKs the director, and the
    director alone is quorate with the device's votes: the last director that reaches qnetd serves."""
    seed = RenderedFile(pm.QDEVICE_SEED, "a-seed-of-at-least-16-characters", 0o600)
    tag = os.getpid() % 10000
    nas, director = Sandbox(f"{PREFIX}{tag}-q", tmp_path / "q"), Sandbox(f"{PREFIX}{tag}-d", tmp_path / "d")
    links = [f"{PREFIX}{tag}i", f"{PREFIX}{tag}h"]
    procs: list[subprocess.Popen] = []
    try:
        nas.create([seed])
        director.create([seed] + [filled(plan.nodes["cluster1"].files[p]) for p in (pm.COROSYNC_CONF, pm.AUTHKEY)])
        netns.ip("link", "add", links[0], "type", "veth", "peer", "name", f"{links[0]}p")
        for box, end, address in ((nas, links[0], NAS_ADDRESS), (director, f"{links[0]}p", "10.0.100.1")):
            netns.ip("link", "set", end, "netns", box.name)
            netns.ip("-n", box.name, "link", "set", end, "name", "enp0s8")
            netns.add_address(box.name, "enp0s8", f"{address}/24")
            netns.ip("-n", box.name, "link", "set", "enp0s8", "up")
        netns.veth_into(director.name, "enp0s9", links[1])
        netns.add_address(director.name, "enp0s9", f"{HEARTBEAT['cluster1']}/24")
        nas.run(["bash", "-c", pki_script(plan, "nas", "qnetd_db_ensure")], timeout=60)
        director.run(["bash", "-c", pki_script(plan, "cluster1", "qdevice_db_ensure")], timeout=60)
        nas.run(["chown", "coroqnetd:coroqnetd", "/run/corosync-qnetd"])
        procs.append(nas.spawn(["setpriv", "--reuid=coroqnetd", "--regid=coroqnetd", "--init-groups", *qnetd_argv(plan, "nas")], tmp_path / "qnetd.log"))
        procs.append(director.spawn(["corosync", "-f"], tmp_path / "corosync.log"))
        assert wait_until(lambda: director.run(["corosync-quorumtool", "-s"], check=False).returncode in (0, 2), 20)
        procs.append(director.spawn(["corosync-qdevice", "-f", "-d"], tmp_path / "qdevice.log"))

        connected = re.compile(r"^\s*State:\s+Connected", re.M)  # what step 55-quorum-device waits for
        assert wait_until(lambda: connected.search(director.run(["corosync-qdevice-tool", "-s"], check=False).stdout), 30), (tmp_path / "qdevice.log").read_text()[-3000:]
        clients = nas.run(["corosync-qnetd-tool", "-l"], check=False).stdout
        assert 'Cluster "cluster_tfm"' in clients and "ACK" in clients, clients
        quorate = re.compile(r"Quorate:\s+Yes")
        assert wait_until(lambda: quorate.search(director.run(["corosync-quorumtool", "-s"], check=False).stdout), 20)
        quorum = director.run(["corosync-quorumtool", "-s"], check=False).stdout
        assert re.search(r"Total votes:\s+3", quorum) and "WaitForAll" not in quorum, quorum
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        netns.del_link(links[1])
        for box in (nas, director):
            box.destroy()


@needs_root
def test_hacluster_password_is_set_once_and_then_left_alone(tmp_path: Path) -> None:
    """52-pacemaker's set_password, in a sandbox (its /etc/shadow is the overlay's): running it again changes nothing."""
    box = Sandbox(f"{PREFIX}{os.getpid() % 10000}-pw", tmp_path / "pw")
    script = "set -euo pipefail\n" + render("steps/_cluster.sh.j2") + f"\nset_password hacluster {pm.HACLUSTER_PASSWORD}\n"
    shadow = box.etc_upper / "shadow"
    try:
        box.create([RenderedFile(pm.HACLUSTER_PASSWORD, "first-password", 0o600)])
        box.run(["bash", "-c", script])
        first = shadow.read_bytes()
        assert b"hacluster:$6$" in first
        box.run(["bash", "-c", script])
        assert shadow.read_bytes() == first
        box.write_files([RenderedFile(pm.HACLUSTER_PASSWORD, "second-password", 0o600)])
        box.run(["bash", "-c", script])
        assert shadow.read_bytes() != first
    finally:
        box.destroy()


@pytest.mark.parametrize("timeout_ms, sync_ms", [(1250, 30000), (7000, 12000)])
def test_quorum_device_timeouts_are_rendered(timeout_ms: int, sync_ms: int) -> None:
    """qnetd's hold on a silent director's votes bounds the takeover (10 s by corosync's default)."""
    ha = None if timeout_ms == 1250 else {"qdeviceTimeoutMs": timeout_ms, "qdeviceSyncTimeoutMs": sync_ms}
    device = section(parse_corosync(text(plan_for(ha), "cluster1", pm.COROSYNC_CONF)), "quorum", "device")
    assert (device["timeout"], device["sync_timeout"]) == (str(timeout_ms), str(sync_ms))


@pytest.mark.parametrize("ha, token, consensus", [({"tokenMs": 1000}, "1000", "1200"), ({"tokenMs": 1000, "consensusMs": 1500}, "1000", "1500")])
def test_consensus_follows_the_token_unless_set(ha: dict, token: str, consensus: str) -> None:
    totem = section(parse_corosync(text(plan_for(ha), "cluster1", pm.COROSYNC_CONF)), "totem")
    assert (totem["token"], totem["consensus"]) == (token, consensus)
