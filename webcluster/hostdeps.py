"""What the host needs: every external program the project runs, and the Debian package
that provides it.

One list (scripts/host-packages.txt, read here), used by three consumers so they cannot drift apart:
- `scripts/bootstrap.sh` installs exactly these packages (`python3 -m webcluster.hostdeps packages`);
- `bootstrap.sh --check` (run by the test command) fails naming the package of any program
  that is missing (`python3 -m webcluster.hostdeps check`);
- `tests/test_hostdeps.py` scans the code for the programs it calls and fails on one that is
  not listed, and maps the agents named in rendered CIBs to their packages.

Standard library only: bootstrap runs it before the Python requirements are installed.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

LIST = Path(__file__).resolve().parent.parent / "scripts" / "host-packages.txt"


def _read_list(path: Path) -> dict[str, tuple[str, ...]]:
    """`package: program ...` lines (comments after #) -> {package: programs}, in file order."""
    packages: dict[str, tuple[str, ...]] = {}
    for line in path.read_text().splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            package, _, programs = entry.partition(":")
            packages[package.strip()] = tuple(programs.split())
    return packages


# Debian package -> programs of it that the project runs on the host, grouped by who needs them.
PACKAGES: dict[str, tuple[str, ...]] = _read_list(LIST)

# Prefix of an agent in a CIB -> (directory of its executable, package). A rendered CIB can
# name any agent of these families; the package is what makes its metadata readable.
AGENT_FAMILIES: dict[str, tuple[str, str]] = {
    "stonith:": ("/usr/sbin", "fence-agents"),
    "ocf:heartbeat:": ("/usr/lib/ocf/resource.d/heartbeat", "resource-agents"),
    "ocf:pacemaker:": ("/usr/lib/ocf/resource.d/pacemaker", "pacemaker"),
}

SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


def package_of(program: str) -> str | None:
    """The package that provides `program` (a bare name or an absolute path), if listed."""
    for package, programs in PACKAGES.items():
        if program in programs or any(Path(p).name == program for p in programs):
            return package
    return None


def agent_executable(agent: str) -> tuple[Path, str]:
    """(executable, package) of a CIB agent such as `stonith:fence_virsh` or `ocf:heartbeat:IPaddr2`."""
    for prefix, (directory, package) in AGENT_FAMILIES.items():
        if agent.startswith(prefix):
            return Path(directory) / agent[len(prefix):], package
    raise ValueError(f"agent {agent!r}: unknown family (known: {', '.join(AGENT_FAMILIES)})")


def is_present(program: str) -> bool:
    if program.startswith("/"):
        return os.access(program, os.X_OK) or Path(program).is_file()
    return shutil.which(program, path=SEARCH_PATH) is not None


def missing() -> dict[str, list[str]]:
    """Package -> its listed programs that this machine lacks."""
    gaps: dict[str, list[str]] = {}
    for package, programs in PACKAGES.items():
        absent = [p for p in programs if not is_present(p)]
        if absent:
            gaps[package] = absent
    return gaps


def main(argv: list[str]) -> int:
    if argv == ["packages"]:
        print("\n".join(PACKAGES))
        return 0
    if argv == ["check"]:
        gaps = missing()
        for package, programs in gaps.items():
            print(f"error: {', '.join(programs)} not found: install the Debian package {package} (scripts/bootstrap.sh does)", file=sys.stderr)
        if not gaps:
            print(f"host programs: all {sum(map(len, PACKAGES.values()))} present ({len(PACKAGES)} packages)")
        return 2 if gaps else 0
    print("usage: python3 -m webcluster.hostdeps packages|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
