"""VBoxManage command text, run by sh against a stub VBoxManage that records its arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
    assert run(script.delete, tmp_path, Path("/home/u"))[0] == ["controlvm", "nas", "poweroff"]


def test_seed_iso_is_written_from_stdin(tmp_path: Path) -> None:
    target = tmp_path / "a dir" / "seed.iso"
    script = vbm.seed_iso(str(target)).create
    subprocess.run(["/bin/sh", "-c", script], input=b"aGVsbG8=\n", check=True, timeout=30)
    assert target.read_bytes() == b"hello"


def test_port_forward_rule_syntax(tmp_path: Path) -> None:
    rule = vbm.port_forward("red-nat-1", "HA-Estado", "", 7000, "192.168.1.200", 7000)
    calls = run(rule.create + rule.delete, tmp_path, tmp_path)
    assert calls[0] == ["natnetwork", "modify", "--netname", "red-nat-1", "--port-forward-4", "HA-Estado:tcp:[]:7000:[192.168.1.200]:7000"]
    assert calls[1] == ["natnetwork", "modify", "--netname", "red-nat-1", "--port-forward-4", "delete", "HA-Estado"]
