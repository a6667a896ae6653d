"""Config changes applied as the directors' steps apply them, in the namespace lab (issue #15):
HAProxy reloads (the rendered reload script) in the rolling order under load, drain/maintenance
kept across them, keepalived reloaded and dnsmasq restarted on the master without a VIP move.

Needs root and the Debian daemons, like tests/test_lab.py; the lab is removed at the end.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from conftest import DEV_STACK, running_lab
from webcluster.lab import reloads
from webcluster.lab.context import LabContext


@pytest.fixture(scope="module")
def lab() -> Iterator[LabContext]:
    with running_lab(DEV_STACK) as context:
        yield context


def test_rolling_order_is_the_standbys_then_the_vip_holder(lab: LabContext) -> None:
    order = reloads.rolling_order(lab)
    assert order == [d.name for d in reversed(lab.directors)]
    assert lab.holders(lab.vip) == [order[-1]]


def test_reloads_lose_no_request_keep_drains_and_move_no_vip(lab: LabContext) -> None:
    notes = reloads.config_reloads(lab)
    print("\n".join(notes))
    assert len(notes) == 4


def test_a_reload_starts_a_new_worker_and_keeps_the_master(lab: LabContext) -> None:
    master = lab.directors[0].name
    proc = lab.state.find(master, "haproxy")
    before = reloads.admin(master, "show info")
    out = reloads.reload_haproxy(master)
    after = reloads.admin(master, "show info")
    pid = [line for line in before.splitlines() if line.startswith("Pid:")]
    assert pid and pid != [line for line in after.splitlines() if line.startswith("Pid:")], out
    assert lab.state.find(master, "haproxy").pid == proc.pid  # the lab's process: the same master


def test_a_config_haproxy_refuses_is_not_loaded(lab: LabContext) -> None:
    """The reload script checks first: a broken haproxy.cfg leaves the running worker serving."""
    from webcluster.lab.state import sandbox

    standby = lab.directors[-1].name
    cfg = sandbox(standby).path("/etc/haproxy/haproxy.cfg")
    good = cfg.read_bytes()
    before = reloads.admin(standby, "show info")
    try:
        cfg.write_bytes(good + b"\nbackend broken\n\tserver x nowhere.invalid:1\n")
        with pytest.raises(reloads.ReloadError):
            reloads.reload_haproxy(standby)
        assert reloads.admin(standby, "show info").split("Pid:")[1].split()[0] == before.split("Pid:")[1].split()[0]
    finally:
        cfg.write_bytes(good)
