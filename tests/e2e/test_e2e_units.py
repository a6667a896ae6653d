"""Fast checks of the e2e helpers that need no guest (run everywhere, unlike the e2e run itself)."""

from webcluster.e2e.image import _mbr, step_packages
from webcluster.e2e.recording import PlanRecording, RemoteStep


def _step(name: str, after: set[str]) -> RemoteStep:
    return RemoteStep(name, "g", "10.0.0.1", 22, "debian", None, None, "true", "", frozenset(after))


def test_ordered_follows_dependencies() -> None:
    plan = PlanRecording("x", {}, {"b": _step("b", {"a"}), "a": _step("a", set()), "c": _step("c", {"b"})})
    assert [s.name for s in plan.ordered()] == ["a", "b", "c"]


def test_mbr_is_one_sector_with_signature() -> None:
    mbr = _mbr(2048, 1000)
    assert len(mbr) == 512 and mbr[-2:] == b"\x55\xaa" and mbr[446 + 4] == 0x83


def test_step_packages_reads_apt_install_lines() -> None:
    class Plan:
        def all_steps(self):
            class S:
                script = "apt_install haproxy curl\n\tapt_install mdadm \"${extra}\"\n"
            return [S()]

    assert step_packages(Plan()) == ["curl", "haproxy", "mdadm"]


def test_docker_archive_is_loadable_shape(tmp_path) -> None:
    """The stand-in is a `docker save` archive: the manifest names the config, whose diff_id is the layer's hash."""
    import hashlib
    import json
    import tarfile

    from webcluster.e2e.image import docker_archive

    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as t:
        (tmp_path / "f").write_text("x")
        t.add(tmp_path / "f", arcname="./etc/f")
    out = tmp_path / "image.tar"
    docker_archive(layer, "hawc-e2e/php-apache:local", out)
    with tarfile.open(out) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))[0]
        config = json.load(archive.extractfile(manifest["Config"]))
        stored = archive.extractfile(manifest["Layers"][0]).read()
    assert manifest["RepoTags"] == ["hawc-e2e/php-apache:local"]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(stored).hexdigest()}"]
    assert stored == layer.read_bytes()
    assert config["config"]["StopSignal"] == "SIGWINCH" and config["config"]["Cmd"] == ["apache2-foreground"]


def test_checks_read_services_and_nodes_from_the_recorded_plan(tmp_path) -> None:
    """The checks' view of the cluster (services by storage, URLs from the stack outputs, NIC
    indexes for QMP) agrees with the model, without a guest."""
    import subprocess

    from webcluster.e2e.checks import Cluster, storage_services
    from webcluster.e2e.recording import record
    from webcluster.stackfile import load_stack_file, stack_path
    from webcluster.topology import ROLE_NAS, Topology

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    plan = record("e2e", key.read_text(), key.with_suffix(".pub").read_text())
    c = Cluster(Topology(load_stack_file(stack_path("e2e")).config), plan)
    assert storage_services(c, "nfs") == ["haproxy-http", "haproxy-tcp"]
    assert storage_services(c, "gv0") == ["haproxy-http_g", "haproxy-tcp_g"]
    assert sorted(c.services) == sorted(storage_services(c, "nfs") + storage_services(c, "gv0"))
    assert all(url.startswith("http://192.168.1.200:") for url in c.services.values())
    nas = c.nodes(ROLE_NAS)[0]
    assert [c.nic_index(nas, n.name) for n in c.topology.node(nas).nics] == [0, 1, 2][: len(c.topology.node(nas).nics)]
    assert set(plan.guests) == {n.name for n in c.topology.nodes} and plan.steps


