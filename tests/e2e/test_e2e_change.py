"""`e2e change` without guests: which steps `pulumi up` re-runs for each of the issue's changes (the
program run under mocks with each change's configuration), the load's counts, the table's verdicts,
and that recording the steps' triggers left the snapshot key alone."""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from webcluster.e2e import changes
from webcluster.e2e.changes import Row, Variant, changed_steps, plan_of_changed, reruns, table
from webcluster.e2e.recording import PlanRecording, RemoteStep
from webcluster.e2e.checks import Failure
from webcluster.e2e.serverwatch import Sample

PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nfixed\n-----END OPENSSH PRIVATE KEY-----\n"
PUBLIC = "ssh-ed25519 AAAAfixed hawc-e2e\n"
CERT = ("-----BEGIN CERTIFICATE-----\nTUlJQ2hhbmdlZA==\n-----END CERTIFICATE-----\n", "-----BEGIN PRIVATE KEY-----\nTUlJa2V5\n-----END PRIVATE KEY-----\n")
# 40-haproxy installs the files side by side; 60-haproxy-roll applies them standbys first, the master last.
DIRECTORS_INSTALL = ["cluster1-40-haproxy", "standby1-40-haproxy", "standby2-40-haproxy"]
DIRECTORS_ROLL = ["standby2-60-haproxy-roll", "standby1-60-haproxy-roll", "cluster1-60-haproxy-roll"]
DIRECTORS_HAPROXY = [*DIRECTORS_INSTALL, *DIRECTORS_ROLL]


def _record(*args, **kwargs) -> PlanRecording:
    from webcluster.e2e.recording import record

    return record("e2e", PRIVATE, PUBLIC, *args, **kwargs)


@pytest.fixture(scope="module")
def recorded() -> dict[str, tuple[PlanRecording, PlanRecording]]:
    """change name -> (plan before, plan after), cumulatively as `e2e change` applies them. The
    mocks' own stand-in PEMs (deterministic) instead of the e2e's PKI store under /var/lib."""
    from webcluster.e2e import pki as e2e_pki
    from webcluster.e2e.change import OnGuests, the_changes
    from webcluster.e2e.recording import stack_config
    from webcluster.stackfile import load_stack_file, stack_path
    from webcluster.topology import Topology

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(e2e_pki, "provider_outputs", lambda typ, name, inputs=None: {})
        topology = Topology(load_stack_file(stack_path("e2e")).config)
        listed = the_changes(stack_config("e2e"), topology, OnGuests(lambda: CERT, lambda old, new: "", lambda page, text: None, lambda chain: None))
        before, variant, out = _record(), Variant(), {}
        for change in listed:
            variant = change.apply(variant)
            with changes.templates_edited(variant.templates):
                after = _record(variant.secrets, variant.overrides)
            out[change.name] = (before, after)
            before = after
    return out


def test_the_changes_are_the_issue_s_five_in_order(recorded) -> None:
    assert tuple(recorded) == changes.CHANGE_NAMES


def test_haproxy_timeout_re_runs_exactly_the_directors_haproxy_steps(recorded) -> None:
    """`timeout server` is in haproxy.cfg, which only the directors' 40-haproxy step carries: its
    digest (a trigger) and its script change, nothing else does."""
    before, after = recorded["haproxy timeout"]
    assert changed_steps(before, after) == DIRECTORS_HAPROXY
    assert "timeout server  16000" in after.steps["cluster1-40-haproxy"].stdin
    assert before.steps["cluster1-40-haproxy"].triggers != after.steps["cluster1-40-haproxy"].triggers


def test_certificate_re_runs_exactly_the_directors_haproxy_steps_by_their_stdin(recorded) -> None:
    """The certificate fills a placeholder of the directors' 40-haproxy step: the step's digest
    (placeholders unfilled) and so its triggers stay, but its stdin, which carries the filled file,
    changes, and pulumi-command re-runs `create` on a changed stdin too. Only those steps carry it."""
    before, after = recorded["certificate"]
    assert changed_steps(before, after) == DIRECTORS_HAPROXY
    for name in DIRECTORS_HAPROXY:
        assert before.steps[name].triggers == after.steps[name].triggers
        assert before.steps[name].stdin != after.steps[name].stdin
    assert "TUlJQ2hhbmdlZA==" in after.steps["cluster1-40-haproxy"].stdin
    assert "httpsCaCert" not in after.outputs, "a given certificate's issuer is the user's: no generated CA"


