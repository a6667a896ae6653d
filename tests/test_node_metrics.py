"""Issue #15, node-level metrics as rendered: node-exporter on every node bound to its internal
address, its port opened by the model's firewall to nodeMetrics.scrapers only, the directors'
keepalived notify hook writing hawc_vip_held atomically, and nothing of it when turned off."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from webcluster.metrics import vip_held
from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.render.firewall import allowed, client_exposure
from webcluster.render.node_metrics import NODE_EXPORTER_DEFAULTS, NODE_EXPORTER_STEP, TEXTFILE_DIR, VIP_NOTIFY
from webcluster.topology import Topology
from webcluster.validation import check as validate


def config(**node_metrics: object) -> StackConfig:
    return StackConfig.model_validate({"cluster": {"nodeMetrics": node_metrics}} if node_metrics else {})


def test_every_node_installs_node_exporter_on_its_internal_address_alone() -> None:
    plan = render_cluster(config())
    topo = Topology(config())
    for node in topo.nodes:
        files = plan.nodes[node.name].files
        args = str(files[NODE_EXPORTER_DEFAULTS].content)
        assert f'ARGS="--web.listen-address={node.internal_address}:9100 ' in args, node.name
        assert "--no-collector.hwmon" in args and "--no-collector.mdadm" not in args and f"--collector.textfile.directory={TEXTFILE_DIR}" in args
        step = plan.nodes[node.name].step(NODE_EXPORTER_STEP)
        assert "apt_install prometheus-node-exporter\n" in step.script and NODE_EXPORTER_DEFAULTS in step.files


def test_the_firewall_opens_the_port_to_the_scrapers_only() -> None:
    topo = Topology(config())
    scrapers = {"10.0.100.1", "10.0.100.50", "10.0.100.51", "10.0.100.254", "192.168.1.1"}  # directors, host (libvirt address, gateway)
    for node in topo.nodes:
        rules = [r for r in allowed(topo, node) if "9100" in r.ports]
        assert len(rules) == 1 and set(rules[0].sources) == scrapers and rules[0].dests == (str(node.internal_address),), node.name
    client = ipaddress.IPv4Address("192.168.1.254")
    assert not any(9100 in ports for ports in client_exposure(topo, client).values())
    exposed = client_exposure(Topology(config(scrapers=["external"])), client)
    assert 9100 in exposed["10.0.100.1"], "the matrix must show what a wider scraper list opens"


def test_turned_off_nothing_is_rendered_or_opened() -> None:
    off = config(enabled=False)
    plan = render_cluster(off)
    topo = Topology(off)
    for node in topo.nodes:
        assert NODE_EXPORTER_DEFAULTS not in plan.nodes[node.name].files
        assert NODE_EXPORTER_STEP not in {s.name for s in plan.nodes[node.name].steps}
        assert not any("9100" in r.ports for r in allowed(topo, node))
    assert "notify" not in str(plan.nodes["cluster1"].files["/etc/keepalived/keepalived.conf"].content)
    assert VIP_NOTIFY not in plan.nodes["cluster1"].files


def test_scrapers_and_port_are_validated() -> None:
    problems = [str(p) for p in validate(config(scrapers=["nowhere"], port=7000))]
    assert any("nodeMetrics.scrapers[0]" in p and "nowhere" in p for p in problems), problems
    assert any("nodeMetrics.port" in p and "stats listener" in p for p in problems), problems
    assert not [p for p in validate(config(scrapers=["host", "directors", "10.0.100.60", "192.168.7.0/24"])) if "nodeMetrics" in str(p)]


def test_every_vrrp_instance_notifies_the_hook() -> None:
    conf = str(render_cluster(config()).nodes["standby1"].files["/etc/keepalived/keepalived.conf"].content)
    assert conf.count(f'\tnotify "{VIP_NOTIFY}"\n') == conf.count("vrrp_instance ") == 3


@pytest.mark.parametrize("state, value", [("MASTER", 1), ("BACKUP", 0), ("FAULT", 0), ("STOP", 0)])
def test_the_notify_hook_writes_the_metric_atomically(tmp_path: Path, state: str, value: int) -> None:
    """The rendered hook, run as keepalived runs it (TYPE NAME STATE PRIORITY), its directory moved to tmp_path."""
    script = str(render_cluster(config()).nodes["cluster1"].files[VIP_NOTIFY].content).replace(TEXTFILE_DIR, str(tmp_path / "tf"))
    hook = tmp_path / "hook.sh"
    hook.write_text(script)
    for args in (["INSTANCE", "VI_1", state, "150"], ["GROUP", "VG1", "MASTER"], ["INSTANCE", "VI_9", "MASTER", "1"]):
        subprocess.run(["sh", str(hook), *args], check=True, timeout=10)
    files = sorted(p.name for p in (tmp_path / "tf").iterdir())
    assert files == ["hawc_vip_held_VI_1.prom"], files  # no temporary file left, groups and unknown instances ignored
    text = (tmp_path / "tf" / files[0]).read_text()
    assert vip_held(text) == {"192.168.1.200": value} and "# TYPE hawc_vip_held gauge" in text


def test_rendering_is_deterministic() -> None:
    a, b = render_cluster(config()), render_cluster(config())
    for name in a.nodes:
        assert {p: f.data for p, f in a.nodes[name].files.items()} == {p: f.data for p, f in b.nodes[name].files.items()}
