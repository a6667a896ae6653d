"""The NAS's RAID monitoring and spares: the rendered alert script run as mdadm runs it (its
syslog line through the real `logger`, the alert command's arguments), the 20-raid step's
mdadm.conf and spare handling run by bash against stand-in tools, and what the model renders.

md itself is not available on every test host (no md_mod here), so mdadm is never run: the
e2e's RAID check fails a member of the real array and waits for both log lines.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from test_step_functions import shell_function
from webcluster.e2e.checks import raid_alerts_missing
from webcluster.model import StackConfig
from webcluster.render import ClusterPlan, render_cluster
from webcluster.render.storage import MDMONITOR_DROPIN, RAID_ALERT, RAID_ALERT_TAG, RAID_CONF
from webcluster.render.templating import render
from webcluster.topology import Topology

DAEMON_CRIT = 3 * 8 + 2  # syslog facility daemon (3), severity crit (2)
DAEMON_ERR = 3 * 8 + 3


def nas_config(**raid: Any) -> StackConfig:
    return StackConfig.model_validate({"cluster": {"nas": {"raid": raid}}})


def nas_file(plan: ClusterPlan, path: str) -> str:
    return str(plan.nodes["nas"].files[path].content)


# --------------------------------------------------------------------------- the alert script


class Syslog:
    """A syslog socket of our own: the script's `logger` (the real one) is pointed at it."""

    def __init__(self, tmp: Path):
        self.path = tmp / "log.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "logger"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/logger --socket-errors=on --socket {self.path} "$@"\n')
        wrapper.chmod(0o755)
        self.bin = bin_dir

    def messages(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return out


@pytest.fixture
def syslog(tmp_path: Path):
    s = Syslog(tmp_path)
    yield s
    s.sock.close()


def alert_script(tmp: Path, command: str | None, timeout_s: int = 60) -> Path:
    """The script as the NAS gets it for this alertCommand (rendered through the model, as deployed);
    `timeout_s` other than 60 renders the template directly, to try the bound quickly."""
    if timeout_s == 60:
        text = nas_file(render_cluster(nas_config(alertCommand=command)), RAID_ALERT)
    else:
        import shlex

        text = render("nas/raid-alert.sh.j2", script=RAID_ALERT, tag=RAID_ALERT_TAG, command=shlex.quote(command or ""), timeout_s=timeout_s)
    script = tmp / "hawc-raid-alert"
    script.write_text(text)
    script.chmod(0o755)
    return script


def run_as_mdadm(script: Path, syslog: Syslog, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{syslog.bin}:{os.environ['PATH']}"}
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30, env=env)


def test_a_fail_event_is_logged_then_given_to_the_alert_command(tmp_path: Path, syslog: Syslog) -> None:
    """mdadm runs PROGRAM as `PROGRAM EVENT MD-DEVICE MEMBER`: the script logs it at daemon.crit under
    its tag, then the user's command gets the same three arguments, quotes and `$` intact."""
    out = tmp_path / "alert.out"
    script = alert_script(tmp_path, f"printf '%s|' \"$@\" > {out}; echo \"it's $1\" >> {out}")
    r = run_as_mdadm(script, syslog, "Fail", "/dev/md0", "/dev/vdb")
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "Fail|/dev/md0|/dev/vdb|it's Fail\n"
    [line] = syslog.messages()
    assert line.startswith(f"<{DAEMON_CRIT}>") and f" {RAID_ALERT_TAG}: Fail on /dev/md0 member /dev/vdb" in line


def test_the_e2e_check_reads_what_the_script_logs(tmp_path: Path, syslog: Syslog) -> None:
    """What the e2e's RAID check looks for in `journalctl -o cat` (the message alone) is the very line
    the script sends: found for the failed member, not for another one or another event."""
    run_as_mdadm(alert_script(tmp_path, None), syslog, "Fail", "/dev/md0", "/dev/vdc")
    [line] = syslog.messages()
    message = line.split(f"{RAID_ALERT_TAG}: ", 1)[1]
    mdadm = "Fail event detected on md device /dev/md0, component device /dev/vdc"  # mdadm 4.2's --syslog line
    assert raid_alerts_missing(message, mdadm, "Fail", "/dev/vdc") == []
    assert raid_alerts_missing(message, mdadm, "Fail", "/dev/vdb") == [f"{RAID_ALERT_TAG} (alert script)", "mdadm --syslog"]
    assert raid_alerts_missing(message, "", "Fail", "/dev/vdc") == ["mdadm --syslog"]
    assert raid_alerts_missing("", mdadm, "Fail", "/dev/vdc") == [f"{RAID_ALERT_TAG} (alert script)"]


def test_without_an_alert_command_events_are_only_logged(tmp_path: Path, syslog: Syslog) -> None:
    script = alert_script(tmp_path, None)
    for args in (("RebuildFinished", "/dev/md0"), ("SparesMissing", "/dev/md0"), ("DegradedArray", "/dev/md0")):
        assert run_as_mdadm(script, syslog, *args).returncode == 0
    lines = syslog.messages()
    assert [line.split(f"{RAID_ALERT_TAG}: ", 1)[1] for line in lines] == ["RebuildFinished on /dev/md0", "SparesMissing on /dev/md0", "DegradedArray on /dev/md0"]
    assert [line[: line.index(">") + 1] for line in lines] == ["<30>", "<28>", "<26>"]  # info, warning, crit


def test_a_failing_or_hung_alert_command_is_logged_and_bounded(tmp_path: Path, syslog: Syslog) -> None:
    """mdadm waits for its PROGRAM: a command that hangs is killed after the bound, and a failure
    (exit status, 124 for the bound) is logged; the script itself always succeeds."""
    failing = run_as_mdadm(alert_script(tmp_path, "exit 3"), syslog, "Fail", "/dev/md0", "/dev/vdb")
    hung = run_as_mdadm(alert_script(tmp_path, "sleep 20", timeout_s=1), syslog, "Fail", "/dev/md0", "/dev/vdb")
    assert failing.returncode == hung.returncode == 0
    errors = [line for line in syslog.messages() if line.startswith(f"<{DAEMON_ERR}>")]
    assert [e.split(f"{RAID_ALERT_TAG}: ", 1)[1] for e in errors] == [
        "alert command exited 3 on Fail on /dev/md0",
        "alert command exited 124 on Fail on /dev/md0",
    ]


# --------------------------------------------------------------------------- the 20-raid step's functions

DEBIAN_CONF = """# mdadm.conf
HOMEHOST <system>

# instruct the monitoring daemon where to send mail alerts
MAILADDR root

# definitions of existing MD arrays
"""


def run_bash(program: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"set -euo pipefail\nPATH={tmp}:$PATH\n{program}"], capture_output=True, text=True, timeout=30)


