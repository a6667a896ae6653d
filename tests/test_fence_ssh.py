"""The fence user's SSH access, for real: fence_virsh logs in with the key (no password) and the
host's authorized_keys line confines it to power operations on the director domains."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from webcluster.lab import fence_ssh
from webcluster.render import fence
from webcluster.stackfile import load_values
from webcluster.topology import Topology

DIRECTOR = "192.168.1.101"  # cluster1's external address: where its SSH comes from
HOST = "192.168.1.1"  # the fence host: the external network's gateway


@pytest.fixture(scope="module")
def topo() -> Topology:
    return Topology(load_values({"haStack": "pacemaker"}).config)


@pytest.fixture()
def host(topo: Topology, tmp_path: Path) -> fence_ssh.FenceHost:
    return fence_ssh.make_host(topo, tmp_path / "host")


def ssh(host: fence_ssh.FenceHost, *command: str, stdin: str = "") -> subprocess.CompletedProcess:
    """A client with the fence key, through the stand-in sshd."""
    argv = [str(fence_ssh.standin_ssh(host, DIRECTOR)), f"root@{HOST}", "-i", str(host.identity_file), *command]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)


def test_the_authorized_keys_line_forces_the_wrapper_from_the_directors_only(topo: Topology) -> None:
    options = fence.key_options(topo)
    assert options.startswith("restrict,pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,")
    assert 'from="192.168.1.101,10.0.100.1,10.0.50.1,192.168.1.102,' in options and options.endswith('command="/usr/local/sbin/hawc-fence-virsh"')
    line = fence.authorized_keys_line(options, "ssh-ed25519 AAAAkey old-comment\n", "hawc-fence@cluster_tfm")
    assert line == f"{options} ssh-ed25519 AAAAkey hawc-fence@cluster_tfm"


def test_wrapper_is_clean_shell(topo: Topology, tmp_path: Path) -> None:
    script = tmp_path / "hawc-fence-virsh"
    script.write_text(fence.wrapper_script(topo))
    proc = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert fence.wrapper_script(topo) == fence.wrapper_script(topo), "deterministic"


def test_fence_virsh_with_the_key_powers_a_director_off_and_on(host: fence_ssh.FenceHost) -> None:
    ssh_path = fence_ssh.standin_ssh(host, DIRECTOR)

    def agent(action: str) -> subprocess.CompletedProcess:
        return fence_ssh.fence_virsh(HOST, host.identity_file, "standby1", action, ssh_path=ssh_path)

    assert agent("status").returncode == 0
    off = agent("off")
    assert off.returncode == 0, off.stderr
    assert host.power()["standby1"] == "shut off"
    assert agent("status").returncode == 2, "fence-agent status: 2 = off"
    assert agent("on").returncode == 0 and host.power()["standby1"] == "running"
    listed = agent("list")
    assert listed.returncode == 0 and set(listed.stdout.split()) == {"cluster1,", "standby1,", "standby2,"}, "the list shows the director domains only"
    assert "--connect test:///lab destroy standby1" in host.virsh_calls(), "the wrapper, not the client, names the libvirt URI"


def test_fence_virsh_cannot_touch_a_domain_that_is_not_a_director(host: fence_ssh.FenceHost) -> None:
    ssh_path = fence_ssh.standin_ssh(host, DIRECTOR)
    proc = fence_ssh.fence_virsh(HOST, host.identity_file, "not-a-director", "off", ssh_path=ssh_path)
    assert proc.returncode != 0
    assert host.power()["not-a-director"] == "running"
    assert not [c for c in host.virsh_calls() if "not-a-director" in c], "virsh never ran for it"


@pytest.mark.parametrize(
    "command",
    [["id"], ["/bin/sh"], ["virsh", "destroy", "not-a-director"], ["virsh", "undefine", "standby1"], ["virsh domstate standby1; id"],
     ["virsh", "--connect", "qemu:///session", "destroy", "standby1"], ["virsh", "destroy", "standby1", "--graceful"]],
    ids=["id", "shell", "other-domain", "undefine", "chained", "connect", "extra-argument"],
)
def test_anything_else_is_refused_and_logged(host: fence_ssh.FenceHost, command: list[str]) -> None:
    proc = ssh(host, *command)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"hawc-fence: refused from {DIRECTOR}: {' '.join(command)}" in proc.stderr
    assert host.virsh_calls() == [] and set(host.power().values()) == {"running"}


def test_the_interactive_session_refuses_a_smuggled_command(host: fence_ssh.FenceHost) -> None:
    """fence_virsh's own session (its `bash` invocation): allowed lines run, the first other line ends it."""
    proc = ssh(host, "-t", '/bin/bash -c "PS1=\\\\[EXPECT\\\\]# /bin/bash --noprofile --norc"', stdin="virsh domstate cluster1\nvirsh destroy cluster1; id\nvirsh destroy standby2\n")
    assert proc.returncode == 1
    assert proc.stdout == "[EXPECT]# running\n\n[EXPECT]# "
    assert "refused from 192.168.1.101: virsh destroy cluster1; id" in proc.stderr
    assert host.power() == {"cluster1": "running", "standby1": "running", "standby2": "running", "not-a-director": "running"}


