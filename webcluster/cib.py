"""Build a CIB offline from a rendered crm file, so crm_verify can judge it without a cluster.

Shared by `check` and the Pacemaker tests. Machines without systemd running (CI, the lab)
cannot give crmsh the metadata of `systemd:` agents; that one error is expected and
ignored, nothing else is.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

NO_SYSTEMD = re.compile(r"systemd:\S+: (got no meta-data|no such resource agent)")


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
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "ERROR" in line and not NO_SYSTEMD.search(line)]
    return errors + ([f"crm exited {proc.returncode}"] if proc.returncode else [])