def test_mdadm_conf_lines_are_set_in_place_and_idempotent(dev_plan: ClusterPlan, tmp_path: Path) -> None:
    """Debian's generated mdadm.conf keeps its lines and order; MAILADDR is replaced where it stands,
    PROGRAM and ARRAY appended once; a second run changes nothing; an empty value drops the line."""
    conf = tmp_path / "mdadm.conf"
    conf.write_text(DEBIAN_CONF)
    fn = shell_function(dev_plan, "nas", "20-raid", "mdadm_conf_line")
    setting = (
        f"MDADM_CONF={conf}\n{fn}\n"
        'mdadm_conf_line "PROGRAM " "PROGRAM /usr/local/sbin/hawc-raid-alert"\n'
        'mdadm_conf_line "MAILADDR " "MAILADDR ops@example.org"\n'
        'mdadm_conf_line "ARRAY /dev/md0 " "ARRAY /dev/md0 spares=1 metadata=1.2 UUID=x"\n'
    )
    for _ in range(2):
        r = run_bash(setting, tmp_path)
        assert r.returncode == 0, r.stderr
        assert conf.read_text() == DEBIAN_CONF.replace("MAILADDR root", "MAILADDR ops@example.org") + (
            "PROGRAM /usr/local/sbin/hawc-raid-alert\nARRAY /dev/md0 spares=1 metadata=1.2 UUID=x\n"
        )
    assert run_bash(f'MDADM_CONF={conf}\n{fn}\nmdadm_conf_line "MAILADDR " ""\n', tmp_path).returncode == 0
    assert "MAILADDR" not in conf.read_text() and "PROGRAM /usr/local/sbin/hawc-raid-alert\n" in conf.read_text()


DETAIL = """/dev/md0:
           Version : 1.2
        Raid Level : raid5
      Raid Devices : 3
     Total Devices : 4
    Active Devices : 3
   Working Devices : 4
    Failed Devices : 0
     Spare Devices : {spares}
"""