def test_content_re_runs_exactly_the_two_content_steps(recorded) -> None:
    """The pages are published by the NAS (NFS docroot) and by cluster2 (the Gluster docroots):
    those two steps carry them; the containers mount the docroots and are not touched."""
    from webcluster.e2e.change import CONTENT_MARKER

    before, after = recorded["content"]
    assert changed_steps(before, after) == ["nas-40-content", "cluster2-30-content"]
    assert CONTENT_MARKER in after.steps["nas-40-content"].stdin
    assert CONTENT_MARKER not in before.steps["nas-40-content"].stdin


def test_one_more_container_re_runs_the_first_docker_host_and_the_directors(recorded) -> None:
    """A container on cluster2 is also a new server in HAProxy's NFS backends (the directors'
    40-haproxy) and a new published port the directors may reach (cluster2's 01-firewall); on
    cluster2 it is created by 40-containers and rolled in by 45-roll. The other Docker hosts'
    steps are unchanged."""
    before, after = recorded["one more container"]
    assert sorted(changed_steps(before, after)) == sorted([*DIRECTORS_HAPROXY, "cluster2-01-firewall", "cluster2-40-containers", "cluster2-45-roll"])
    assert "cluster25p" in after.steps["cluster2-40-containers"].stdin


def test_image_tag_re_runs_every_docker_host_s_docker_container_and_roll_steps(recorded) -> None:
    """The image reference is in 10-docker (present or pulled: the e2e tags it beforehand), in every
    container's definition (40-containers) and in the roll (45-roll), on every Docker host."""
    before, after = recorded["image tag"]
    hosts = ("cluster2", "cluster3", "cluster4")
    assert changed_steps(before, after) == [f"{h}-10-docker" for h in hosts] + [f"{h}-40-containers" for h in hosts] + [f"{h}-45-roll" for h in hosts]


def test_the_changed_plan_runs_in_dependency_order(recorded, monkeypatch) -> None:
    """The image tag's steps replayed from the cut-down plan: each host's docker before its
    containers before its roll, and the rolls one host after another, as the full plan orders them."""
    from webcluster.e2e import replay as replay_module
    from webcluster.e2e.replay import StepResult

    before, after = recorded["image tag"]
    names = changed_steps(before, after)
    ran: list[str] = []
    monkeypatch.setattr(replay_module, "run_step", lambda s: ran.append(s.name) or StepResult(s.name, s.guest, True, 0.0, ""))
    results = replay_module.replay(plan_of_changed(after, names), lambda guest: None, parallel=1)
    assert sorted(ran) == sorted(names) and all(r.ok for r in results)
    for host in ("cluster2", "cluster3", "cluster4"):
        assert ran.index(f"{host}-10-docker") < ran.index(f"{host}-40-containers") < ran.index(f"{host}-45-roll")
    assert ran.index("cluster2-45-roll") < ran.index("cluster3-45-roll") < ran.index("cluster4-45-roll")


def _step(name: str, **kw) -> RemoteStep:
    fields = dict(guest="g", host="10.0.0.1", port=22, user="debian", private_key="k", proxy=None, command="sudo bash -s", stdin="x", after=frozenset(), triggers=("d", "i"))
    return RemoteStep(name, **{**fields, **kw})


def test_reruns_on_any_input_pulumi_command_diffs_and_not_on_dependencies() -> None:
    old = _step("a")
    assert not reruns(old, old)
    assert reruns(None, old)
    for changed in (dict(stdin="y"), dict(command="other"), dict(triggers=("d2", "i")), dict(host="10.0.0.2"), dict(proxy={"host": "b"})):
        assert reruns(old, replace(old, **changed)), changed
    assert not reruns(old, replace(old, after=frozenset({"b"}))), "a new dependency is not an input of the command"


