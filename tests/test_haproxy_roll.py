"""A HAProxy change reaches the directors one at a time, standbys first, the master last (issue #15).

40-haproxy installs the files on every director side by side and starts HAProxy only where it
does not run; 60-haproxy-roll applies them, each director's waiting for the previous one's. The
order is checked on the rendered plans; the two scripts run as rendered, under bash, with
systemctl, haproxy and the certificate swap replaced by tiny scripts that log what they are asked.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import fake_programs
from webcluster.render import ClusterPlan, render_cluster
from webcluster.render.builder import STEP_STAMPS
from webcluster.render.director import HAPROXY_CFG, HAPROXY_DROPIN, HAPROXY_ROLL_STEP, haproxy_roll_order
from webcluster.render.https import CERT_FILE, SWAP_SCRIPT
from webcluster.render.plan import StepRef
from webcluster.stackfile import load_stack_file
from webcluster.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
STACKS = [ROOT / "Pulumi.dev.yaml", ROOT / "Pulumi.e2e.yaml", ROOT / "tests" / "topologies" / "two-directors.yaml"]


def plans() -> list[tuple[str, ClusterPlan, Topology]]:
    out = []
    for path in STACKS:
        config = load_stack_file(path).config
        out.append((path.stem, render_cluster(config), Topology(config)))
    return out


PLANS = plans()


def ancestors(plan: ClusterPlan, ref: StepRef) -> set[StepRef]:
    steps = {s.ref: s for s in plan.all_steps()}
    seen: set[StepRef] = set()
    todo = [ref]
    while todo:
        for dep in plan.dependencies(steps[todo.pop()]):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


@pytest.mark.parametrize("name,plan,topo", PLANS, ids=[n for n, _, _ in PLANS])
def test_the_roll_goes_from_the_lowest_priority_director_to_the_master(name: str, plan: ClusterPlan, topo: Topology) -> None:
    order = [d.name for d in haproxy_roll_order(topo)]
    assert order[-1] == topo.master.name and len(order) == len(topo.directors)
    priorities = [next(d.priority for d in topo.directors if d.name == n) for n in order[:-1]]
    assert priorities == sorted(priorities)
    position = {s.ref: i for i, s in enumerate(plan.ordered_steps())}
    rolls = [plan.nodes[n].step(HAPROXY_ROLL_STEP).ref for n in order]
    for earlier, later in zip(rolls, rolls[1:]):
        assert earlier in plan.nodes[later.node].step(HAPROXY_ROLL_STEP).after, f"{later} does not wait for {earlier}"
        assert position[earlier] < position[later]


@pytest.mark.parametrize("name,plan,topo", PLANS, ids=[n for n, _, _ in PLANS])
def test_each_roll_step_carries_its_directors_haproxy_files(name: str, plan: ClusterPlan, topo: Topology) -> None:
    """So a change of any of them (config, certificate, reload script) runs both steps, and a step
    digest that changes for one changes for the other."""
    for d in topo.directors:
        node = plan.nodes[d.name]
        install, roll = node.step("40-haproxy"), node.step(HAPROXY_ROLL_STEP)
        assert roll.files == install.files and HAPROXY_CFG in roll.files
        assert install.ref in roll.after


@pytest.mark.parametrize("name,plan,topo", PLANS, ids=[n for n, _, _ in PLANS])
def test_a_first_deployment_does_not_wait_for_the_roll(name: str, plan: ClusterPlan, topo: Topology) -> None:
    """Nothing on the way to the VIPs waits for a roll step (chained HAProxy steps once cost the
    e2e ~10 minutes), but a Docker host's roll does: a new server must exist in every HAProxy
    before it is put in rotation."""
    directors = {d.name for d in topo.directors}
    for node in plan.nodes.values():
        if node.name in directors:
            continue
        first = node.steps[0]
        assert not any(r.name == HAPROXY_ROLL_STEP for r in ancestors(plan, first.ref)), f"{first.ref} waits for a HAProxy roll"
        if any(s.name == "45-roll" for s in node.steps):
            rolled = {r for r in ancestors(plan, node.step("45-roll").ref) if r.name == HAPROXY_ROLL_STEP}
            assert {r.node for r in rolled} == directors


# --------------------------------------------------------------------------- the scripts, run


FAKES = {
    "systemctl": 'echo "systemctl $*" >> "$LOG"\n'
                 'case "$1" in is-active) [ -e "$STATE/active" ];; start) touch "$STATE/active";;'
                 ' reload) [ -e "$STATE/refuse" ] && exit 1; true;; *) true;; esac',
    "haproxy": 'echo "haproxy $*" >> "$LOG"\n[ ! -e "$STATE/refuse" ]',
    "dpkg-query": 'echo "install ok installed"',
    "apt-get": 'echo "apt-get $*" >> "$LOG"',
    "hawc-haproxy-cert": 'echo "swap $*" >> "$LOG"\n[ ! -e "$STATE/api-refuses" ]',
}


class Director:
    """One director's files and services, in a temporary directory."""

    def __init__(self, tmp: Path, plan: ClusterPlan, node: str):
        self.tmp = tmp
        self.bin = fake_programs(tmp / "bin", FAKES)
        self.cfg = tmp / "haproxy.cfg"
        self.cert = tmp / "site.pem"
        self.log = tmp / "log"
        self.cfg.write_text("global\n")
        self.cert.write_text("cert 1\n")
        (tmp / "haproxy.service.conf").write_text("[Service]\n")
        self.scripts = {name: self._localized(plan.nodes[node].step(name).script) for name in ("40-haproxy", HAPROXY_ROLL_STEP)}

    def _localized(self, script: str) -> str:
        for real, here in ((HAPROXY_CFG, self.cfg), (CERT_FILE, self.cert), (SWAP_SCRIPT, self.bin / "hawc-haproxy-cert"),
                           ("/var/lib/ha-web-cluster/haproxy", self.tmp / "stamps"), ("/etc/haproxy/certs", self.tmp / "certs"),
                           (STEP_STAMPS, self.tmp / "step-stamps"), (HAPROXY_DROPIN, self.tmp / "haproxy.service.conf")):
            script = script.replace(real, str(here))
        assert "/etc/haproxy/haproxy.cfg" not in script and "/var/lib/ha-web-cluster" not in script
        return script

    def run(self, step: str) -> tuple[int, list[str], str]:
        self.log.write_text("")
        (self.tmp / "certs").mkdir(exist_ok=True)
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LOG": str(self.log), "STATE": str(self.tmp)}
        out = subprocess.run(["bash", "-c", self.scripts[step]], capture_output=True, text=True, env=env, timeout=30)
        calls = [c for c in self.log.read_text().splitlines() if not c.startswith(("systemctl is-active", "systemctl daemon-reload", "systemctl is-enabled", "systemctl enable", "haproxy -c"))]
        return out.returncode, calls, out.stdout + out.stderr

    def deploy(self) -> list[str]:
        """What `pulumi up` runs when both steps' files changed: 40, then (its turn) 60."""
        calls = []
        for step in ("40-haproxy", HAPROXY_ROLL_STEP):
            code, step_calls, out = self.run(step)
            assert code == 0, f"{step}: {out}"
            calls += step_calls
        return calls


