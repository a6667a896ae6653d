"""Shell functions of the rendered steps, run by bash with the shell options every step uses.

The tools they call (lsblk, blkid, findmnt, gluster) are replaced by tiny scripts, so the
functions themselves run as rendered (found by e2e: the
first version piped the list into `head`, whose early exit fails the pipe under
`pipefail` with SIGPIPE, status 141, and the bricks step died without a word).
"""

from __future__ import annotations

import re
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


def selection_line(plan: ClusterPlan) -> str:
    return next(line.strip() for line in plan.nodes["gluster1"].step("10-bricks").script.splitlines() if "disk=$(blank_disks" in line)


def test_the_first_blank_disk_is_chosen_under_pipefail(dev_plan: ClusterPlan, fake_bin: Path) -> None:
    program = f"set -euo pipefail\nPATH={fake_bin}:$PATH\n{shell_function(dev_plan, 'gluster1', '10-bricks', 'blank_disks')}\n{selection_line(dev_plan)}\necho \"chose $disk\"\n"
    for _ in range(5):
        out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
        assert (out.returncode, out.stdout.strip()) == (0, "chose /dev/vdb"), out.stderr


def shell_function(plan: ClusterPlan, node: str, step: str, name: str) -> str:
    script = plan.nodes[node].step(step).script
    start = script.index(f"{name}() {{")
    return script[start : script.index("\n}\n", start) + 3]


def test_gluster_changes_wait_out_another_transaction(dev_plan: ClusterPlan, tmp_path: Path) -> None:
    """glusterd answers "Another transaction is in progress" while a peer still holds the
    cluster lock (seen in e2e right after `volume start`): retried; other errors are not."""
    state = tmp_path / "calls"
    fake = tmp_path / "gluster"
    fake.write_text(f'#!/bin/bash\necho x >> {state}\nn=$(wc -l < {state})\n'
                    'if [ "$1" = bad ]; then echo "volume set: failed: invalid key" >&2; exit 1; fi\n'
                    'if [ "$n" -le 2 ]; then echo "volume set: failed: Another transaction is in progress for gv0." >&2; exit 1; fi\n'
                    'echo "volume set: success"\n')
    fake.chmod(0o755)
    fn = shell_function(dev_plan, "gluster1", "30-volumes", "gluster_change")
    program = f"set -euo pipefail\nPATH={tmp_path}:$PATH\nsleep() {{ :; }}\n{fn}\ngluster_change volume set gv0 k v && echo changed\n"
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout.strip(), len(state.read_text().split())) == (0, "changed", 3), out.stderr
    state.unlink()
    out = subprocess.run(["bash", "-c", program.replace("volume set gv0", "bad")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "invalid key" in out.stderr and len(state.read_text().split()) == 1


@pytest.mark.parametrize(("interval_ms", "run_s"), [(100, 1), (250, 1), (1000, 1), (1000, 3)])
def test_haproxy_check_ends_inside_keepalived_run_interval(interval_ms: int, run_s: int, tmp_path: Path) -> None:
    """keepalived runs the check every `scriptIntervalS` and skips a run while the last is still
    going: the rendered script, with HAProxy's health port open, must pass and end within it,
    probing all along, without a process per poll (an emulated director's CPU went to those forks)."""
    import socket
    import time

    from webcluster.model import StackConfig
    from webcluster.render import render_cluster

    config = StackConfig.model_validate({"cluster": {"vrrp": {"checkIntervalMs": interval_ms, "scriptIntervalS": run_s}}})
    files = render_cluster(config).nodes["cluster1"].files
    script = files["/etc/keepalived/check_haproxy.sh"].content
    assert re.findall(r"^\tinterval (\d+)$", files["/etc/keepalived/keepalived.conf"].content, re.M) == [str(run_s)] * 2
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # two runs of up to 9 polls, never accepted
        port = listener.getsockname()[1]
        check = tmp_path / "check.sh"
        check.write_text(re.sub(r"^port=\d+$", f"port={port}", script, flags=re.M))
        start = time.monotonic()
        out = subprocess.run(["bash", str(check)], capture_output=True, timeout=10)
        took = time.monotonic() - start
        # It probes until about one poll before the next run: a dead HAProxy is noticed within a poll.
        assert took >= run_s - 2.5 * interval_ms / 1000, (interval_ms, run_s, took)
        # In a PID namespace of its own, the last PID handed out counts the processes started:
        # the runner (1), the check (2), at most its pause pipe's writer (3), and `cat` itself.
        spawned = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", f"bash {check}; cat /proc/sys/kernel/ns_last_pid"],
                                 capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and took < run_s - 0.05, (interval_ms, run_s, took)
    assert int(spawned.stdout) <= 4, f"the check forks per poll: {spawned.stdout} processes"
    assert subprocess.run(["bash", str(check)], timeout=10).returncode == 1, "closed port fails"


def test_bond_step_returns_only_once_bond0_holds_the_address(dev_plan: ClusterPlan, tmp_path: Path) -> None:
    """The switch to bond0 runs in its own unit, and the step waits for it: a step that returned
    at once let the next step's SSH session start on the old NIC and die mid-way (seen in e2e).
    The fake `systemd-run` switches in the background unless asked to `--wait`."""
    script = dev_plan.nodes["nas"].step("10-bond").script
    switch = script[script.index("systemd-run") : script.index("\nfi\n", script.index("systemd-run")) + 4]
    switched = tmp_path / "switched"
    for name, body in {
        "systemd-run": f'if [[ " $* " == *" --wait "* ]]; then sleep 1; touch {switched}; exit "${{FAIL:-0}}"; fi\n(sleep 1; touch {switched}) &',
        "ip": f'[ -e {switched} ] && [ -z "${{FAIL:-}}" ] && echo "inet 10.0.100.100/24 brd 10.0.100.255 scope global bond0"; true',
    }.items():
        (tmp_path / name).write_text(f"#!/bin/bash\n{body}\n")
        (tmp_path / name).chmod(0o755)
    program = f"set -euo pipefail\nPATH={tmp_path}:$PATH\n{switch}echo returned\n"
    out = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout.strip()) == (0, "returned") and switched.exists(), out.stderr
    switched.unlink()
    failed = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, env={"FAIL": "1", "PATH": "/usr/bin:/bin"})
    assert failed.returncode != 0 and "returned" not in failed.stdout
