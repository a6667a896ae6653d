"""The rolling container change as rendered: the directors' runtime API (where it listens, who
may reach it), the rendered hawc-rotation run against a fake runtime API (the order of what it
asks each director, its bounded waits, a silent director skipped), and the Docker hosts'
containers steps chained one host after another (under the Pulumi mock engine)."""

from __future__ import annotations

import re
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from pulumi_harness import Recording, run_stack

from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.render.backend import ROTATION

BACKENDS = ("cluster2", "cluster3", "cluster4")
DIRECTORS = ("cluster1", "standby1", "standby2")
HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"


@pytest.fixture(scope="module")
def plan():
    return render_cluster(StackConfig())


def test_each_director_opens_its_runtime_api_on_its_internal_address_to_the_docker_hosts_only(plan) -> None:
    for d in StackConfig().cluster.directors:
        files = plan.nodes[d.name].files
        assert f"\tstats socket ipv4@{d.internal}:9999 level admin\n" in files["/etc/haproxy/haproxy.cfg"].content
        rules = [line.strip() for line in files["/etc/nftables.conf"].content.splitlines() if "dport 9999" in line]
        assert rules == [f'iifname "enp0s8" ip saddr {{ 10.0.100.2, 10.0.100.3, 10.0.100.4 }} ip daddr {d.internal} tcp dport 9999 accept comment "HAProxy runtime API from the Docker hosts (rolling container changes)"']
    for b in BACKENDS:
        forward = plan.nodes[b].files["/etc/nftables.conf"].content.split("chain forward", 1)[1]
        drop = forward.index("tcp dport 9999 drop")
        assert 'iifname "docker0"' in forward[forward.rfind("\n", 0, drop):drop]
        assert drop < forward.index("the containers' own outbound traffic"), "the containers reach the runtime API before the drop"


def test_the_runtime_api_port_must_be_free_on_the_directors() -> None:
    from webcluster.validation import ConfigError, parse

    with pytest.raises(ConfigError, match="runtimeApiPort"):
        parse({"cluster": {"haproxy": {"stats": {"runtimeApiPort": 7000}}}})


def test_rotation_lists_this_hosts_servers_in_every_backend(plan) -> None:
    script = plan.nodes["cluster3"].files[ROTATION].content
    assert "directors=( 10.0.100.1 10.0.100.50 10.0.100.51 )" in script
    servers = re.search(r"^servers=\((.*)\)$", script, re.M).group(1).split()
    assert servers == ["http-servers/cluster31p", "http-servers/cluster32p", "http-servers/cluster33p", "tcp-servers/cluster31p",
                       "tcp-servers/cluster32p", "tcp-servers/cluster33p", "http-servers-g/cluster34p", "tcp-servers-g/cluster34p"]