def test_replay_boots_guests_when_their_domain_could_be_created(monkeypatch) -> None:
    """A guest whose Domain depends on a step boots right after that step, not before and not
    when its own first step is ready; independent guests boot at once."""
    from webcluster.e2e import replay as replay_module
    from webcluster.e2e.recording import Guest

    events: list[str] = []

    def fake_run(step: RemoteStep) -> replay_module.StepResult:
        events.append(f"run {step.name}")
        return replay_module.StepResult(step.name, step.guest, True, 0.0, "")

    monkeypatch.setattr(replay_module, "run_step", fake_run)
    guests = {
        "dhcp": Guest("dhcp", 512, 1, (), (), {}, frozenset({"master-30"})),
        "master": Guest("master", 512, 1, (), (), {}),
        "nas": Guest("nas", 512, 1, (), (), {}),
    }
    after = {"master-30": set(), "nas-00": set(), "nas-10": {"nas-00"}, "nas-20": {"nas-10"}, "dhcp-00": {"master-30", "nas-20"}}
    steps = {n: RemoteStep(n, n.split("-")[0], "10.0.0.1", 22, "debian", None, None, "true", "", frozenset(a)) for n, a in after.items()}

    def boot(guest: str) -> None:
        if f"boot {guest}" not in events:
            events.append(f"boot {guest}")

    results = replay_module.replay(PlanRecording("x", guests, steps), boot, parallel=1)
    assert all(r.ok for r in results) and len(results) == len(after)
    assert events[:2] == ["boot master", "boot nas"]
    assert events.index("run master-30") < events.index("boot dhcp") < events.index("run nas-20") < events.index("run dhcp-00")


def test_docker_host_check_waits_longer_than_haproxy_may_take_to_retry() -> None:
    """The load's client timeout outlasts what the rendered haproxy.cfg lets a request take when
    its server vanished (a hung try, then a connect timeout per retry), or the check would blame
    HAProxy for the client giving up."""
    import re

    from webcluster.e2e.checks import request_timeout
    from webcluster.render import render_cluster
    from webcluster.stackfile import load_stack_file, stack_path
    from webcluster.topology import Topology

    for stack in ("e2e", "e2e-ci"):
        config = load_stack_file(stack_path(stack)).config
        cfg = next(n.files["/etc/haproxy/haproxy.cfg"].content for n in render_cluster(config).nodes.values() if "/etc/haproxy/haproxy.cfg" in n.files)
        ms = {k: int(v) for k, v in re.findall(r"^\s*timeout (connect|server)\s+(\d+)$", cfg, re.MULTILINE)}
        retries = int(re.search(r"^\s*retries\s+(\d+)$", cfg, re.MULTILINE).group(1))
        worst = (ms["server"] + (retries + 1) * ms["connect"]) / 1000
        c = type("C", (), {"topology": Topology(config)})()
        assert request_timeout(c) > worst, stack


def test_snapshot_key_is_the_same_in_every_process(tmp_path) -> None:
    """The same plan and image give the same snapshot key whatever Python's string-hash seed
    (a repr of the steps' frozensets changed with it, so saved snapshots were never restored)."""
    import subprocess
    import sys
    from pathlib import Path

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    program = (
        "import sys; from pathlib import Path\n"
        "from webcluster.e2e.recording import record\nfrom webcluster.e2e.run import snapshot_key\n"
        "from webcluster.e2e.image import GuestImage\n"
        f"plan = record('e2e-ci', Path('{key}').read_text(), Path('{key}.pub').read_text())\n"
        "print(snapshot_key(GuestImage(Path('/i/root.qcow2'), Path('/i/k'), Path('/i/r')), plan))\n"
    )
    root = Path(__file__).resolve().parents[2]
    keys = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, cwd=root,
                           env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}, check=True).stdout.strip()
            for seed in (1, 2)}
    assert len(keys) == 1 and len(next(iter(keys))) == 64