def test_plan_of_changed_keeps_the_order_through_steps_that_do_not_run() -> None:
    """Pulumi walks unchanged resources in order too: c waits for a through the unchanged b."""
    steps = {"a": _step("a"), "b": _step("b", after=frozenset({"a"})), "c": _step("c", after=frozenset({"b"})), "d": _step("d")}
    cut = plan_of_changed(PlanRecording("s", {}, steps), ["a", "c", "d"])
    assert set(cut.steps) == {"a", "c", "d"} and cut.steps["c"].after == frozenset({"a"}) and cut.steps["d"].after == frozenset()


def test_one_more_container_rolls_after_the_directors_know_its_server(recorded) -> None:
    """The new container's roll readies it on every director's HAProxy: it must run after their
    60-haproxy-roll (which loads the server), and those one after another, the master last."""
    before, after = recorded["one more container"]
    cut = plan_of_changed(after, changed_steps(before, after))
    assert set(DIRECTORS_ROLL) <= cut.steps["cluster2-45-roll"].after
    for earlier, later in zip(DIRECTORS_ROLL, DIRECTORS_ROLL[1:]):
        assert earlier in cut.steps[later].after, f"{later} does not wait for {earlier}"


def test_snapshot_key_of_the_e2e_plan_is_unchanged_by_recording_triggers(recorded) -> None:
    """The key of snapshots saved before the triggers were recorded still matches: the key is the
    one computed as before (every field the steps had then), and it did change with the plan."""
    import hashlib
    import json

    from webcluster.e2e.image import GuestImage
    from webcluster.e2e.run import _sorted_set, snapshot_key

    plan = recorded["haproxy timeout"][0]
    assert all(s.triggers for s in plan.steps.values())
    image = GuestImage(Path("/i/root.qcow2"), Path("/i/k"), Path("/i/r"))
    before = {"image": str(image.disk), "guests": {g: asdict(plan.guests[g]) for g in sorted(plan.guests)},
              "steps": [{k: v for k, v in asdict(s).items() if k != "triggers"} for s in plan.ordered()]}
    assert snapshot_key(image, plan) == hashlib.sha256(json.dumps(before, sort_keys=True, default=_sorted_set).encode()).hexdigest()
    assert snapshot_key(image, recorded["haproxy timeout"][1]) != snapshot_key(image, plan)


def test_set_key_keeps_the_rest_of_the_stack_s_tree() -> None:
    stack = {"ha-web-cluster:cluster": {"vrrp": {"advertInterval": 1}, "haproxy": {"tuning": {"timeoutServerMs": 15000, "timeoutConnectMs": 5000}}}}
    v = changes.set_key(stack, Variant(), "cluster.haproxy.tuning.timeoutServerMs", 16000)
    v = changes.set_key(stack, v, "cluster.docker.image", "php:new")
    assert v.overrides["cluster"] == {"vrrp": {"advertInterval": 1}, "haproxy": {"tuning": {"timeoutServerMs": 16000, "timeoutConnectMs": 5000}}, "docker": {"image": "php:new"}}
    assert stack["ha-web-cluster:cluster"]["haproxy"]["tuning"]["timeoutServerMs"] == 15000


def test_templates_edited_renders_the_edit_and_restores_the_checkout() -> None:
    from webcluster.render import templating

    original = templating.TEMPLATES
    with changes.templates_edited({"content/imagen.html.j2": "edited\n"}):
        assert templating.render("content/imagen.html.j2") == "edited\n"
    assert templating.TEMPLATES == original and "edited" not in templating.render("content/imagen.html.j2")


def test_rows_pass_only_within_the_goal() -> None:
    ok = Row("c", ["s"], 1.0, {"http": 10, "tcp": 10}, {"http": [], "tcp": ["x", "y"]})
    assert ok.problems(2) == []
    assert Row("c", ["s"], failed={"http": ["e"], "tcp": []}).problems(2)
    assert Row("c", ["s"], failed={"http": [], "tcp": ["x", "y", "z"]}).problems(2)
    assert Row("c", ["s"], vip_moves=1).problems(2)
    assert Row("c", []).problems(2), "a change that changed no step proves nothing"
    assert Row("c", ["s"], error="step s failed").problems(2)
    text = changes.table([ok], 2)
    assert "PASS" in text.splitlines()[1] and text.endswith("e2e change: PASS")
    assert changes.table([ok, Row("d", ["s"], vip_moves=1)], 2).endswith("e2e change: FAIL")
    assert not changes.all_pass([], 2)