class FakeDirector(socketserver.ThreadingTCPServer):
    """HAProxy's runtime API, non-interactive: one command a connection. Servers have sessions
    for the first `busy` `show stat`s after a drain and stay DOWN for `down` after `health down`."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, servers: list[str], busy: int = 2, down: int = 2, late: frozenset[str] = frozenset()):
        self.servers, self.busy, self.down = servers, busy, down
        self.late = set(late)  # commands answered after the script's bound the first time they come (a starved director)
        self.log: list[str] = []
        self.state = "ready"
        self.sessions_left = 0
        self.down_left = 0
        super().__init__(("127.0.0.1", 0), Handler)

    def answer(self, command: str) -> str:
        self.log.append(command)
        if command == "show stat":
            scur = 1 if self.sessions_left else 0
            self.sessions_left = max(0, self.sessions_left - 1)
            status = {"ready": "UP", "drain": "DRAIN", "maint": "MAINT"}[self.state]
            if self.down_left:
                self.down_left -= 1
                status = "DOWN"
            rows = [f"{s.split('/')[0]},{s.split('/')[1]},0,0,{scur},0,,0,0,0,,0,,0,0,0,0,{status}," for s in self.servers]
            return "\n".join([HEADER, "other,BACKEND,0,0,5,0,,0,0,0,,0,,0,0,0,0,UP,", *rows]) + "\n\n"
        m = re.fullmatch(r"set server (\S+) (state|health) (\S+)", command)
        if not m or m.group(1) not in self.servers:
            return "No such server.\n\n"
        if m.group(2) == "state":
            if m.group(3) == "drain" and self.state == "ready":
                self.sessions_left = self.busy
            self.state = m.group(3)
        elif m.group(3) == "down":
            self.down_left = self.down
        return "\n"


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        command = self.rfile.readline().decode().strip()
        if command in self.server.late:
            self.server.late.discard(command)
            time.sleep(LATE_S)  # past the 1 s bound: the script gave up on this try; HAProxy would still apply it
        self.wfile.write(self.server.answer(command).encode())


LATE_S = 1.5


@pytest.fixture
def directors() -> Iterator[list[FakeDirector]]:
    servers = ["http-servers/cluster21p", "tcp-servers/cluster21p"]
    fakes = [FakeDirector(servers), FakeDirector(servers, busy=4, down=3)]
    for f in fakes:
        threading.Thread(target=f.serve_forever, daemon=True).start()
    yield fakes
    for f in fakes:
        f.shutdown()
        f.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rotation_script(tmp: Path, port: int, directors: list[str], servers: list[str], **keys) -> Path:
    docker = {"drainTimeoutS": 5, "readyTimeoutS": 5, "directorAnswerS": 1, **keys}
    config = StackConfig.model_validate({"cluster": {"docker": docker, "haproxy": {"stats": {"runtimeApiPort": port}}}})
    text = render_cluster(config).nodes["cluster2"].files[ROTATION].content
    text = re.sub(r"^directors=\(.*\)$", "directors=( " + " ".join(directors) + " )", text, flags=re.M)
    text = re.sub(r"^servers=\(.*\)$", "servers=( " + " ".join(servers) + " )", text, flags=re.M)
    path = tmp / "hawc-rotation"
    path.write_text(text)
    return path


def test_replace_drains_waits_idle_replaces_waits_for_the_checks_then_readies(tmp_path: Path, directors) -> None:
    """The same sequence on directors that take different times; the command runs once per replace."""
    marker = tmp_path / "replaced"
    outputs = []
    for fake in directors:
        script = rotation_script(tmp_path, fake.server_address[1], ["127.0.0.1"], fake.servers)
        r = subprocess.run(["bash", str(script), "replace", "bash", "-c", f"echo x >> {marker}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        outputs.append(r.stdout)
        sets = [c for c in fake.log if c.startswith("set server")]
        phases = [c.split(" ", 3)[3] for c in sets[::2]]
        assert phases == ["state drain", "state maint", "state drain", "health down", "state ready"], sets
        assert all(sets[i].split(" ", 3)[3] == sets[i + 1].split(" ", 3)[3] for i in range(0, len(sets), 2)), "every server of the host, each time"
        maint, health = fake.log.index("set server http-servers/cluster21p state maint"), fake.log.index("set server http-servers/cluster21p health down")
        idle_polls = fake.log[:maint].count("show stat")
        up_polls = fake.log[health:].count("show stat")
        assert idle_polls == fake.busy + 1, "maint only once no session is left"
        assert up_polls == fake.down + 1, "ready only once the checks see them UP"
    assert marker.read_text() == "x\nx\n"
    assert "idle (0 sessions) on every answering director" in outputs[0] and "UP (health check) on every answering director" in outputs[0]


def test_a_director_that_answers_late_is_asked_again_not_skipped(tmp_path: Path) -> None:
    """e2e, 2 December: a starved standby missed the bound for `health down` and `state ready`,
    was skipped, and kept the host's servers in maintenance. Asked again, it ends ready."""
    servers = ["http-servers/cluster21p"]
    fake = FakeDirector(servers, busy=0, down=0, late=frozenset({f"set server {servers[0]} health down", f"set server {servers[0]} state ready"}))
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        script = rotation_script(tmp_path, fake.server_address[1], ["127.0.0.1"], servers)
        r = subprocess.run(["bash", str(script), "replace", "true"], capture_output=True, text=True, timeout=60)
    finally:
        fake.shutdown()
        fake.server_close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no answer" not in r.stdout and fake.state == "ready"
    assert fake.log.count(f"set server {servers[0]} state ready") == 2, "the late try, then the one answered in time"


