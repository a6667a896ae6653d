"""Issue #15 under haStack: pacemaker, as rendered: hawc_vip_held per VIP resource, written by a
Pacemaker alert agent (CIB <alerts>, resource events) on the node that ran the operation, reset
from the NICs before pacemakerd starts (a systemd drop-in), nothing of it when node metrics are off
or with keepalived. The agent runs here as Pacemaker runs it (its CRM_alert_* environment) and
node-exporter's textfile collector reads what it wrote."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port
from webcluster.cib import crm_load, empty_quorate_cib
from webcluster.metrics import vip_held
from webcluster.model import StackConfig
from webcluster.render import ClusterPlan, render_cluster
from webcluster.render import pacemaker as pm
from webcluster.render.node_metrics import ALERT_GROUP, PACEMAKER_DROPIN, TEXTFILE_DIR, VIP_ALERT, VIP_ALERT_ID, VIP_NOTIFY
from webcluster.render.templating import render
from webcluster.validation import parse

DIRECTORS = ("cluster1", "standby1", "standby2")
VIPS = {"IPVirtual_1": ("192.168.1.200", "enp0s3"), "IPVirtual_2": ("10.0.100.200", "enp0s8")}


def plan_for(**node_metrics: Any) -> ClusterPlan:
    values: dict[str, Any] = {"haStack": "pacemaker"}
    if node_metrics:
        values["cluster"] = {"nodeMetrics": node_metrics}
    config, _ = parse(values)
    return render_cluster(config)


@pytest.fixture(scope="module")
def plan() -> ClusterPlan:
    return plan_for()


def text(plan: ClusterPlan, node: str, path: str) -> str:
    return str(plan.nodes[node].files[path].content)


# --------------------------------------------------------------------------- rendering


def test_every_director_gets_its_own_agent_and_the_units_reset(plan: ClusterPlan) -> None:
    for d in DIRECTORS:
        agent = plan.nodes[d].files[VIP_ALERT]
        assert agent.mode == 0o755 and f'[ "${{CRM_alert_node:-}}" = {d} ] || exit 0' in str(agent.content)
        for rsc, (ip, nic) in VIPS.items():
            assert f"{rsc}) vip={ip} ;;" in str(agent.content) and f"dev {nic} " in str(agent.content)
        assert text(plan, d, PACEMAKER_DROPIN).splitlines()[-2:] == ["[Service]", f"ExecStartPre=-{VIP_ALERT} sync"]
        step = plan.nodes[d].step(pm.PACEMAKER_STEP)
        assert {VIP_ALERT, PACEMAKER_DROPIN} <= set(step.files)
        # the drop-in is read before the start; a running Pacemaker gets the metric from the NICs
        script = step.script
        assert script.index("systemctl daemon-reload") < script.index(f"\t{VIP_ALERT} sync\n") < script.index("systemctl start pacemaker")


def test_the_cib_has_the_alert_on_resource_events(plan: ClusterPlan) -> None:
    cib = text(plan, "cluster1", pm.CIB_CRM)
    assert f'alert {VIP_ALERT_ID} "{VIP_ALERT}" \\\n\tselect resources\n' in cib


def offline_cib(tmp_path: Path, crm_text: str) -> Path:
    cib = empty_quorate_cib(tmp_path / "cib.xml")
    crm_file = tmp_path / "cib.crm"
    crm_file.write_text(crm_text)
    errors = crm_load(cib, crm_file)
    assert not errors, "\n".join(errors)
    return cib


def test_crm_verify_accepts_the_cib_with_the_alert(plan: ClusterPlan, tmp_path: Path) -> None:
    cib = offline_cib(tmp_path, text(plan, "cluster1", pm.CIB_CRM))
    proc = subprocess.run(["crm_verify", "-x", str(cib)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = re.search(r"<alerts>.*</alerts>", cib.read_text(), re.S)
    assert alerts and f'<alert id="{VIP_ALERT_ID}" path="{VIP_ALERT}">' in alerts.group(0) and "<select_resources/>" in alerts.group(0)
    assert "<select_nodes" not in alerts.group(0) and "<recipient" not in alerts.group(0)


def test_turning_node_metrics_off_removes_the_alert_from_a_running_cib(tmp_path: Path) -> None:
    """53-cib's cib_apply deletes the alert the previous file defined (crm configure load update alone keeps it)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "crm").write_text(f"#!/bin/sh\nexec {shutil.which('crm')} -F \"$@\"\n")
    (bindir / "crm").chmod(0o755)
    cib = tmp_path / "live.xml"
    cib.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True).stdout)
    env = {**os.environ, "CIB_file": str(cib), "PATH": f"{bindir}:{os.environ['PATH']}"}
    for i, p in enumerate((plan_for(), plan_for(enabled=False))):
        crm_file = tmp_path / f"{i}.crm"
        crm_file.write_text(text(p, "cluster1", pm.CIB_CRM))
        script = render("steps/director/_cib.sh.j2") + f'set -euo pipefail\ncib_apply "{crm_file}" "{tmp_path}/state/cib.ids"\n'
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (VIP_ALERT in cib.read_text()) == (i == 0)
    assert f"removing from the CIB: {VIP_ALERT_ID}" in proc.stdout and "grupo1" in cib.read_text()


