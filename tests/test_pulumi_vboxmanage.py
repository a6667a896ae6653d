"""VBoxManage command text, run by sh against a stub VBoxManage that records its arguments, and against a stateful fake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.hypervisor import vboxmanage as vbm
from webcluster.stackfile import load_values
from webcluster.topology import Topology

STUB = '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done >> "$LOG"\necho --- >> "$LOG"\n'


def run(script: str, tmp_path: Path, home: Path) -> list[list[str]]:
    """Run a create/delete script with VBoxManage stubbed; returns each call's argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "VBoxManage").write_text(STUB)
    (bin_dir / "VBoxManage").chmod(0o755)
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home), "LOG": str(log)}
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=30)
    calls, current = [], []
    for line in log.read_text().splitlines():
        if line == "---":
            calls.append(current)
            current = []
        else:
            current.append(line)
    return calls


def test_paths_with_home_spaces_and_quotes_reach_vboxmanage_intact(tmp_path: Path) -> None:
    folder = '~/VirtualBox VMs/odd "name" $x'
    node = Topology(load_values({}).config).node("nas")
    nics = [vbm.nic_options(i, nic.mac, "intnet", "hawc-internal") for i, nic in enumerate(node.nics)]
    disk = vbm.join(folder, "disks", "nas-root.vdi")
    script = vbm.vm(node, folder, nics, disk, [vbm.join(folder, "disks", "nas-data1.vdi")], vbm.join(folder, "disks", "nas-seed.iso"))
    calls = run(script.create, tmp_path, Path("/home/u"))
    calls = calls[next(i for i, c in enumerate(calls) if c[0] == "createvm"):]  # after the leftover check
    expected_folder = '/home/u/VirtualBox VMs/odd "name" $x'
    assert calls[0] == ["createvm", "--name", "nas", "--ostype", "Debian_64", "--basefolder", expected_folder, "--register"]
    modify = calls[1]
    assert modify[modify.index("--nic2") + 1] == "intnet" and modify[modify.index("--intnet2") + 1] == "hawc-internal"
    assert modify[modify.index("--macaddress1") + 1] == node.nics[0].mac.replace(":", "").upper()
    attach = [c for c in calls if c[0] == "storageattach"]
    assert [c[c.index("--medium") + 1] for c in attach] == [
        f"{expected_folder}/disks/nas-root.vdi",
        f"{expected_folder}/disks/nas-data1.vdi",
        f"{expected_folder}/disks/nas-seed.iso",
    ]
    assert calls[-1] == ["startvm", "nas", "--type", "headless"]
    assert ["controlvm", "nas", "poweroff"] in run(script.delete, tmp_path, Path("/home/u"))


def test_seed_iso_is_written_from_stdin(tmp_path: Path) -> None:
    target = tmp_path / "a dir" / "seed.iso"
    script = vbm.seed_iso(str(target)).create
    subprocess.run(["/bin/sh", "-c", script], input=b"aGVsbG8=\n", check=True, timeout=30)
    assert target.read_bytes() == b"hello"


def test_port_forward_rule_syntax(tmp_path: Path) -> None:
    rule = vbm.port_forward("red-nat-1", "HA-Estado", "", 7000, "192.168.1.200", 7000)
    calls = run(rule.create + rule.delete, tmp_path, tmp_path)
    delete = ["natnetwork", "modify", "--netname", "red-nat-1", "--port-forward-4", "delete", "HA-Estado"]
    assert calls == [delete, ["natnetwork", "modify", "--netname", "red-nat-1", "--port-forward-4", "HA-Estado:tcp:[]:7000:[192.168.1.200]:7000"], delete]


# --------------------------------------------------------------------------- retries after a half-done create
#
# pulumi-command v1.2.1 saves no state when a create fails (provider/pkg/provider/local/
# commandController.go: Create returns the error with no resource), so the next `pulumi up`
# runs the same create again on whatever the failed attempt left, and the delete never runs.
# Any non-trigger input change (e.g. the interpreter) re-runs create in place (Update without an
# `update` command runs `create`). Each script must therefore succeed from all of those states.