@pytest.mark.parametrize("spares", [0, 1, 2])
def test_the_spare_count_is_read_from_mdadm_detail(dev_plan: ClusterPlan, tmp_path: Path, spares: int) -> None:
    fake = tmp_path / "mdadm"
    fake.write_text(f"#!/bin/bash\n[ \"$1\" = --detail ] && cat <<'EOF'\n{DETAIL.format(spares=spares)}EOF\n")
    fake.chmod(0o755)
    fn = shell_function(dev_plan, "nas", "20-raid", "raid_spares")
    r = run_bash(f"{fn}\nraid_spares /dev/md0\n", tmp_path)
    assert (r.returncode, r.stdout) == (0, f"{spares}\n"), r.stderr


# --------------------------------------------------------------------------- what the model renders


def test_the_seed_nas_has_three_disks_no_spare_and_monitoring(dev_plan: ClusterPlan, dev_stack) -> None:
    nas = Topology(dev_stack.config).node("nas")
    assert nas.data_disks_mib == (200, 200, 200)
    conf = nas_file(dev_plan, RAID_CONF)
    assert "RAID_DISKS=3\nRAID_SPARES=0\n" in conf
    assert f"RAID_PROGRAM={RAID_ALERT}\nRAID_MAILADDR=root\n" in conf
    assert "ALERT_COMMAND=''\n" in nas_file(dev_plan, RAID_ALERT)
    assert dev_plan.nodes["nas"].files[RAID_ALERT].mode == 0o755
    dropin = nas_file(dev_plan, MDMONITOR_DROPIN)
    assert "ExecStart=\nExecStart=/sbin/mdadm --monitor --scan --syslog\n" in dropin


def test_the_raid_step_creates_with_spares_and_keeps_the_monitor_running(dev_plan: ClusterPlan) -> None:
    step = dev_plan.nodes["nas"].step("20-raid")
    assert set(step.files) >= {RAID_CONF, RAID_ALERT, MDMONITOR_DROPIN}
    script = step.script
    assert '--raid-devices="$RAID_DISKS" --spare-devices="$RAID_SPARES"' in script
    assert 'blank_disks | head -n "$want"' in script and "want=$((RAID_DISKS + RAID_SPARES))" in script
    assert f'stamp_changed mdmonitor "$MDADM_CONF" {MDMONITOR_DROPIN} || ! systemctl is-active --quiet mdmonitor.service' in script
    # PROGRAM is in mdadm.conf before the array exists (its appearance starts the monitor).
    assert script.index('mdadm_conf_line "PROGRAM "') < script.index("mdadm --create")


def test_spare_disks_give_the_nas_more_disks_and_an_alert_command() -> None:
    config = nas_config(spareDisks=2, alertCommand='/usr/local/bin/page-ops "$@"', alertMail=None)
    assert Topology(config).node("nas").data_disks_mib == (200,) * 5
    plan = render_cluster(config)
    conf = nas_file(plan, RAID_CONF)
    assert "RAID_DISKS=3\nRAID_SPARES=2\n" in conf and "RAID_MAILADDR=\n" in conf
    assert "ALERT_COMMAND='/usr/local/bin/page-ops \"$@\"'\n" in nas_file(plan, RAID_ALERT)
    assert "+ 2 spares" in plan.nodes["nas"].step("20-raid").description


def test_validate_shows_the_spares_and_names_the_key_of_a_bad_one(tmp_path: Path) -> None:
    from conftest import run_cli

    good = tmp_path / "Pulumi.spare.yaml"
    good.write_text("config:\n  ha-web-cluster:cluster:\n    nas:\n      raid:\n        spareDisks: 1\n")
    r = run_cli("validate", "--file", str(good))
    assert r.returncode == 0 and "RAID5 3x200 MiB + 1 spare on /raid" in r.stdout, r.stdout + r.stderr
    bad = tmp_path / "Pulumi.raid0.yaml"
    bad.write_text("config:\n  ha-web-cluster:cluster:\n    nas:\n      raid:\n        level: 0\n        spareDisks: 1\n")
    r = run_cli("validate", "--file", str(bad))
    assert r.returncode == 2 and "cluster.nas.raid.spareDisks: RAID0 cannot use spare disks" in r.stdout + r.stderr