def test_nothing_of_it_when_turned_off_or_with_keepalived() -> None:
    off = plan_for(enabled=False)
    for d in DIRECTORS:
        assert VIP_ALERT not in off.nodes[d].files and PACEMAKER_DROPIN not in off.nodes[d].files
        assert "sync" not in off.nodes[d].step(pm.PACEMAKER_STEP).script
    assert "alert " not in text(off, "cluster1", pm.CIB_CRM)
    keepalived = render_cluster(StackConfig())
    assert VIP_NOTIFY in keepalived.nodes["cluster1"].files
    assert not [p for node in keepalived.nodes.values() for p in node.files if p in (VIP_ALERT, PACEMAKER_DROPIN)]


def test_the_agent_passes_sh_n_bash_n_and_shellcheck(plan: ClusterPlan, tmp_path: Path) -> None:
    path = tmp_path / "agent.sh"
    path.write_text(text(plan, "standby1", VIP_ALERT))
    for argv in (["sh", "-n"], ["bash", "-n"], ["shellcheck", "-s", "sh"]):
        proc = subprocess.run([*argv, str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{argv}: {proc.stdout}{proc.stderr}"


def test_rendering_is_deterministic() -> None:
    a, b = plan_for(), plan_for()
    for d in DIRECTORS:
        for path in (VIP_ALERT, PACEMAKER_DROPIN, pm.CIB_CRM):
            if path in a.nodes[d].files:
                assert a.nodes[d].files[path].data == b.nodes[d].files[path].data


# --------------------------------------------------------------------------- the agent, run as Pacemaker runs it


class Agent:
    """standby1's rendered agent with its textfile directory moved to tmp_path, and a fake `ip` that
    shows the addresses in `held` (the NICs, for `sync`)."""

    def __init__(self, plan: ClusterPlan, tmp_path: Path):
        self.dir = tmp_path / "textfile"
        self.path = tmp_path / "hawc-vip-alert"
        self.path.write_text(text(plan, "standby1", VIP_ALERT).replace(TEXTFILE_DIR, str(self.dir)))
        self.path.chmod(0o755)
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.nics = tmp_path / "nics"
        self.nics.write_text("")
        (self.bin / "ip").write_text(f'#!/bin/sh\n# ip -o -4 addr show dev NIC\ngrep " $6 " {self.nics} || true\n')
        (self.bin / "ip").chmod(0o755)

    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}:{os.environ['PATH']}"}

    def sync(self, **nic_addresses: str) -> None:
        self.nics.write_text("".join(f"2: {nic} inet {ip}/24 scope global {nic}\n" for nic, ip in nic_addresses.items()))
        subprocess.run([str(self.path), "sync"], check=True, timeout=10, env=self.env())

    def alert(self, rsc: str = "IPVirtual_1", task: str = "start", rc: int = 0, status: int = 0, node: str = "standby1", kind: str = "resource", seq: int = 1) -> None:
        """One alert: the variables Pacemaker 2.1 sets for a resource event (alert_file.sh.sample names them)."""
        env = {
            **self.env(),
            "CRM_alert_version": "2.1.5",
            "CRM_alert_kind": kind,
            "CRM_alert_node": node,
            "CRM_alert_rsc": rsc,
            "CRM_alert_task": task,
            "CRM_alert_rc": str(rc),
            "CRM_alert_target_rc": "0",
            "CRM_alert_status": str(status),
            "CRM_alert_interval": "0",
            "CRM_alert_desc": "ok",
            "CRM_alert_node_sequence": str(seq),
            "CRM_alert_timestamp": "12:00:00.000000",
        }
        subprocess.run([str(self.path)], check=True, timeout=10, env=env)

    def held(self) -> dict[str, int]:
        files = sorted(self.dir.iterdir()) if self.dir.is_dir() else []
        assert all(p.name.startswith("hawc_vip_held_") and p.name.endswith(".prom") for p in files), files  # no temporary file left
        assert all(p.stat().st_mode & 0o777 == 0o644 for p in files)
        return vip_held("".join(p.read_text() for p in files))


@pytest.fixture
def agent(plan: ClusterPlan, tmp_path: Path) -> Agent:
    return Agent(plan, tmp_path)


def test_start_and_stop_on_this_node_write_1_and_0(agent: Agent) -> None:
    agent.alert(task="start", seq=1)
    assert agent.held() == {"192.168.1.200": 1}
    text_ = (agent.dir / "hawc_vip_held_IPVirtual_1.prom").read_text()
    assert 'hawc_vip_held{vip="192.168.1.200",instance_name="IPVirtual_1"} 1\n' in text_ and "# TYPE hawc_vip_held gauge" in text_
    agent.alert(rsc="IPVirtual_2", task="start", seq=2)
    agent.alert(task="stop", seq=3)
    assert agent.held() == {"192.168.1.200": 0, "10.0.100.200": 1}


@pytest.mark.parametrize("task, rc, value", [("monitor", 0, 1), ("monitor", 7, 0)])
def test_a_monitor_or_probe_says_what_it_found(agent: Agent, task: str, rc: int, value: int) -> None:
    agent.alert(task=task, rc=rc, status=0 if rc == 0 else 4)
    assert agent.held() == {"192.168.1.200": value}


@pytest.mark.parametrize(
    "event",
    [
        {"node": "cluster1"},  # another director's operation
        {"rsc": "haproxy"},  # not a VIP resource
        {"rsc": "grupo1"},
        {"kind": "node"},
        {"kind": "fencing"},
        {"status": 1},  # cancelled (the recurring monitor before a stop)
        {"status": -1},  # pending
        {"status": 2},  # timed out: the address's state is unknown
        {"rc": 1, "status": 4},  # a failed start: Pacemaker stops it next (that alert writes 0)
        {"task": "stop", "rc": 1, "status": 4},  # a failed stop: this node gets fenced
        {"task": "notify"},
    ],
)
def test_other_events_change_nothing(agent: Agent, event: dict[str, Any]) -> None:
    agent.alert(task="stop", seq=1)
    before = agent.held()
    agent.alert(**{"task": "start", "seq": 2, **event})
    assert agent.held() == before == {"192.168.1.200": 0}


def test_an_alert_older_than_the_written_one_loses(agent: Agent) -> None:
    """Alerts run concurrently: a start (sequence 5) whose process finishes after the stop that followed it (6) must not win."""
    agent.alert(task="stop", seq=6)
    agent.alert(task="start", seq=5)
    assert agent.held() == {"192.168.1.200": 0}
    agent.alert(task="start", seq=7)
    assert agent.held() == {"192.168.1.200": 1}


def test_sync_writes_what_the_nics_hold_and_restarts_the_sequence(agent: Agent) -> None:
    agent.alert(task="start", seq=900)  # the previous pacemakerd's last word: a stale 1
    agent.sync()  # pacemakerd starts again (a boot: no VIP on the NICs)
    assert agent.held() == {"192.168.1.200": 0, "10.0.100.200": 0}
    st = agent.dir.stat()
    assert st.st_mode & 0o777 == 0o775 and st.st_gid == int(subprocess.run(["getent", "group", ALERT_GROUP], capture_output=True, text=True).stdout.split(":")[2])
    agent.alert(task="start", seq=1)  # the new controller counts from 1 again
    assert agent.held() == {"192.168.1.200": 1, "10.0.100.200": 0}
    agent.sync(enp0s8="10.0.100.200")  # a Pacemaker already running at deployment: the NICs say
    assert agent.held() == {"192.168.1.200": 0, "10.0.100.200": 1}


@pytest.mark.skipif(shutil.which("prometheus-node-exporter") is None, reason="needs Debian's prometheus-node-exporter")
def test_node_exporter_serves_what_the_agent_wrote(agent: Agent, tmp_path: Path) -> None:
    """The real textfile collector (loopback only) reads the files, the `# sequence` comment included, without an error."""
    agent.sync()
    agent.alert(task="start", seq=3)
    port = free_port()
    argv = ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults", "--collector.textfile", f"--collector.textfile.directory={agent.dir}"]
    with open(tmp_path / "exporter.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        body = ""
        for _ in range(50):  # bounded: 10 s
            try:
                body = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert vip_held(body) == {"192.168.1.200": 1, "10.0.100.200": 0}, (tmp_path / "exporter.log").read_text()
    assert "node_textfile_scrape_error 0" in body


def test_lab_status_counts_the_vips_the_stack_moves() -> None:
    """Pacemaker has no heartbeat VIP: `lab status` must not flag it as held by nobody."""
    from webcluster.lab.status import stack_vips
    from webcluster.topology import Topology

    pacemaker_config, _ = parse({"haStack": "pacemaker"})
    assert stack_vips(Topology(pacemaker_config)) == ["192.168.1.200", "10.0.100.200"]
    assert stack_vips(Topology(StackConfig())) == ["192.168.1.200", "10.0.100.200", "10.0.50.200"]
