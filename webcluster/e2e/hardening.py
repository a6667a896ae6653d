"""What `docker inspect` must show for every web container: the image and the least-privilege
settings of ``cluster.docker`` (capabilities, no-new-privileges, read-only root, tmpfs, limits).

Pure functions of the model and the inspect JSON, so they are tested without a guest; the e2e
check (:func:`webcluster.e2e.checks.check_container_hardening`) feeds them each Docker host's
``docker inspect`` over SSH.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import Docker

MIB = 1024 * 1024


def expected(d: Docker) -> dict[str, Any]:
    """The inspect values the rendered `docker run` options give (see render.backend.hardening_options)."""
    return {
        "image": d.image,
        "cap_drop": ["ALL"],
        "cap_add": sorted(set(d.cap_add)),
        "no_new_privileges": d.no_new_privileges,
        "read_only": d.read_only,
        "memory": d.memory_mib * MIB,
        "memory_swap": d.memory_mib * MIB,
        "nano_cpus": d.nano_cpus,
        "pids_limit": d.pids_limit,
        "tmpfs": sorted(d.tmpfs),
        "running": True,
    }


def _capabilities(names: list[str] | None) -> list[str]:
    """Docker 20.10 reports capabilities as given (`KILL`), later versions as `CAP_KILL`."""
    return sorted({n.upper().removeprefix("CAP_") for n in names or []})


def observed(inspect: dict[str, Any]) -> dict[str, Any]:
    """The same keys as :func:`expected`, read from one container's `docker inspect` object."""
    host = inspect.get("HostConfig") or {}
    security = host.get("SecurityOpt") or []
    return {
        "image": (inspect.get("Config") or {}).get("Image"),
        "cap_drop": _capabilities(host.get("CapDrop")),
        "cap_add": _capabilities(host.get("CapAdd")),
        "no_new_privileges": any(o in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true") for o in security),
        "read_only": bool(host.get("ReadonlyRootfs")),
        "memory": host.get("Memory"),
        "memory_swap": host.get("MemorySwap"),
        "nano_cpus": host.get("NanoCpus"),
        "pids_limit": host.get("PidsLimit"),
        "tmpfs": sorted(host.get("Tmpfs") or {}),
        "running": bool((inspect.get("State") or {}).get("Running")),
    }


def problems(inspect_output: str, names: list[str], d: Docker) -> list[str]:
    """Every difference between `docker inspect NAME...` output and the model, as `name: key is X, want Y`;
    a container missing from the output is a problem too."""
    try:
        found = {str(o.get("Name", "")).lstrip("/"): o for o in json.loads(inspect_output or "[]")}
    except (json.JSONDecodeError, AttributeError) as exc:
        return [f"docker inspect output is not a JSON list of containers: {exc}"]
    want = expected(d)
    out = []
    for name in names:
        if name not in found:
            out.append(f"{name}: not found by docker inspect")
            continue
        seen = observed(found[name])
        out += [f"{name}: {key} is {seen[key]!r}, want {value!r}" for key, value in want.items() if seen[key] != value]
    return out


def summary(d: Docker) -> str:
    """One line for the check's detail: what was verified."""
    caps = ",".join(sorted(set(d.cap_add))) or "none"
    return (f"{d.image}, cap-drop ALL + {caps}, no-new-privileges={d.no_new_privileges}, read-only={d.read_only}, "
            f"{d.memory_mib} MiB, {d.cpus_arg} CPU, pids {d.pids_limit}, tmpfs {' '.join(d.tmpfs)}")
