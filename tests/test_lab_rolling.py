"""A rolling container change in the namespace lab, under load: every container replaced host by
host with the rendered hawc-rotation (drain on every director, idle, maint, replace, HAProxy's
checks, ready) loses no request in HTTP mode and at most the TCP loss budget; the same replacement
without it (what the containers step did before) loses requests.

Needs root and the Debian daemons, as tests/test_lab.py.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from conftest import running_lab
from webcluster.lab import gluster_fops, rolling
from webcluster.loss import loss_budget

DEV = Path(__file__).resolve().parents[1] / "Pulumi.dev.yaml"
CONCURRENCY = 10
LOAD_S = 120.0  # at most; stopped once the roll is done
PAGE = "/record.php?id=roll&ms=50"  # 50 ms a request: a replaced container always has some in flight


@pytest.fixture(scope="module")
def lab():
    with running_lab(DEV) as context:
        yield context


def roll_under_load(lab, drained: bool) -> tuple[rolling.Roll, dict[str, dict]]:
    services = {s.mode.value: s for s in lab.services_by("http", "nfs") + lab.services_by("tcp", "nfs")}
    loads = {mode: lab.start_load(lab.url(s.port, PAGE), 10_000_000, CONCURRENCY, duration=LOAD_S) for mode, s in services.items()}
    try:
        time.sleep(1.0)
        started = time.monotonic()
        result = rolling.roll(lab, drained)
        assert time.monotonic() - started < LOAD_S - 2, "the roll must end while the load still runs"
        time.sleep(1.0)
    finally:
        for proc in loads.values():
            proc.send_signal(signal.SIGTERM)  # the load stops and prints its counts
    counts = {mode: lab.finish_load(proc) for mode, proc in loads.items()}
    for mode, c in counts.items():
        print(f"{'drained' if drained else 'plain'} roll, {mode}: {c['requests']} sent, {c['failed']} failed {c['failures']}, hosts {result.hosts}")
    return result, counts


def test_rolling_with_the_rotation_loses_nothing_in_http_mode(lab) -> None:
    result, counts = roll_under_load(lab, drained=True)
    assert [h for h, _ in result.hosts] == ["cluster2", "cluster3", "cluster4"]
    assert all("UP (health check) on every answering director" in out for out in result.output[2::4]), result.output
    assert counts["http"]["failed"] == 0, counts["http"]["failures"]
    assert counts["tcp"]["failed"] <= loss_budget("tcp", CONCURRENCY), counts["tcp"]["failures"]
    assert all(c["requests"] > 200 for c in counts.values())
    states, _ = lab.stats()
    assert set(states.values()) == {"UP"}, "every server back in rotation"


def test_the_same_replacement_without_the_rotation_loses_requests(lab) -> None:
    _, counts = roll_under_load(lab, drained=False)
    assert counts["http"]["failed"] + counts["tcp"]["failed"] > 0, "without the drain the replaced containers' requests in flight are lost"


def test_content_changes_are_atomic_every_response_is_one_release(lab) -> None:
    """Versions published one after another with the NAS's rendered content step, under load on
    the NFS services: no response mixes two versions, none fails, and the new ones are served."""
    from webcluster.lab import releases

    services = lab.services_by("http", "nfs") + lab.services_by("tcp", "nfs")
    urls = [lab.url(s.port, p) for s in services for p in ("/index.php", "/imagen.html")]
    try:
        releases.publish(lab, 1)
        checker = releases.start_checker(urls)
        try:
            outputs = []
            for n in range(2, 8):
                time.sleep(1.5)
                outputs.append(releases.publish(lab, n))
            time.sleep(1.5)
        finally:
            counts = releases.stop_checker(checker)
        print(f"content changes: {counts}")
        assert counts["failed"] == 0 and counts["mixed"] == 0, counts["problems"]
        assert counts["requests"] > 200
        assert len(set(counts["versions"]) - {"v0"}) >= 3, f"the new releases were not served: {counts['versions']}"
        assert all("html -> releases/" in out for out in outputs)
    finally:
        releases.restore(lab)


def test_a_gluster_page_costs_few_brick_round_trips(lab) -> None:
    """A page from a Gluster-backed container: the kernel keeps names, attributes and missing
    names (entry/attribute/negative-timeout) and `html` is one symlink, so a GET costs the bricks
    at most a few READLINKs and next to no LOOKUP. Measured with the two-symlink layout and
    Gluster's 1 s / none kernel cache: 7.9 READLINKs and 12.2 LOOKUPs a GET."""
    container = next(k for b in lab.topo.cluster.backends for k in b.containers if k.docroot == "gv0")
    backend = next(b for b in lab.topo.cluster.backends if container in b.containers)
    director = lab.directors[0].name
    calls = gluster_fops.per_get(lab.topo.cluster.gluster.servers[0].name, "gv0", director, f"http://{backend.address}:{container.port}/")
    print(f"brick calls per GET of {container.name}: {calls}")
    assert calls.get("READLINK", 0) <= 6.0, calls
    assert calls.get("LOOKUP", 0) <= 1.0, calls
