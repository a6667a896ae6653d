"""Build a CIB offline from a rendered crm file, so crm_verify can judge it without a cluster.

Shared by `check` and the Pacemaker tests. Machines without systemd running (CI, the lab)
cannot give crmsh the metadata of `systemd:` agents; that one error is expected and
ignored, nothing else is. Every other agent the file names must be installed here: crmsh
only warns when it cannot read an agent's metadata, so a missing fence-agents or
resource-agents package would otherwise pass or fail depending on the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .hostdeps import agent_executable

NO_SYSTEMD = re.compile(r"systemd:\S+: (got no meta-data|no such resource agent)")
AGENT = re.compile(r"^\s*primitive\s+\S+\s+((?:stonith|ocf:[\w-]+):[\w.-]+)", re.M)
NO_METADATA = re.compile(r"got no meta-data|no such resource agent", re.I)


def missing_agents(crm_text: str) -> list[str]:
    """One error per agent the crm file names that this machine cannot run, with its package."""
    errors = []
    for agent in sorted(set(AGENT.findall(crm_text))):
        executable, package = agent_executable(agent)
        if not executable.is_file():
            errors.append(f"{agent}: {executable} not found, so its meta-data cannot be read: install the Debian package {package}")
    return errors


def empty_quorate_cib(path: Path) -> Path:
    """An empty CIB of a quorate cluster (the directors' is, with the quorum device)."""
    empty = subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True, check=True).stdout
    path.write_text(empty.replace("<cib ", '<cib have-quorum="1" ', 1))
    return path


def crm_load(cib: Path, crm_file: Path) -> list[str]:
    """Load a crm file into an offline CIB; return crmsh's errors (none expected of a good file)."""
    proc = subprocess.run(
        ["crm", "-F", "configure", "load", "update", str(crm_file)],
        capture_output=True, text=True, env={**os.environ, "CIB_file": str(cib)}, timeout=120,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if ("ERROR" in line or NO_METADATA.search(line)) and not NO_SYSTEMD.search(line)]
    return missing_agents(crm_file.read_text()) + errors + ([f"crm exited {proc.returncode}"] if proc.returncode else [])
