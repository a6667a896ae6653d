"""The steps' data-disk selection, run by bash with the shell options every step uses.

lsblk, blkid and findmnt are replaced by tiny scripts describing a VM with a system disk
and three blank disks, so the selection logic itself runs as rendered (found by e2e: the
first version piped the list into `head`, whose early exit fails the pipe under
`pipefail` with SIGPIPE, status 141, and the bricks step died without a word).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from webcluster.render import ClusterPlan

FAKES = {
    "findmnt": 'echo /dev/vda1',
    "lsblk": 'case "$*" in *PKNAME*) echo /dev/vda;; *-dnpo*) printf "/dev/vda disk\\n/dev/vdb disk\\n/dev/vdc disk\\n/dev/vdd disk\\n";;'
             ' *) echo "$@" | grep -q vda && printf "/dev/vda\\n/dev/vda1\\n" || echo "${@: -1}";; esac',
    "blkid": 'exit 2',
}


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    for name, body in FAKES.items():
        tool = tmp_path / name
        tool.write_text(f"#!/bin/bash\n{body}\n")
        tool.chmod(0o755)
    return tmp_path


def disk_functions(plan: ClusterPlan) -> str:
    script = plan.nodes["gluster1"].step("10-bricks").script
    start = script.index("blank_disks() {")
    return script[start : script.index("\n}\n", start) + 3]


def selection_line(plan: ClusterPlan) -> str:
    return next(line.strip() for line in plan.nodes["gluster1"].step("10-bricks").script.splitlines() if "disk=$(blank_disks" in line)


def test_the_first_blank_disk_is_chosen_under_pipefail(dev_plan: ClusterPlan, fake_bin: Path) -> None:
    program = f"set -euo pipefail\nPATH={fake_bin}:$PATH\n{disk_functions(dev_plan)}\n{selection_line(dev_plan)}\necho \"chose $disk\"\n"
    for _ in range(5):
        out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
        assert (out.returncode, out.stdout.strip()) == (0, "chose /dev/vdb"), out.stderr