def test_timeline_plots_steps_and_guest_starts(tmp_path) -> None:
    """Steps on their guest's row (also a guest with no recorded start), failed ones included: a PNG."""
    from webcluster.e2e.replay import StepResult
    from webcluster.e2e.timeline import plot

    steps = [StepResult("nas-00-base", "nas", True, 5.0, "", 110.0), StepResult("nas-20-raid", "nas", False, 9.0, "", 116.0),
             StepResult("cluster12-00-base", "cluster12", True, 3.0, "", 104.0)]
    out = tmp_path / "t.png"
    plot(steps, {"nas": 100.0, "cluster1": 101.0}, 100.0, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_still_runs_the_cleanup(tmp_path) -> None:
    """A run stopped with SIGTERM (CI timeout, kill PID) leaves through its `finally`, which
    is where the e2e run stops its guests and removes its namespace."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    marker, ready = tmp_path / "cleaned", tmp_path / "ready"
    program = (
        "import time; from pathlib import Path\nfrom webcluster.e2e.shell import exit_on_sigterm\nexit_on_sigterm()\n"
        f"try:\n    Path('{ready}').touch()\n    time.sleep(60)\nfinally:\n    Path('{marker}').touch()\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", program], cwd=root)
    try:
        for _ in range(200):
            if ready.exists():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    assert marker.exists()


def test_a_failed_restore_falls_back_to_provisioning(monkeypatch) -> None:
    """A guest that never answers SSH after its restore stops the restored guests and returns
    False (the caller provisions from scratch); the report names the failed restore."""
    from webcluster.e2e import run
    from webcluster.waiting import Timeout

    stopped: list[bool] = []
    monkeypatch.setattr(run.guests, "stop_all", lambda: stopped.append(True) or [])

    def no_ssh(plan, image, report) -> None:
        raise Timeout("timed out after 600 s waiting for: SSH to nas")

    monkeypatch.setattr(run, "restore", no_ssh)
    report = run.Report()
    assert run.restored(None, None, report) is False
    assert stopped == [True] and [name for name, _ in report.phases] == ["restore from snapshots (failed)"]

    monkeypatch.setattr(run, "restore", lambda plan, image, report: None)
    assert run.restored(None, None, run.Report()) is True and stopped == [True]


def test_arp_answers_names_every_holder_of_an_address() -> None:
    """The failover check's view (arping on a bridge): nobody, one holder, two holders (split brain)."""
    from conftest import bridged_namespaces
    from webcluster import netns
    from webcluster.e2e.checks import arp_answers

    hub, holders = "hwt-arp-hub", {"hwt-arp-a": "02:00:00:00:0a:01", "hwt-arp-b": "02:00:00:00:0b:01"}
    with bridged_namespaces(hub, holders):
        netns.ip("-n", hub, "addr", "add", "192.0.2.1/24", "dev", "br0")
        assert arp_answers(hub, "br0", "192.0.2.200") == set()
        netns.ip("-n", "hwt-arp-a", "addr", "add", "192.0.2.200/24", "dev", "eth0")
        assert arp_answers(hub, "br0", "192.0.2.200") == {holders["hwt-arp-a"]}
        netns.ip("-n", "hwt-arp-b", "addr", "add", "192.0.2.200/24", "dev", "eth0", "nodad")
        assert arp_answers(hub, "br0", "192.0.2.200") == set(holders.values())


def test_probe_ports_probes_every_target_at_once_and_reads_each_result(monkeypatch) -> None:
    """The probe script the container-port check runs on a guest, run here by bash against loopback:
    a listening port connects and answers (0), a closed one refuses without a connection (7),
    and each result lands on its target."""
    import http.server
    import socket
    import subprocess
    import threading

    from webcluster.e2e import checks

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, never listening: refused
        monkeypatch.setattr(checks, "on", lambda c, node, script, timeout=120, tries=1: subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout).stdout)
        try:
            found = checks.probe_ports(None, "here", [("127.0.0.1", server.server_port), ("127.0.0.1", closed)])  # type: ignore[arg-type]
        finally:
            server.shutdown()
    assert found == {("127.0.0.1", server.server_port): checks.Probe(0, True), ("127.0.0.1", closed): checks.Probe(7, False)}


def _recorded_twice(tmp_path, monkeypatch) -> list:
    """The e2e stack recorded twice, its PKI stores in `tmp_path`, with a real SSH key pair."""
    import subprocess

    from webcluster.e2e import pki as e2e_pki
    from webcluster.e2e.recording import record

    monkeypatch.setattr(e2e_pki, "STORE", tmp_path / "pki.json")
    monkeypatch.setattr(e2e_pki, "HTTPS_STORE", tmp_path / "https-pki.json")
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    return [record("e2e", key.read_text(), key.with_suffix(".pub").read_text()) for _ in range(2)]