@pytest.fixture
def director(tmp_path: Path) -> Director:
    plan = dict((n, p) for n, p, _ in PLANS)["Pulumi.dev"]
    assert "hawc-haproxy-cert" in plan.nodes["standby1"].step(HAPROXY_ROLL_STEP).script, "the dev stack has TLS frontends"
    return Director(tmp_path, plan, "standby1")


def test_the_first_run_starts_haproxy_and_the_roll_leaves_it_alone(director: Director) -> None:
    assert director.deploy() == ["systemctl start haproxy"]
    assert director.deploy() == []


def test_a_changed_config_is_installed_by_40_and_reloaded_by_60_only(director: Director) -> None:
    director.deploy()
    director.cfg.write_text("global\n  maxconn 10\n")
    code, calls, out = director.run("40-haproxy")
    assert (code, calls) == (0, []), out
    code, calls, out = director.run(HAPROXY_ROLL_STEP)
    assert (code, calls) == (0, ["systemctl reload haproxy"]), out
    assert director.deploy() == [], "reloaded twice for one change"


def test_a_new_certificate_goes_in_through_the_runtime_api(director: Director) -> None:
    director.deploy()
    director.cert.write_text("cert 2\n")
    assert director.deploy() == [f"swap {director.cert}"]
    director.cert.write_text("cert 3\n")
    (director.tmp / "api-refuses").touch()
    assert director.deploy() == [f"swap {director.cert}", "systemctl reload haproxy"]


def test_a_refused_config_fails_the_step_and_counts_as_not_loaded(director: Director) -> None:
    """A refused reload stops the roll on this director (the next waits for its step) and is
    tried again on the next run: the stamp is only written once HAProxy took the files."""
    director.deploy()
    director.cfg.write_text("global\n  bogus\n")
    (director.tmp / "refuse").touch()
    code, _, _ = director.run("40-haproxy")
    assert code != 0
    code, calls, _ = director.run(HAPROXY_ROLL_STEP)
    assert code != 0 and calls == ["systemctl reload haproxy"]
    (director.tmp / "refuse").unlink()
    assert director.deploy() == ["systemctl reload haproxy"]


def test_a_stopped_haproxy_is_started_by_either_step(director: Director) -> None:
    director.deploy()
    (director.tmp / "active").unlink()
    code, calls, out = director.run(HAPROXY_ROLL_STEP)
    assert (code, calls) == (0, ["systemctl start haproxy"]), out
