"""The e2e node-metrics check's decisions, on the e2e stack's model with the nodes' node-exporter
answers replaced (the real format is read from real node-exporters in tests/test_lab_node_metrics.py)."""

from __future__ import annotations

import pytest

from webcluster.e2e import checks
from webcluster.e2e.recording import PlanRecording
from webcluster.e2e.run import stack_path
from webcluster.stackfile import load_stack_file
from webcluster.topology import Topology

BUILD = 'node_exporter_build_info{version="1.5.0"} 1\n'


@pytest.fixture
def cluster() -> checks.Cluster:
    topology = Topology(load_stack_file(stack_path("e2e")).config)
    urls = {n.name: f"http://{n.internal_address}:9100/metrics" for n in topology.nodes}
    return checks.Cluster(topology, PlanRecording("e2e", {}, {}, outputs={"nodeMetricsUrls": urls}))


def held_lines(c: checks.Cluster, holder: str) -> dict[str, str]:
    """director -> its scrape: hawc_vip_held of every VIP, 1 on `holder` (labels sorted, as node-exporter prints them)."""
    vips = [(i, str(v)) for i, v in enumerate((c.topology.cluster.vips.external, c.topology.cluster.vips.internal, c.topology.cluster.vips.heartbeat), 1)]
    return {d.name: BUILD + "".join(f'hawc_vip_held{{instance_name="VI_{i}",vip="{v}"}} {int(d.name == holder)}\n' for i, v in vips) for d in c.topology.directors}


def answers(monkeypatch, c: checks.Cluster, rounds: list[dict[str, str]]) -> list[str]:
    """Each round of director scrapes answers from the next dict (the last one repeats); other nodes answer BUILD."""
    asked: list[str] = []
    directors = {str(d.internal): d.name for d in c.topology.directors}

    def http_get(url: str, timeout: float = 10, auth: str | None = None) -> tuple[bool, str]:
        asked.append(url)
        address = url.split("//")[1].split(":")[0]
        if address not in directors:
            return True, BUILD + "node_load1 0.5\n"
        n = sum(1 for u in asked if u.split("//")[1].split(":")[0] in directors) - 1
        current = rounds[min(n // len(directors), len(rounds) - 1)]
        return (True, current[directors[address]]) if directors[address] in current else (False, "curl: (28) timed out")

    monkeypatch.setattr(checks, "http_get", http_get)
    monkeypatch.setattr(checks.time, "sleep", lambda _s: None)
    return asked


def test_every_node_is_scraped_and_each_vip_has_one_holder(cluster, monkeypatch) -> None:
    master = cluster.topology.directors[0].name
    asked = answers(monkeypatch, cluster, [held_lines(cluster, master)])
    detail = checks.check_node_metrics(cluster)
    assert f"{len(cluster.topology.nodes)} nodes answer" in detail and f"{cluster.topology.cluster.vips.external} {master}" in detail
    assert len(asked) == len(cluster.topology.nodes)


def test_two_holders_or_none_fail_unless_a_later_round_agrees(cluster, monkeypatch) -> None:
    master, standby = (d.name for d in cluster.topology.directors[:2])
    split = held_lines(cluster, master) | {standby: held_lines(cluster, standby)[standby]}  # both say 1
    answers(monkeypatch, cluster, [split])
    with pytest.raises(checks.CheckFailed, match="not 1 each"):
        checks.check_node_metrics(cluster)
    nobody = held_lines(cluster, "nobody")
    answers(monkeypatch, cluster, [nobody])
    with pytest.raises(checks.CheckFailed, match="not 1 each"):
        checks.check_node_metrics(cluster)
    answers(monkeypatch, cluster, [nobody, held_lines(cluster, standby)])  # a VIP moving between two scrapes
    assert "(2 rounds)" in checks.check_node_metrics(cluster)


def test_a_director_without_the_metric_or_an_exporter_fails(cluster, monkeypatch) -> None:
    master = cluster.topology.directors[0].name
    missing = held_lines(cluster, master) | {master: BUILD}
    answers(monkeypatch, cluster, [missing])
    with pytest.raises(checks.CheckFailed, match="None"):
        checks.check_node_metrics(cluster)
    silent = {k: v for k, v in held_lines(cluster, master).items() if k != master}
    answers(monkeypatch, cluster, [silent])
    with pytest.raises(checks.CheckFailed, match=f"{master}: node-exporter"):
        checks.check_node_metrics(cluster)


def test_the_check_runs_after_the_haproxy_exporter_check() -> None:
    names = [name for name, _ in checks.CHECKS]
    assert names.index("node metrics (node-exporter, VIP holders)") == names.index("Prometheus exporter on every director") + 1