FAKE = Path(__file__).with_name("fake_vboxmanage.py")
SHELLS = [vbm.INTERPRETER[0], "bash"]


class FakeHost:
    """A PATH with the stateful fake VBoxManage and qemu-img; runs scripts as local.Command would."""

    def __init__(self, tmp_path: Path, shell: str):
        self.shell = shell
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        for name, mode in (("VBoxManage", ""), ("qemu-img", "--qemu-img ")):
            (self.bin / name).write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} {mode}\"$@\"\n")
            (self.bin / name).chmod(0o755)
        self.state_dir = tmp_path / "vbox"
        self.state_dir.mkdir()
        self.home = tmp_path / "home"
        self.home.mkdir()

    def run(self, script: str, fail: str = "", stdin: bytes = b"") -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "HOME": str(self.home), "VBOX_STATE": str(self.state_dir), "VBOX_FAIL": fail}
        argv = [self.shell, *vbm.INTERPRETER[1:], script]
        return subprocess.run(argv, env=env, input=stdin, capture_output=True, timeout=120)

    def ok(self, script: str, stdin: bytes = b"") -> None:
        result = self.run(script, stdin=stdin)
        assert result.returncode == 0, result.stderr.decode()

    @property
    def state(self) -> dict:
        return json.loads((self.state_dir / "state.json").read_text())


@pytest.fixture(params=SHELLS)
def host(request: pytest.FixtureRequest, tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, request.param)


def vm_script(folder: str) -> vbm.Script:
    node = Topology(load_values({}).config).node("nas")
    nics = [vbm.nic_options(i, nic.mac, "intnet", "hawc-internal") for i, nic in enumerate(node.nics)]
    disks = vbm.join(folder, "disks")
    return vbm.vm(node, folder, nics, vbm.join(disks, "nas-root.vdi"), [vbm.join(disks, "nas-data1.vdi")], vbm.join(disks, "nas-seed.iso"))


def test_vm_create_succeeds_after_startvm_failed_and_delete_waits_for_the_session(host: FakeHost) -> None:
    folder = "~/VBox VMs/hawc"
    disks = host.home / "VBox VMs/hawc/disks"
    for disk in ("root", "data1"):
        host.ok(vbm.blank_disk(str(disks / f"nas-{disk}.vdi"), 100).create)
    host.ok(vbm.seed_iso(str(disks / "nas-seed.iso")).create, stdin=b"aGVsbG8=\n")
    script = vm_script(folder)
    failed = host.run(script.create, fail="startvm")
    assert failed.returncode != 0 and b"injected failure of startvm" in failed.stderr
    assert host.state["vms"]["nas"]["state"] == "poweroff", "the failed attempt left the VM registered"
    host.ok(script.create)  # the retry: the leftover is unregistered and the VM made again
    assert host.state["vms"]["nas"]["state"] == "running" and host.state["created_vms"] == 2
    assert sorted(host.state["vms"]["nas"]["attached"]) == ["0", "1", "2"]
    host.ok(script.create)  # an in-place re-run on the running VM changes nothing
    assert host.state["created_vms"] == 2 and host.state["vms"]["nas"]["state"] == "running"
    host.ok(script.delete)  # poweroff leaves the session locked for 2 calls: the delete waits it out
    assert host.state["vms"] == {} and not (host.home / "VBox VMs/hawc/nas").exists()
    host.ok(script.delete)  # nothing left: still fine


def test_vm_delete_gives_up_on_a_session_that_stays_locked(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vbm, "UNLOCK_WAIT_S", 2)
    disks = host.home / "v/disks"
    for disk in ("root", "data1"):
        host.ok(vbm.blank_disk(str(disks / f"nas-{disk}.vdi"), 100).create)
    host.ok(vbm.seed_iso(str(disks / "nas-seed.iso")).create, stdin=b"aGVsbG8=\n")
    script = vm_script("~/v")
    host.ok(script.create)
    monkeypatch.setenv("VBOX_LOCKED_CALLS", "100")
    result = host.run(script.delete)
    assert result.returncode != 0 and b"VM nas: session still locked after 2 s" in result.stderr, "bounded, and says why"


