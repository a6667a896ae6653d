"""Issue #15, watching the cluster: the rendered stats listener serves HAProxy's Prometheus
exporter behind the stats page's login, and health-check results are logged. Run against a real
HAProxy on loopback with the rendered `defaults`, `userlist` and `listen stats` sections."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest

from conftest import free_port, haproxy_and_a_server
from webcluster.metrics import server_states
from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.validation import check
from webcluster.waiting import wait_until


def sections(cfg: str) -> dict[str, str]:
    """haproxy.cfg split into its top-level sections, keyed by their header line."""
    blocks: dict[str, str] = {}
    header = ""
    for line in cfg.splitlines(keepends=True):
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            header = line.strip()
            blocks[header] = ""
        if header:
            blocks[header] += line
    return blocks


class Stats(NamedTuple):
    port: int
    user: str
    password: str
    log: Path


def stats_listener_on(config: StackConfig, port: int) -> str:
    """The rendered defaults, userlist and stats listener, the listener bound to loopback:`port`."""
    blocks = sections(str(render_cluster(config).nodes["cluster1"].files["/etc/haproxy/haproxy.cfg"].content))
    listen = re.sub(r"(\tbind [^\n]+\n)+", f"\tbind 127.0.0.1:{port}\n", blocks["listen stats"])  # the TLS binds too
    return blocks["defaults"] + blocks.get("userlist stats_users", "") + listen


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Stats]:
    """HAProxy on loopback with the rendered sections, one backend `probe`: server `up` listens,
    server `gone` does not. Its log goes to a file."""
    listener = haproxy_and_a_server()
    port = free_port()
    config = StackConfig()
    rendered = stats_listener_on(config, port)
    password = re.search(r"stats auth [^:]+:(\S+)", rendered).group(1)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "global\n\tlog stdout format raw local0\n" + rendered
        + f"backend probe\n\tserver up 127.0.0.1:{listener.getsockname()[1]} check\n\tserver gone 127.0.0.1:{free_port()} check\n"
    )
    log = tmp_path / "haproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until("HAProxy's stats port", lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10)
        yield Stats(port, config.cluster.haproxy.stats.user, password, log)
    finally:
        proc.kill()
        proc.wait(10)
        listener.close()


def get(url: str, login: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_the_exporter_answers_only_with_the_stats_login_and_reports_server_states(haproxy: Stats) -> None:
    metrics = f"http://127.0.0.1:{haproxy.port}/metrics"
    assert get(metrics)[0] == 401
    assert get(metrics, (haproxy.user, haproxy.password + "x"))[0] == 401
    assert get(metrics, ("nobody", haproxy.password))[0] == 401

    def probe_states() -> dict[tuple[str, str], str]:
        status, body = get(metrics, (haproxy.user, haproxy.password))
        assert status == 200
        return {k: v for k, v in server_states(body).items() if k[0] == "probe"}

    wait_until("the exporter reports server `gone` DOWN", lambda: probe_states().get(("probe", "gone")) == "DOWN", 15, 0.5)
    assert probe_states() == {("probe", "up"): "UP", ("probe", "gone"): "DOWN"}
    page = "http://127.0.0.1:{}{}".format(haproxy.port, StackConfig().cluster.haproxy.stats.uri)
    assert get(page)[0] == 401, "the stats page still asks for its login"
    status, html = get(page, (haproxy.user, haproxy.password))
    assert status == 200 and "Statistics Report" in html


def test_a_failing_health_check_is_logged_before_the_server_goes_down(haproxy: Stats) -> None:
    """`option log-health-checks`: without it HAProxy logs only `Server probe/gone is DOWN`."""
    wait_until("server `gone` DOWN in the log", lambda: "probe/gone is DOWN" in haproxy.log.read_text(), 15, 0.2)
    assert re.search(r"Health check for server probe/gone failed", haproxy.log.read_text())


def test_the_exporter_can_be_turned_off_and_may_not_hide_the_stats_page() -> None:
    off = StackConfig.model_validate({"cluster": {"haproxy": {"stats": {"metricsUri": None}}}})
    listener = stats_listener_on(off, 7000)
    assert "prometheus-exporter" not in listener and "userlist" not in listener
    clash = StackConfig.model_validate({"cluster": {"haproxy": {"stats": {"metricsUri": "/haproxy"}}}})
    assert [p.path for p in check(clash) if p.severity == "error"] == ["cluster.haproxy.stats.metricsUri"]
    with pytest.raises(ValueError, match="metricsUri"):
        StackConfig.model_validate({"cluster": {"haproxy": {"stats": {"metricsUri": "metrics"}}}})


def test_vip_held_reads_the_notify_hooks_file_and_node_exporters_sorted_labels():
    from webcluster.metrics import vip_held

    scrape = (
        "# HELP hawc_vip_held 1 while this director holds the VIP\n# TYPE hawc_vip_held gauge\n"
        'hawc_vip_held{instance_name="VI_1",vip="192.168.1.200"} 1\n'
        'hawc_vip_held{instance_name="VI_2",vip="10.0.100.200"} 0\n'
        'hawc_vip_helder{vip="10.0.50.200"} 1\n'
    )
    assert vip_held(scrape) == {"192.168.1.200": 1, "10.0.100.200": 0}
    assert vip_held('hawc_vip_held{vip="10.0.50.200",instance_name="VI_3"} 1\n') == {"10.0.50.200": 1}
    assert vip_held("node_load1 0.1\n") == {}
