"""`e2e run --resume`: after a provisioning that failed half-way, a second `pulumi up` on the same
guests runs what the first did not finish (the failed step and those never started), in the
plan's order, and nothing it finished; then the snapshots are saved under the plan's key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from webcluster.e2e import guests
from webcluster.e2e import run as run_module
from webcluster.e2e.recording import Guest, PlanRecording, RemoteStep
from webcluster.e2e.replay import StepResult


def _step(name: str, guest: str = "g1", after: frozenset[str] = frozenset()) -> RemoteStep:
    return RemoteStep(name, guest=guest, host="10.0.0.1", port=22, user="debian", private_key="k", proxy=None, command="sudo bash -s",
                      stdin="x", after=after, triggers=("d", "i"))


def _plan() -> PlanRecording:
    vm = {g: Guest(g, 512, 1, (), (), {}) for g in ("g1", "g2")}
    steps = {"a": _step("a"), "b": _step("b", "g2", frozenset({"a"})), "c": _step("c", after=frozenset({"b"})), "d": _step("d", "g2")}
    return PlanRecording("s", vm, steps)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The guests and their snapshots faked; replay runs the steps' names, failing those in `fail`."""
    seen: dict = {"replayed": [], "snapshots": [], "alive": {"g1", "g2"}, "fail": set()}
    monkeypatch.setattr(run_module, "PROVISIONED", tmp_path / "provisioned.json")
    monkeypatch.setattr(guests, "alive", lambda g: g in seen["alive"])
    monkeypatch.setattr(guests, "save_snapshot", lambda g, tag, key: seen["snapshots"].append((g, key)))

    def fake_replay(plan: PlanRecording, ensure_guest) -> list[StepResult]:
        names = [s.name for s in plan.ordered()]
        seen["replayed"].append((names, {n: set(plan.steps[n].after) for n in names}))
        return [StepResult(n, plan.steps[n].guest, n not in seen["fail"], 1.0, "") for n in names]

    monkeypatch.setattr(run_module, "replay", fake_replay)
    return seen


def test_a_failed_provisioning_is_finished_by_resume_and_only_then_snapshotted(host: dict) -> None:
    plan = _plan()
    run_module.record_provisioned("K", [StepResult("a", "g1", True, 1, ""), StepResult("d", "g2", True, 1, ""), StepResult("b", "g2", False, 1, "")])
    report = run_module.Report()
    run_module.resume_provisioning(plan, "K", report)
    names, after = host["replayed"][-1]
    assert names == ["b", "c"] and after == {"b": set(), "c": {"b"}}  # the failed one and the one never started, in order
    assert sorted(host["snapshots"]) == [("g1", "K"), ("g2", "K")]
    assert set(json.loads(run_module.PROVISIONED.read_text())["done"]) == {"a", "b", "c", "d"}


def test_a_resume_that_fails_again_saves_no_snapshot_and_keeps_what_it_finished(host: dict) -> None:
    plan = _plan()
    run_module.record_provisioned("K", [StepResult("a", "g1", True, 1, "")])
    host["fail"] = {"c"}
    with pytest.raises(RuntimeError, match="--resume"):
        run_module.resume_provisioning(plan, "K", run_module.Report())
    assert host["snapshots"] == []
    host["fail"] = set()
    run_module.resume_provisioning(plan, "K", run_module.Report())
    assert host["replayed"][-1][0] == ["c"]  # b and d were finished by the first resume


@pytest.mark.parametrize("why", ["no record", "other plan", "a guest stopped"])
def test_resume_refuses_what_it_cannot_continue(host: dict, why: str) -> None:
    if why != "no record":
        run_module.record_provisioned("K" if why == "a guest stopped" else "OLD", [StepResult("a", "g1", True, 1, "")])
    if why == "a guest stopped":
        host["alive"] = {"g1"}
    with pytest.raises(RuntimeError, match="nothing to resume"):
        run_module.resume_provisioning(_plan(), "K", run_module.Report())
    assert host["replayed"] == [] and host["snapshots"] == []


def test_a_failed_provisioning_records_what_it_finished(host: dict) -> None:
    host["fail"] = {"d"}
    with pytest.raises(RuntimeError, match="--resume"):
        run_module.provision(_plan(), None, "K", run_module.Report())
    assert json.loads(run_module.PROVISIONED.read_text()) == {"key": "K", "done": ["a", "b", "c"]}
    assert host["snapshots"] == []


@pytest.mark.parametrize("snapshots, resume", [(True, False), (False, False), (False, True)])
def test_the_checks_wait_for_the_servers_after_a_provisioning_or_a_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshots: bool, resume: bool) -> None:
    """Saving the snapshots pauses every guest (the Gluster servers too), and a restore resumes
    that moment: the checks start only once every server stayed UP and the VIP settled."""
    calls: list[str] = []
    monkeypatch.setattr(run_module, "recorded_stack", lambda stack, report: (None, _plan(), None))
    monkeypatch.setattr(run_module, "snapshot_key", lambda image, plan: "K")
    monkeypatch.setattr(run_module, "host_side", lambda topology, plan: None)
    monkeypatch.setattr(run_module.network, "create", lambda host: None)
    monkeypatch.setattr(guests, "stop_all", lambda: [])
    monkeypatch.setattr(guests, "CHANGED_MARK", tmp_path / "changed")
    monkeypatch.setattr(guests, "snapshot_matches", lambda g, key: snapshots)
    monkeypatch.setattr(run_module, "restored", lambda plan, image, report: calls.append("restored") or True)
    monkeypatch.setattr(run_module, "provision", lambda plan, image, key, report: calls.append("provision"))
    monkeypatch.setattr(run_module, "resume_provisioning", lambda plan, key, report: calls.append("resume"))
    monkeypatch.setattr(run_module, "watch_vip", lambda topology, plan: type("W", (), {"stop": lambda self: None})())
    monkeypatch.setattr(run_module, "healthy", lambda c: calls.append("settle"))
    monkeypatch.setattr(run_module, "run_checks", lambda c, log: calls.append("checks") or [])
    run_module.e2e_run("s", keep=True, resume=resume)
    expected = ["resume"] if resume else ["restored"] if snapshots else ["provision"]
    assert calls == expected + ["settle", "checks"]