def test_nat_network_and_port_forward_survive_a_retry(host: FakeHost) -> None:
    net = vbm.nat_network("red-nat-1", "192.168.1.0/24")
    rule = vbm.port_forward("red-nat-1", "HA-Estado", "", 7000, "192.168.1.200", 7000)
    host.ok(net.create)
    assert host.run(rule.create, fail="port-forward-4").returncode != 0
    host.ok(rule.create)
    host.ok(rule.create)  # the rule from the first success is there: replaced, not refused
    host.ok(net.create)  # the network is there (its create failed after `add`, or a re-run)
    assert host.state["natnetworks"]["red-nat-1"]["rules"] == {"HA-Estado": "HA-Estado:tcp:[]:7000:[192.168.1.200]:7000"}
    moved = vbm.nat_network("red-nat-1", "192.168.123.0/24")
    host.ok(moved.create)
    assert host.state["natnetworks"]["red-nat-1"]["network"] == "192.168.123.0/24"
    host.ok(rule.delete)
    host.ok(net.delete)
    assert host.state["natnetworks"] == {}


def test_disks_survive_a_retry_and_an_in_place_rerun(host: FakeHost) -> None:
    images = host.home / "images"
    source = host.home / "debian.qcow2"
    source.write_bytes(b"x" * 2048)
    base = vbm.base_image(str(source), str(images / "base.qcow2"), str(images / "base.vdi"))
    assert host.run(base.create, fail="convert").returncode != 0
    assert not (images / "base.vdi").exists(), "no half-converted base VDI is ever in place"
    host.ok(base.create)
    host.ok(base.create)
    root = vbm.clone_disk(str(images / "base.vdi"), str(host.home / "disks/n-root.vdi"), 10240)
    assert host.run(root.create, fail="modifymedium").returncode != 0, "createmedium done, resize failed"
    host.ok(root.create)
    assert (host.home / "disks/n-root.vdi").read_text() == "VDI 10240\n"
    data = vbm.blank_disk(str(host.home / "disks/n-data1.vdi"), 200)
    (host.home / "disks/n-data1.vdi").write_text("garbage of an interrupted write")
    host.ok(data.create)
    assert (host.home / "disks/n-data1.vdi").read_text() == "VDI 200\n"
    host.ok(data.create)
    seed = vbm.seed_iso(str(host.home / "disks/n-seed.iso"))
    host.ok(vm_like_attach(host, [root, data], seed))  # a running VM holds them now
    host.ok(root.create)  # an in-place re-run must not resize (or touch) an attached disk
    host.ok(data.create)
    for script in (root, data, seed):
        host.ok(script.delete)


def vm_like_attach(host: FakeHost, disks: list[vbm.Script], seed: vbm.Script) -> str:
    """A script that writes the seed and starts a VM with the disks attached (to check re-runs against attached media)."""
    host.ok(seed.create, stdin=b"aGVsbG8=\n")
    return "set -e\n" + "\n".join(
        [
            'VBoxManage createvm --name n --ostype Debian_64 --basefolder "$HOME/vms" --register',
            'VBoxManage storageattach n --storagectl SATA --port 0 --device 0 --type hdd --medium "$HOME/disks/n-root.vdi"',
            'VBoxManage storageattach n --storagectl SATA --port 1 --device 0 --type hdd --medium "$HOME/disks/n-data1.vdi"',
            "VBoxManage startvm n --type headless",
        ]
    )


def test_every_vbox_command_names_its_interpreter() -> None:
    """pulumi-command v1.2.1 runs `cmd /C` on Windows and `/bin/sh -c` elsewhere when no interpreter is set
    (provider/pkg/provider/local/commandOutputs.go, run): ours is explicit, the shell these tests run."""
    from pulumi_harness import LOCAL_TYPE, run_stack

    rec = run_stack("dev", hypervisor="virtualbox")
    commands = rec.of_type(LOCAL_TYPE)
    assert commands and all(c.inputs["interpreter"] == vbm.INTERPRETER for c in commands.values())