class _Watch:
    def __init__(self, moves: list[float]):
        self.moves = moves

    def moves_between(self, start: float, end: float) -> list[float]:
        return [m for m in self.moves if start <= m <= end]


def test_load_counts_per_mode_and_names_failures_a_vip_move_reset(monkeypatch) -> None:


    from webcluster.e2e import load

    def fake_get(url: str, timeout: float = 10) -> tuple[bool, str]:
        time.sleep(0.01)
        return ("tcp-bad" not in url, "curl: (56) Recv failure")

    monkeypatch.setattr(load, "http_get", fake_get)
    move = time.time() + 0.05
    running = load.Load({"http": ["http://v:80/"], "tcp": ["http://v:81/", "http://v:82/tcp-bad"]}, clients=2, timeout=1, max_s=5, watch=_Watch([move]))
    time.sleep(0.3)
    result = running.stop()
    assert result.sent["http"] > 5 and result.sent["tcp"] > 5
    assert not result.reasons("http") and result.reasons("tcp")
    assert result.vip_moves == [move]
    assert 1 <= len(result.reset_by_moves) <= 2, "a move resets at most one request per client"
    assert sum("reset by a VIP move" in r for r in result.reasons("tcp")) == len(result.reset_by_moves)


def test_load_is_bounded_by_its_duration(monkeypatch) -> None:


    from webcluster.e2e import load

    monkeypatch.setattr(load, "http_get", lambda url, timeout=10: (time.sleep(0.01), (True, ""))[1])
    running = load.Load({"http": ["u"]}, clients=1, timeout=1, max_s=0.2)
    time.sleep(0.5)
    assert not any(t.is_alive() for t in running.threads)


def test_new_https_certificate_is_issued_by_the_e2e_ca_and_leaves_the_store_alone(tmp_path) -> None:
    """A new certificate (another serial) for the VIP and the DNS name, verified by the store's CA;
    the store is byte for byte the same (the baseline plan and the snapshots stay)."""
    from webcluster import pki
    from webcluster.e2e.pki import HTTPS_CA_SUBJECT, new_https_certificate
    from webcluster.stackfile import load_stack_file, stack_path
    from webcluster.topology import Topology

    topology = Topology(load_stack_file(stack_path("e2e")).config)
    store = tmp_path / "https-pki.json"
    names = ([str(topology.cluster.vips.external)], [topology.cluster.haproxy.https.dns_name])
    material = pki.ensure_server(store, *names, HTTPS_CA_SUBJECT)
    saved = store.read_bytes()
    chain, key = new_https_certificate(topology, store)
    assert store.read_bytes() == saved and key == material[pki.SERVER_KEY]
    (tmp_path / "chain.pem").write_text(chain)
    (tmp_path / "ca.pem").write_text(material[pki.CA_KEY])
    run = lambda *argv: subprocess.run(argv, capture_output=True, text=True, timeout=30)  # noqa: E731
    verify = run("openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "chain.pem"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    (tmp_path / "old.pem").write_text(material[pki.SERVER_CERT])
    serials = [run("openssl", "x509", "-noout", "-serial", "-in", str(tmp_path / f)).stdout for f in ("chain.pem", "old.pem")]
    assert serials[0] != serials[1]
    sans = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "chain.pem")).stdout
    assert f"IP Address:{names[0][0]}" in sans and f"DNS:{names[1][0]}" in sans