def test_a_silent_director_is_skipped_and_named(tmp_path: Path, directors) -> None:
    fake = directors[0]
    # A closed port stands for a director that does not answer (firewalled, or its HAProxy down).
    script = rotation_script(tmp_path, fake.server_address[1], ["127.0.0.1", "127.0.0.2"], fake.servers)
    r = subprocess.run(["bash", str(script), "replace", "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "127.0.0.2: no answer in 3 tries of 1 s: skipped" in r.stdout and "127.0.0.2: no answer in 3 tries of 1 s: not waited for" in r.stdout
    assert fake.log[-2:] == ["set server http-servers/cluster21p state ready", "set server tcp-servers/cluster21p state ready"]


def test_bounded_waits_a_busy_server_is_replaced_anyway_one_never_up_fails_but_is_readied(tmp_path: Path, directors) -> None:
    fake = directors[0]
    fake.busy, fake.down = 10_000, 10_000
    script = rotation_script(tmp_path, fake.server_address[1], ["127.0.0.1"], fake.servers, drainTimeoutS=1, readyTimeoutS=5)
    r = subprocess.run(["bash", str(script), "replace", "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, "the step fails: the roll stops before the next Docker host"
    assert "still not idle (0 sessions) after 1 s" in r.stdout and "replacing anyway" in r.stdout
    assert "still not UP (health check) after 5 s: 127.0.0.1:http-servers/cluster21p(1 DOWN)" in r.stdout
    assert fake.log[-1] == "set server tcp-servers/cluster21p state ready", "left to the health check, not to a stale drain"


def test_a_failed_replacement_fails_the_step(tmp_path: Path, directors) -> None:
    fake = directors[0]
    script = rotation_script(tmp_path, fake.server_address[1], ["127.0.0.1"], fake.servers)
    r = subprocess.run(["bash", str(script), "replace", "false"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and fake.log[-1].endswith("state ready")


def test_rendered_rotation_passes_shellcheck(plan, tmp_path: Path) -> None:
    path = tmp_path / "hawc-rotation"
    path.write_text(plan.nodes["cluster2"].files[ROTATION].content)
    steps = []
    for name in ("40-containers", "45-roll"):
        steps.append(tmp_path / f"{name}.sh")
        steps[-1].write_text(plan.nodes["cluster2"].step(name).script)
    r = subprocess.run(["shellcheck", "--severity=style", str(path), *map(str, steps)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


@pytest.fixture(scope="module")
def dev() -> Recording:
    return run_stack("dev")


def test_docker_hosts_take_a_container_change_one_at_a_time(dev: Recording) -> None:
    steps = dev.steps()
    for earlier, later in zip(BACKENDS, BACKENDS[1:]):
        assert f"{earlier}-45-roll" in dev.depends_on(steps[f"{later}-45-roll"])
    for b in BACKENDS:
        assert {f"{d}-50-keepalived" for d in DIRECTORS} <= dev.depends_on(steps[f"{b}-45-roll"]), "the directors' HAProxy answers the runtime API first"
        assert f"{b}-40-containers" in dev.depends_on(steps[f"{b}-45-roll"])
        # The first creation does not wait for the other hosts: nothing serves there yet.
        assert not {f"{o}-40-containers" for o in BACKENDS} & dev.depends_on(steps[f"{b}-40-containers"])
        assert not {f"{o}-45-roll" for o in BACKENDS} & dev.depends_on(steps[f"{b}-40-containers"])
    assert "cluster3-45-roll" not in dev.depends_on(steps["cluster2-45-roll"])
