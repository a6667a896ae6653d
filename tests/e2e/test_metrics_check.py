"""The e2e exporter check's decisions, on the e2e stack's model with the directors' answers
replaced (the real exporter's format is read from a real HAProxy in tests/test_metrics.py)."""

from __future__ import annotations

import pytest

from webcluster.e2e import checks
from webcluster.e2e.recording import PlanRecording
from webcluster.e2e.run import stack_path
from webcluster.render.director import service_views
from webcluster.stackfile import load_stack_file
from webcluster.topology import Topology

LOGIN = "admin:s3cret"


def exposition(states: dict[tuple[str, str], str]) -> str:
    """The exporter's lines for these server states (every state listed, 1 for the current one)."""
    return "".join(
        f'haproxy_server_status{{proxy="{b}",server="{s}",state="{st}"}} {int(st == state)}\n'
        for (b, s), state in sorted(states.items()) for st in ("DOWN", "UP", "MAINT")
    )


@pytest.fixture
def cluster() -> checks.Cluster:
    topology = Topology(load_stack_file(stack_path("e2e")).config)
    urls = {d.name: f"http://{d.internal}:7000/metrics" for d in topology.directors}
    outputs = {"metricsUrls": urls, "statsUser": "admin", "statsPassword": "s3cret"}
    return checks.Cluster(topology, PlanRecording("e2e", {}, {}, outputs=outputs))


def all_up(c: checks.Cluster) -> dict[tuple[str, str], str]:
    return {(v.backend, m.name): "UP" for v in service_views(c.topology) for m in v.members}


def answers(monkeypatch, states: dict[tuple[str, str], str], open_to_all: bool = False) -> list[str]:
    asked: list[str] = []

    def http_get(url: str, timeout: float = 10, auth: str | None = None) -> tuple[bool, str]:
        asked.append(f"{url} {'login' if auth == LOGIN else 'anonymous'}")
        if auth != LOGIN and not open_to_all:
            return False, "curl: (22) The requested URL returned error: 401"
        return True, exposition(states)

    monkeypatch.setattr(checks, "http_get", http_get)
    return asked


def test_every_director_is_scraped_with_and_without_the_login(cluster, monkeypatch) -> None:
    asked = answers(monkeypatch, all_up(cluster))
    detail = checks.check_metrics(cluster)
    assert f"3 directors, {len(all_up(cluster))} servers UP each" in detail
    assert len(asked) == 6 and {a.split()[1] for a in asked} == {"login", "anonymous"}


def test_a_server_down_or_missing_or_an_open_exporter_fails_the_check(cluster, monkeypatch) -> None:
    states = all_up(cluster)
    first = sorted(states)[0]
    answers(monkeypatch, states | {first: "DOWN"})
    with pytest.raises(checks.CheckFailed, match=f"{first[0]}/{first[1]}:DOWN"):
        checks.check_metrics(cluster)
    answers(monkeypatch, {k: v for k, v in states.items() if k != first})
    with pytest.raises(checks.CheckFailed, match="unlike the model"):
        checks.check_metrics(cluster)
    answers(monkeypatch, states, open_to_all=True)
    with pytest.raises(checks.CheckFailed, match="without the login"):
        checks.check_metrics(cluster)


def test_a_scrape_without_any_answer_is_asked_again_but_an_http_status_is_final(cluster, monkeypatch) -> None:
    """A starved emulated director once let a scrape time out (curl 28): asked again, the 401 came."""
    replies = [(False, "curl: (28) Operation timed out after 10008 milliseconds with 0 bytes received")]
    asked = answers(monkeypatch, all_up(cluster))
    fake = checks.http_get

    def flaky(url: str, timeout: float = 10, auth: str | None = None) -> tuple[bool, str]:
        return replies.pop(0) if replies else fake(url, timeout, auth)

    monkeypatch.setattr(checks, "http_get", flaky)
    assert "3 directors" in checks.check_metrics(cluster) and len(asked) == 6
    answers(monkeypatch, all_up(cluster), open_to_all=True)
    with pytest.raises(checks.CheckFailed, match="without the login"):
        checks.check_metrics(cluster)