def test_a_single_allowed_command_runs(host: fence_ssh.FenceHost) -> None:
    proc = ssh(host, "virsh", "destroy", "standby2")
    assert proc.returncode == 0 and host.power()["standby2"] == "shut off"


def test_another_key_is_not_let_in(host: fence_ssh.FenceHost, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    proc = fence_ssh.fence_virsh(HOST, other, "standby1", "off", ssh_path=fence_ssh.standin_ssh(host, DIRECTOR))
    assert proc.returncode != 0 and host.power()["standby1"] == "running"


def test_the_host_files_hold_the_private_key_root_only(host: fence_ssh.FenceHost) -> None:
    assert host.identity_file.stat().st_mode & 0o077 == 0
    assert "PRIVATE KEY" not in host.authorized_keys.read_text()


# --------------------------------------------------------------------------- real OpenSSH (run under flock /tmp/hawc-lab.lock)

STRANGER = "192.168.1.250"  # on the directors' network, but no director's address


@pytest.fixture()
def sshd(host: fence_ssh.FenceHost):
    why = fence_ssh.sshd_usable()
    if why:
        pytest.skip(why)
    with fence_ssh.sshd_host(host, HOST, DIRECTOR, STRANGER) as s:
        yield s


def test_real_sshd_lets_fence_virsh_power_a_director_off(host: fence_ssh.FenceHost, sshd: fence_ssh.SshdHost) -> None:
    proc = fence_ssh.fence_virsh(HOST, host.identity_file, "standby1", "off", netns=sshd.director_ns)
    assert proc.returncode == 0, proc.stdout + proc.stderr + (host.root / "sshd.log").read_text()
    assert host.power()["standby1"] == "shut off"
    assert fence_ssh.fence_virsh(HOST, host.identity_file, "standby1", "status", netns=sshd.director_ns).returncode == 2


def test_real_sshd_refuses_other_commands_other_domains_and_other_sources(host: fence_ssh.FenceHost, sshd: fence_ssh.SshdHost) -> None:
    for command in (["id"], ["virsh", "destroy", "not-a-director"], ["/bin/sh", "-c", "id"]):
        proc = fence_ssh.real_ssh(sshd, host.identity_file, *command)
        assert proc.returncode == 1 and "uid=" not in proc.stdout, command
        assert f"refused from {DIRECTOR}" in proc.stderr, proc.stderr
    assert fence_ssh.fence_virsh(HOST, host.identity_file, "not-a-director", "off", netns=sshd.director_ns).returncode != 0
    stranger = fence_ssh.real_ssh(sshd, host.identity_file, "virsh", "domstate", "standby1", source=STRANGER)
    assert stranger.returncode == 255, "from= lets only the directors' addresses in"
    forward = fence_ssh.real_ssh(sshd, host.identity_file, options=["-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:2222:127.0.0.1:22"], timeout=20)
    assert forward.returncode != 0, "restrict: no port forwarding"
    assert set(host.power().values()) == {"running"} and not [c for c in host.virsh_calls() if "not-a-director" in c]