def test_the_recorded_plan_carries_working_gluster_keys(tmp_path, monkeypatch) -> None:
    """The e2e's recording replaces the mocks' stand-in PEMs with real ones: gluster1's step installs a
    key and a certificate for gluster1 that the CA in the same step verifies, and that key matches
    the certificate; a second recording carries the very same material (same snapshot key)."""
    import re
    import subprocess

    from webcluster.render.gluster_tls import CA_FILE, CERT_FILE, KEY_FILE

    plans = _recorded_twice(tmp_path, monkeypatch)
    script = plans[0].steps["gluster1-10-bricks"].stdin
    assert script == plans[1].steps["gluster1-10-bricks"].stdin
    files = {}
    for path in (KEY_FILE, CERT_FILE, CA_FILE):
        m = re.search(rf"cat > {re.escape(path)}\.hawc-new <<'(\w+)'\n(.*?)\n\1\n", script, re.S)
        assert m, path
        (tmp_path / path.rsplit("/", 1)[1]).write_text(m.group(2) + "\n")
        files[path] = tmp_path / path.rsplit("/", 1)[1]
    verify = subprocess.run(["openssl", "verify", "-CAfile", files[CA_FILE], files[CERT_FILE]], capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", files[CERT_FILE]], capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"CN\s*=\s*gluster1$", subject.strip()), subject
    moduli = [subprocess.run(["openssl", kind, "-noout", "-modulus", "-in", files[f]], capture_output=True, text=True, timeout=30).stdout for kind, f in (("x509", CERT_FILE), ("rsa", KEY_FILE))]
    assert moduli[0] == moduli[1] and moduli[0].startswith("Modulus=")


def test_the_recorded_plan_carries_a_working_https_certificate(tmp_path, monkeypatch) -> None:
    """HAProxy in the guests loads the certificate the recording puts in the 40-haproxy step: a real
    server certificate the recorded `httpsCaCert` output verifies, whose SANs cover the external VIP
    and the DNS name, with its matching key in the same file (mode 0600); a second recording carries
    the very same file (same snapshot key). The mocks' stand-in PEMs fail every one of these."""
    import re
    import subprocess

    from webcluster.render.https import CERT_FILE

    plans = _recorded_twice(tmp_path, monkeypatch)
    script = plans[0].steps["cluster1-40-haproxy"].stdin
    assert script == plans[1].steps["cluster1-40-haproxy"].stdin
    m = re.search(rf"umask 177\ncat > {re.escape(CERT_FILE)}\.hawc-new <<'(\w+)'\n(.*?)\n\1\nchmod 600 ", script, re.S)
    assert m, "the certificate file, 0600"
    pem, ca = tmp_path / "site.pem", tmp_path / "ca.pem"
    pem.write_text(m.group(2) + "\n")
    ca.write_text(plans[0].outputs["httpsCaCert"])
    run = lambda *argv: subprocess.run(argv, capture_output=True, text=True, timeout=30)  # noqa: E731
    verify = run("openssl", "verify", "-CAfile", str(ca), "-untrusted", str(pem), str(pem))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    sans = run("openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(pem)).stdout
    vip = plans[0].outputs["externalVip"]
    assert f"IP Address:{vip}" in sans and "DNS:www.ha-web-cluster.test" in sans, sans
    public = [run("openssl", "x509", "-noout", "-pubkey", "-in", str(pem)).stdout, run("openssl", "pkey", "-pubout", "-in", str(pem)).stdout]
    assert public[0] == public[1] and "BEGIN PUBLIC KEY" in public[0]


def test_a_restore_try_outlasts_ssh_s_own_dial_bound() -> None:
    """After a restore each SSH try must outlast ssh's ConnectTimeout (which also bounds sshd's
    banner): a 15 s try against a director whose banner took 18 s failed every time, and the run
    threw its snapshots away for a 40-minute provisioning."""
    from webcluster.e2e import run, ssh

    assert f"ConnectTimeout={ssh.CONNECT_TIMEOUT_S}" in ssh.OPTIONS
    assert run.SSH_TRY_S > ssh.CONNECT_TIMEOUT_S


def _fake_nas(monkeypatch, journal: dict[str, str]) -> list[str]:
    """check_raid against a stand-in NAS: `on` answers each command the way the guest does; the
    journal (by `-t` tag, "" for the whole journal) holds the given lines once a member failed."""
    from webcluster.e2e import checks
    from webcluster.waiting import wait_until

    ran: list[str] = []
    failed = {"yes": False}

    def on(c, node, script, timeout=120, tries=1):
        ran.append(script)
        if "active sync" in script:
            return "/dev/vdc\n"
        if "is-active mdmonitor" in script:
            return "active\n"
        if script == "date +%s":
            return "1764583200\n"
        if "--fail" in script:
            failed["yes"] = True
        if script.startswith("journalctl"):
            assert "--since @1764583200" in script and failed["yes"], script
            tag = script.split(" -t ", 1)[1] if " -t " in script else ""
            return journal.get(tag, "")
        if "grep -o" in script:
            return "[UUU]\n"
        return "md0 : active raid5 vdd[3] vdc[1] vdb[0]\n"

    monkeypatch.setattr(checks, "on", on)
    monkeypatch.setattr(checks, "services_answer", lambda c, names=None, within=60: "")
    monkeypatch.setattr(checks, "storage_services", lambda c, storage: ["haproxy-http"])
    monkeypatch.setattr(checks, "RAID_ALERT_WAIT_S", 0.5)
    monkeypatch.setattr(checks, "wait_until", lambda what, pred, timeout, interval=0.05: wait_until(what, pred, timeout, 0.01))
    return ran


def test_raid_check_passes_once_the_fail_event_is_in_both_logs(monkeypatch) -> None:
    """The failed member's Fail event, logged by the alert script (its tag) and by mdadm --syslog,
    read from the journal since the fault (the NAS's own clock)."""
    from webcluster.e2e import checks

    ran = _fake_nas(monkeypatch, {
        checks.RAID_ALERT_TAG: "Fail on /dev/md0 member /dev/vdc\n",
        "": "Fail event detected on md device /dev/md0, component device /dev/vdc\nFail on /dev/md0 member /dev/vdc\n",
    })
    c = type("C", (), {"nodes": lambda self, role: ["nas"]})()
    assert "Fail logged by the alert script and mdadm" in checks.check_raid(c)  # type: ignore[arg-type]
    fail = next(i for i, s in enumerate(ran) if "--fail /dev/vdc" in s)
    assert any(s.startswith("journalctl") for s in ran[fail:]) and any("--remove /dev/vdc" in s for s in ran[fail:])


def test_raid_check_fails_when_the_alert_script_logged_nothing(monkeypatch) -> None:
    import pytest

    from webcluster.e2e import checks

    _fake_nas(monkeypatch, {"": "Fail event detected on md device /dev/md0, component device /dev/vdc\n"})
    c = type("C", (), {"nodes": lambda self, role: ["nas"]})()
    with pytest.raises(checks.CheckFailed, match=f"not logged by {checks.RAID_ALERT_TAG}"):
        checks.check_raid(c)  # type: ignore[arg-type]


def test_the_secret_files_check_knows_every_secret_file_and_spots_a_loose_one() -> None:
    from webcluster.e2e import checks
    from webcluster.stackfile import load_stack_file, stack_path
    from webcluster.topology import Topology

    found = checks.secret_files(Topology(load_stack_file(stack_path("e2e")).config))
    assert found["cluster1"] == ["/etc/haproxy/certs/site.pem", "/etc/haproxy/haproxy.cfg"] and found["gluster1"] == ["/usr/lib/ssl/glusterfs.key"]
    assert "nas" not in found, "the keepalived e2e stack holds no secret on the NAS"
    assert checks.loose_files("600 root /etc/haproxy/haproxy.cfg\n400 root /etc/corosync/authkey") == []
    assert checks.loose_files("644 root /etc/haproxy/haproxy.cfg\n600 haproxy /x y") == ["/etc/haproxy/haproxy.cfg (644 root)", "/x y (600 haproxy)"]


def test_a_probe_opens_a_new_session_when_the_last_one_went_unanswered(monkeypatch) -> None:
    """CI-like run: a starved director left the secret-files check's session unanswered for 120 s.
    A read-only probe asks again; a script that answered with a failure is not run twice."""
    import subprocess

    import pytest

    from webcluster.e2e import checks
    from webcluster.e2e.recording import PlanRecording
    from webcluster.stackfile import load_stack_file, stack_path
    from webcluster.topology import Topology

    c = checks.Cluster(Topology(load_stack_file(stack_path("e2e")).config), PlanRecording("e2e", {}, {}, outputs={}))
    answers: list[subprocess.CompletedProcess] = []
    asked: list[str] = []

    def root(target, script, timeout=120, dial_for=0):
        asked.append(target.host)
        return answers.pop(0)

    monkeypatch.setattr(checks, "root", root)
    done = subprocess.CompletedProcess([], 0, b"600 root /etc/haproxy/haproxy.cfg\n", b"")
    answers[:] = [subprocess.CompletedProcess([], 124, b"", b"timed out after 120s"), subprocess.CompletedProcess([], 255, b"", b"kex"), done]
    assert checks.on(c, "standby1", "stat ...", tries=3) == "600 root /etc/haproxy/haproxy.cfg\n" and len(asked) == 3
    asked.clear()
    answers[:] = [subprocess.CompletedProcess([], 1, b"", b"stat: cannot stat"), done]
    with pytest.raises(checks.CheckFailed, match="exit 1: stat: cannot stat"):
        checks.on(c, "standby1", "stat ...", tries=3)
    assert len(asked) == 1, "a script that answered is not run again"
    answers[:] = [subprocess.CompletedProcess([], 124, b"", b"timed out after 120s")] * 3
    with pytest.raises(checks.CheckFailed, match=r"exit 124 \(3 tries\)"):
        checks.on(c, "standby1", "stat ...", tries=3)
    answers[:] = [subprocess.CompletedProcess([], 124, b"", b"timed out after 120s"), done]
    with pytest.raises(checks.CheckFailed, match="exit 124: timed out"):
        checks.on(c, "standby1", "stat ...")  # one try unless asked: a fault's command is never repeated


def test_the_https_check_verifies_with_the_ca_output_wants_h2_and_retries_only_transport_failures(monkeypatch) -> None:
    """check_https: every httpsUrls entry over curl --cacert <httpsCaCert> must answer 200 over HTTP/2;
    a refused or timed-out try is asked again (bounded), a verification failure is final at once."""
    from types import SimpleNamespace

    import pytest

    from webcluster.e2e import checks

    outputs = {"httpsUrls": {"a": "https://192.0.2.1:443/", "b": "https://192.0.2.1:9443/"}, "httpsCaCert": "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n"}
    cluster = SimpleNamespace(plan=SimpleNamespace(outputs=outputs))
    calls: list[tuple[str, str]] = []

    def answers(script: dict[str, list[tuple[int, str]]]):
        def fake(url: str, cafile: str, timeout: float = 30) -> tuple[int, str]:
            with open(cafile) as f:
                assert f.read() == outputs["httpsCaCert"]
            calls.append((url, cafile))
            return script[url].pop(0)
        return fake

    monkeypatch.setattr(checks, "https_get", answers({"https://192.0.2.1:443/": [(28, "timeout"), (0, "200 2")], "https://192.0.2.1:9443/": [(0, "200 2")]}))
    assert "2 TLS frontends verified" in checks.check_https(cluster)
    assert [u for u, _ in calls] == ["https://192.0.2.1:443/", "https://192.0.2.1:443/", "https://192.0.2.1:9443/"]
    calls.clear()
    monkeypatch.setattr(checks, "https_get", answers({"https://192.0.2.1:443/": [(60, "SSL certificate problem"), (0, "200 2")], "https://192.0.2.1:9443/": []}))
    with pytest.raises(checks.CheckFailed, match="curl exit 60"):
        checks.check_https(cluster)
    assert len(calls) == 1
    monkeypatch.setattr(checks, "https_get", answers({"https://192.0.2.1:443/": [(0, "200 1.1")], "https://192.0.2.1:9443/": []}))
    with pytest.raises(checks.CheckFailed, match="HTTP/2"):
        checks.check_https(cluster)
    monkeypatch.setattr(checks, "https_get", answers({"https://192.0.2.1:443/": [(7, "refused")] * 3, "https://192.0.2.1:9443/": []}))
    with pytest.raises(checks.CheckFailed, match="curl exit 7"):
        checks.check_https(cluster)
    assert checks.check_https(SimpleNamespace(plan=SimpleNamespace(outputs={"httpsUrls": {}}))) == "no TLS frontend in this stack"
    assert ("HTTPS through the VIP", checks.check_https) in checks.CHECKS