def test_apply_makes_a_row_per_change_and_stops_at_the_first_failed_step(tmp_path, monkeypatch) -> None:
    """The orchestration with the guests faked: each change is recorded and only its changed steps
    are replayed, under a load whose counts land in its row; a change with no changed step is a row
    without a replay; a failed verification is the row's error; a failed step ends the run."""
    from webcluster.e2e import change as change_module
    from webcluster.e2e import guests
    from webcluster.e2e.changes import Change
    from webcluster.e2e.load import LoadResult
    from webcluster.e2e.replay import StepResult
    from webcluster.waiting import Timeout

    base = PlanRecording("s", {}, {"a": _step("a"), "b": _step("b", after=frozenset({"a"}))}, {"statsUrls": {"d": "http://d/stats"}, "statsUser": "u", "statsPassword": "p"})
    plans = iter([
        PlanRecording("s", {}, {"a": _step("a", stdin="new"), "b": base.steps["b"]}),  # timeout: a only
        PlanRecording("s", {}, {"a": _step("a", stdin="new"), "b": base.steps["b"]}),  # nothing changed
        PlanRecording("s", {}, {"a": _step("a", stdin="newer"), "b": _step("b", stdin="new", after=frozenset({"a"}))}),
    ])
    replayed: list[list[str]] = []

    def fake_replay(plan, ensure_guest):
        names = [s.name for s in plan.ordered()]
        replayed.append(names)
        return [StepResult(n, "g", n != "b", 1.0, "boom" if n == "b" else "") for n in names]

    class FakeLoad:
        def __init__(self, *args, **kwargs):
            pass

        stops = 0

        def stop(self):
            FakeLoad.stops += 1  # the first change's load saw a request fail
            return LoadResult(sent={"http": 7, "tcp": 5}, failures=[Failure(1, 2, "http", "504")] if FakeLoad.stops == 1 else [])

    monkeypatch.setattr(change_module, "key_pair", lambda: (PRIVATE, PUBLIC))
    monkeypatch.setattr(change_module, "record", lambda *args, **kwargs: next(plans))
    monkeypatch.setattr(change_module, "healthy", lambda c: None)
    monkeypatch.setattr(change_module, "replay", fake_replay)
    monkeypatch.setattr(change_module, "Load", FakeLoad)
    watched: list[tuple[dict, str]] = []

    class FakeServerWatch:
        def __init__(self, urls, auth, fetch):
            watched.append((urls, auth))

        def stop(self):
            now = time.time()
            return [Sample(now, "d", {"web/s": "UP"}), Sample(now + 1, "d", {"web/s": "DRAIN"})]

    monkeypatch.setattr(change_module, "ServerWatch", FakeServerWatch)
    journals: list[str] = []
    logged = '192.168.1.254:46734 [02/Dec/2026:05:57:33.534] web web/c1 0/0/0/-1/3001 504 194 - - sH-- 9/9/8/2/0 0/0 "GET / HTTP/1.1"'
    monkeypatch.setattr(change_module, "on", lambda c, node, script, timeout, tries: journals.append(node) or logged)
    monkeypatch.setattr(change_module, "urls_by_mode", lambda c: {})
    monkeypatch.setattr(change_module, "request_timeout", lambda c: 1.0)
    monkeypatch.setattr(change_module, "AFTER_STEPS_S", 0)
    monkeypatch.setattr(guests, "CHANGED_MARK", tmp_path / "changed")

    def no_effect() -> None:
        raise Timeout("the page never changed")

    listed = [Change("one", lambda v: v, verify=no_effect), Change("two", lambda v: v), Change("three", lambda v: v), Change("four", lambda v: v)]
    rows: list[Row] = []
    ran: list = []
    change_module.apply(type("C", (), {"plan": base, "vip_watch": None, "nodes": lambda self, role: ["d1", "d2"]})(), "s", listed, rows, ran, tmp_path)
    assert [r.change for r in rows] == ["one", "two", "three"]
    assert replayed == [["a"], ["a", "b"]]
    assert rows[0].steps == ["a"] and rows[0].sent == {"http": 7, "tcp": 5} and rows[0].error.startswith("no effect")
    assert rows[1].steps == [] and rows[1].problems(2) == ["no step changed: the change had no effect on the plan"]
    assert rows[2].error.startswith("step b failed") and "boom" not in rows[2].error
    assert [r.name for r in ran] == ["a", "a", "b"] and (tmp_path / "changed").exists()
    assert watched == [({"d": "http://d/stats"}, "u:p")] * 2  # every director's stats page, with the stats login, per replayed change
    assert any(line.endswith("d: web/s UP -> DRAIN") for line in rows[0].watched) and rows[1].watched == []
    assert journals == ["d1", "d2"]  # read once, after the one change that lost a request, on every director
    assert "  HAProxy logged 2 failed request(s):" in rows[0].watched and not any("HAProxy logged" in line for line in rows[2].watched)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["changes-one.png", "changes-three.png"]
    assert "d: web/s UP -> DRAIN" in table(rows, 2)


