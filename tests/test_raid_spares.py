"""The NAS's hot spares (`cluster.nas.raid.spareDisks`): the rendered 20-raid step run under bash,
its tools replaced by small scripts that log their arguments.

The fake mdadm keeps the array in a state directory (its members, its spare count), so a second
run of the step sees the array the first one created, or one created with fewer spares; the fake
lsblk/blkid show a system disk (with a partition) and blank data disks, and the members of the
array as RAID members. No real mdadm, disk or mount is touched: every absolute path the script
writes is moved into a temporary directory, and the step is refused to run if one is left.
"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from conftest import fake_programs
from webcluster.model import StackConfig
from webcluster.render import render_cluster
from webcluster.render.builder import STEP_STAMPS
from webcluster.render.storage import MDMONITOR_DROPIN, RAID_CONF

DISKS = ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde", "/dev/vdf", "/dev/vdg"]

# $STATE/disks: the data disks of the VM, one a line; $STATE/members: the array's disks (blkid
# reports them as RAID members, so blank_disks skips them); $STATE/array: the array exists, its
# spare count in $STATE/spares; $STATE/fs: the array has a filesystem.
FAKES = {
    "mdadm": r'''
echo "mdadm $*" >> "$LOG"
detail() {
	cat <<EOF
/dev/md0:
           Version : 1.2
        Raid Level : raid5
      Raid Devices : 3
     Spare Devices : $(cat "$STATE/spares")
EOF
}
case "$*" in
	"--detail --brief "*)
		[ -e "$STATE/array" ] || exit 1
		echo "ARRAY $3 metadata=1.2 spares=$(cat "$STATE/spares") name=nas:0 UUID=0a1b2c3d:4e5f6071:8293a4b5:c6d7e8f9" ;;
	"--detail "*)
		[ -e "$STATE/array" ] || { echo "mdadm: cannot open $2: No such file or directory" >&2; exit 1; }
		detail ;;
	"--assemble --scan") [ -e "$STATE/array" ] ;;
	"--create "*)
		spares=0
		for arg in "$@"; do
			case "$arg" in --spare-devices=*) spares=${arg#--spare-devices=} ;; /dev/vd*) echo "$arg" >> "$STATE/members" ;; esac
		done
		echo "$spares" > "$STATE/spares"
		touch "$STATE/array" ;;
	*" --add "*)
		n=0
		for arg in "${@:3}"; do echo "$arg" >> "$STATE/members"; n=$((n + 1)); done
		echo $(($(cat "$STATE/spares") + n)) > "$STATE/spares" ;;
	*) echo "fake mdadm: unexpected $*" >&2; exit 2 ;;
esac
''',
    "lsblk": r'''
case "$*" in
	"-dnpo NAME,TYPE") echo "/dev/vda disk"; sed 's/$/ disk/' "$STATE/disks"; echo "/dev/sr0 rom" ;;
	"-npo PKNAME /dev/vda1") echo /dev/vda ;;
	"-npo NAME /dev/vda") printf '/dev/vda\n/dev/vda1\n' ;;
	"-npo NAME "*) echo "$3" ;;
	*) echo "fake lsblk: unexpected $*" >&2; exit 2 ;;
esac
''',
    "findmnt": 'echo /dev/vda1',
    "blkid": r'''
disk=${!#}
if [ "$disk" = /dev/md0 ]; then
	[ -e "$STATE/fs" ] && echo ext4
elif grep -qx "$disk" "$STATE/members" 2>/dev/null; then
	echo linux_raid_member
fi
exit 0
''',
    "mkfs": 'echo "mkfs $*" >> "$LOG"\ntouch "$STATE/fs"',
    "mountpoint": '[ -e "$STATE/mounted" ]',
    "mount": 'echo "mount $*" >> "$LOG"\ntouch "$STATE/mounted"',
    "update-initramfs": 'echo "update-initramfs $*" >> "$LOG"',
    "systemctl": 'echo "systemctl $*" >> "$LOG"\n'
                 'case "$1" in is-active) [ -e "$STATE/monitor" ] ;; restart) touch "$STATE/monitor" ;; *) true ;; esac',
    "dpkg-query": 'echo "install ok installed"',
    "apt-get": 'echo "apt-get $*" >> "$LOG"',
    "cloud-init": 'echo "cloud-init $*" >> "$LOG"',
}

# Not asked of mdadm by the spare handling, whatever the state: these would lose data or members.
DESTRUCTIVE = ("--create", "--zero-superblock", "--fail", "--remove", "--grow", "--stop", "--build")


@lru_cache(maxsize=None)
def raid_step(spares: int) -> tuple[str, str]:
    """The 20-raid script and its raid.conf as the model renders them for this many spares."""
    raid: dict[str, Any] = {"spareDisks": spares} if spares else {}
    plan = render_cluster(StackConfig.model_validate({"cluster": {"nas": {"raid": raid}}}))
    node = plan.nodes["nas"]
    return node.step("20-raid").script, str(node.files[RAID_CONF].content)


class Nas:
    """The NAS in a temporary directory: its data disks, the array's state, the fakes' log."""

    def __init__(self, tmp: Path, data_disks: int):
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.state = tmp / "state"
        self.log = tmp / "log"
        self.mdadm_conf = tmp / "mdadm.conf"
        for d in (self.state, tmp / "tmp"):
            d.mkdir()
        fake_programs(self.bin, FAKES)
        (self.state / "disks").write_text("".join(f"{d}\n" for d in DISKS[:data_disks]))
        (tmp / "boot-finished").touch()
        (tmp / "fstab").write_text("LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n")
        (tmp / "mdstat").write_text("Personalities : [raid6] [raid5] [raid4]\n")
        (tmp / "dropin.conf").write_text("[Service]\n")

    def existing_array(self, members: list[str], spares: int) -> None:
        """An array an earlier run created (with a filesystem, mounted, monitored): `members` are its disks."""
        (self.state / "members").write_text("".join(f"{m}\n" for m in members))
        (self.state / "spares").write_text(f"{spares}\n")
        for flag in ("array", "fs", "mounted", "monitor"):
            (self.state / flag).touch()

    def localized(self, script: str, conf: str) -> str:
        conf = conf.replace("RAID_MOUNT=/raid", f"RAID_MOUNT={self.tmp}/raid").replace("DOCROOT=/raid/", f"DOCROOT={self.tmp}/raid/")
        (self.tmp / "raid.conf").write_text(conf)
        for real, here in (("/var/lib/cloud/instance/boot-finished", "boot-finished"), (STEP_STAMPS, "stamps"), (RAID_CONF, "raid.conf"),
                           ("/etc/mdadm/mdadm.conf", "mdadm.conf"), (MDMONITOR_DROPIN, "dropin.conf"), ("/etc/fstab", "fstab"),
                           ("/proc/mdstat", "mdstat")):
            assert real in script, real
            script = script.replace(real, str(self.tmp / here))
        code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
        left = re.findall(r"(?<![\w.$])/(?:etc|var|proc|sys|raid|usr|run)/[\w./-]*", code)
        assert not left, f"the step would touch the host: {left}"
        return script

    def run(self, script: str, conf: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        self.log.write_text("")
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LOG": str(self.log), "STATE": str(self.state), "TMPDIR": str(self.tmp / "tmp"), "HOME": str(self.tmp)}
        r = subprocess.run(["bash", "-c", self.localized(script, conf)], capture_output=True, text=True, env=env, timeout=60)
        return r, self.log.read_text().splitlines()


def changes(calls: list[str]) -> list[str]:
    """The calls that change something (mdadm's queries and the monitor's are left out)."""
    return [c for c in calls if not c.startswith(("mdadm --detail", "mdadm --assemble", "systemctl is-active", "systemctl daemon-reload"))]


def mdadm_changes(calls: list[str]) -> list[str]:
    return [c for c in changes(calls) if c.startswith("mdadm ")]


def array_line(nas: Nas) -> str:
    [line] = [x for x in nas.mdadm_conf.read_text().splitlines() if x.startswith("ARRAY ")]
    return line


# --------------------------------------------------------------------------- first run: the array created


def test_a_first_run_with_one_spare_creates_three_active_disks_and_a_spare(tmp_path: Path) -> None:
    """Five blank disks, spareDisks 1: the first four by name go to `mdadm --create`, three of them
    raid devices and one spare; mkfs and mount follow; mdadm.conf's ARRAY line asks for one spare."""
    nas = Nas(tmp_path, data_disks=5)
    script, conf = raid_step(1)
    r, calls = nas.run(script, conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mdadm_changes(calls) == [
        "mdadm --create /dev/md0 --run --level=5 --raid-devices=3 --spare-devices=1 --chunk=512 /dev/vdb /dev/vdc /dev/vdd /dev/vde"
    ]
    assert not any(" --add " in c for c in calls)
    assert [c for c in calls if c.startswith(("mkfs", "mount"))] == ["mkfs -t ext4 -L hawc-raid /dev/md0", f"mount {tmp_path}/raid"]
    assert (nas.state / "spares").read_text() == "1\n"
    assert array_line(nas).startswith("ARRAY /dev/md0 spares=1 metadata=1.2 ")
    assert (tmp_path / "raid" / "www").is_dir()


def test_a_first_run_without_enough_disks_for_the_spare_creates_nothing(tmp_path: Path) -> None:
    """Three blank disks, three members and a spare wanted: the step fails before mdadm --create
    (an array without its spare would never get it from this branch)."""
    nas = Nas(tmp_path, data_disks=3)
    script, conf = raid_step(1)
    r, calls = nas.run(script, conf)
    assert r.returncode == 1
    assert "need 3 blank disks and 1 spares for /dev/md0, found 3 blank disks" in r.stderr
    assert mdadm_changes(calls) == [] and not any(c.startswith("mkfs") for c in calls)


# --------------------------------------------------------------------------- re-run: spares added


@pytest.mark.parametrize("wanted,present", [(1, 0), (2, 0), (2, 1)])
def test_a_rerun_adds_only_the_missing_spares(tmp_path: Path, wanted: int, present: int) -> None:
    """An array that exists (created before spareDisks was raised, or a spare used up by a rebuild)
    with `present` spares of `wanted`: the step adds the next blank disks, exactly the missing
    number, with one `mdadm --add`, and does nothing else to the array or its filesystem."""
    members = DISKS[: 3 + present]
    nas = Nas(tmp_path, data_disks=6)
    nas.existing_array(members, present)
    script, conf = raid_step(wanted)
    r, calls = nas.run(script, conf)
    assert r.returncode == 0, r.stdout + r.stderr
    missing = DISKS[3 + present: 3 + wanted]
    assert mdadm_changes(calls) == [f"mdadm /dev/md0 --add {' '.join(missing)}"]
    assert not any(flag in c.split() for c in calls for flag in DESTRUCTIVE)
    assert not any(c.startswith(("mkfs", "mount")) for c in calls)
    assert (nas.state / "spares").read_text() == f"{wanted}\n"
    assert array_line(nas).startswith(f"ARRAY /dev/md0 spares={wanted} metadata=1.2 ")
    # And a run after that has nothing left to add.
    r, calls = nas.run(script, conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mdadm_changes(calls) == []


def assert_changes_nothing(nas: "Nas", script: str, conf: str) -> None:
    """A run that succeeds without touching the array or the filesystem."""
    r, calls = nas.run(script, conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mdadm_changes(calls) == [] and not any(c.startswith(("mkfs", "mount")) for c in calls)


def test_a_rerun_with_as_many_spares_as_configured_adds_none(tmp_path: Path) -> None:
    nas = Nas(tmp_path, data_disks=6)
    nas.existing_array(DISKS[:4], 1)
    script, conf = raid_step(1)
    assert_changes_nothing(nas, script, conf)


def test_a_rerun_short_of_blank_disks_adds_none_and_fails(tmp_path: Path) -> None:
    """Two spares missing, one blank disk: nothing is added (not half of it), the step fails and says why."""
    nas = Nas(tmp_path, data_disks=4)
    nas.existing_array(DISKS[:3], 0)
    script, conf = raid_step(2)
    r, calls = nas.run(script, conf)
    assert r.returncode == 1
    assert "/dev/md0 needs 2 more spares, found 1 blank disks" in r.stderr
    assert mdadm_changes(calls) == []


# --------------------------------------------------------------------------- no spares (the default)


def test_without_spares_the_array_gets_three_disks_and_none_is_added_later(tmp_path: Path) -> None:
    """spareDisks 0: the array is created over three of the four blank disks with no spare, and a
    re-run leaves the blank fourth disk alone; mdadm.conf's ARRAY line asks for no spare."""
    nas = Nas(tmp_path, data_disks=4)
    script, conf = raid_step(0)
    assert "RAID_SPARES=0\n" in conf
    r, calls = nas.run(script, conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert mdadm_changes(calls) == ["mdadm --create /dev/md0 --run --level=5 --raid-devices=3 --spare-devices=0 --chunk=512 /dev/vdb /dev/vdc /dev/vdd"]
    assert "spares=" not in array_line(nas)
    assert_changes_nothing(nas, script, conf)
    assert (nas.state / "members").read_text().split() == DISKS[:3]


def test_without_spares_an_existing_array_gets_none(tmp_path: Path) -> None:
    """Even an array with no spare and blank disks beside it: spareDisks 0 adds nothing."""
    nas = Nas(tmp_path, data_disks=5)
    nas.existing_array(DISKS[:3], 0)
    script, conf = raid_step(0)
    assert_changes_nothing(nas, script, conf)
    assert "spares=" not in array_line(nas)