@pytest.mark.parametrize("alive, marked, expected", [
    ({"g1", "g2"}, False, []),  # what `e2e run --keep` left: used as it is
    ({"g1"}, False, [("network",), ("restored",)]),  # one not running (the Docker host the last check powered off): all from one moment
    (set(), False, [("network",), ("restored",)]),  # nothing runs: every guest from its snapshot
    ({"g1", "g2"}, True, [("network",), ("restored",)]),  # changed by an earlier `e2e change`
])
def test_running_uses_kept_guests_only_when_all_run(tmp_path, monkeypatch, alive, marked, expected) -> None:
    from webcluster.e2e import change as change_module
    from webcluster.e2e import guests, network

    done: list[tuple] = []
    mark = tmp_path / "changed"
    if marked:
        mark.touch()
    monkeypatch.setattr(guests, "CHANGED_MARK", mark)
    monkeypatch.setattr(guests, "alive", lambda g: g in alive)
    monkeypatch.setattr(guests, "snapshot_matches", lambda g, key: True)
    monkeypatch.setattr(guests, "stop_all", lambda: [])
    monkeypatch.setattr(network, "create", lambda host: done.append(("network",)))
    monkeypatch.setattr(change_module, "snapshot_key", lambda image, plan: "k")
    monkeypatch.setattr(change_module, "host_side", lambda topology, plan: None)
    monkeypatch.setattr(change_module, "restored", lambda plan, image, report: done.append(("restored",)) or True)
    plan = PlanRecording("s", {"g1": None, "g2": None}, {})
    change_module.running(None, plan, None, None)
    assert done == expected
    assert not mark.exists(), "guests started from their snapshots are the baseline again"


def test_leaf_is_the_first_certificate_of_a_chain_or_of_s_client_s_output() -> None:
    from webcluster.e2e.change import leaf

    server, ca = CERT[0], CERT[0].replace("TUlJQ2hhbmdlZA==", "Q0E=")
    assert leaf(server + ca) == server.strip()
    assert leaf("CONNECTED(00000003)\n---\nServer certificate\n" + server + "subject=CN = x\n") == server.strip()
    assert leaf("connect: Connection refused") == ""


def test_a_change_waits_until_every_server_stayed_up_not_for_one_look(monkeypatch) -> None:
    """A restored Docker host's servers came UP, went DOWN 40 s later and failed requests the
    change was blamed for: healthy() returns only after every look for SERVERS_STEADY_S saw all UP."""
    from webcluster.e2e import checks as checks_module

    looks = iter(["UP", "DOWN", "UP", "UP", "UP", "UP", "UP", "UP"])
    seen: list[str] = []
    now = [0.0]

    def stats(c):
        now[0] += 2  # a look every 2 s
        seen.append(next(looks))
        return [{"svname": "FRONTEND", "status": "OPEN"}, {"svname": "web1", "status": seen[-1]}]

    monkeypatch.setattr(checks_module, "services_answer", lambda c, within: "")
    monkeypatch.setattr(checks_module, "stats_csv", stats)
    monkeypatch.setattr(checks_module, "SERVERS_STEADY_S", 6)
    monkeypatch.setattr(checks_module.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(checks_module, "wait_until", lambda what, ok, timeout, pause: next(r for r in iter(ok, None) if r))
    checks_module.healthy(type("C", (), {"vip_watch": None})())
    assert seen == ["UP", "DOWN", "UP", "UP", "UP", "UP"], "the DOWN look restarts the window; UP looks spanning 6 s end it"
