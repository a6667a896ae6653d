"""Content releases in the lab: publish a marked version of the pages with the NAS's rendered
content step, and check under load that every response is one release, whole (docs/content.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from ..render import render_cluster
from ..render.backend import NAS_CONTENT_STEP
from ..render.content import CONTENT_DIR
from ..render.plan import RenderedFile
from ..topology import ROLE_NAS
from .context import LabContext
from .lifecycle import run_step
from .state import CLIENT, netns_name, sandbox

CHECKER = Path(__file__).with_name("consistency.py")
FILLER = 256 * 1024  # large enough that a page is read in many pieces


def version_pages(n: int) -> list[RenderedFile]:
    """Version `n` of two pages: index.php prints marker A and includes imagen.html (B ... C), so one
    response spans two files; imagen.html alone spans its own start and end."""
    v = f"v{n}"
    html = f"B {v}\n" + ("x" * 99 + "\n") * (FILLER // 100) + f"C {v}\n"
    php = f"<?php\necho \"A {v}\\n\";\nreadfile(__DIR__ . '/imagen.html');\n"
    return [RenderedFile(f"{CONTENT_DIR}/index.php", php), RenderedFile(f"{CONTENT_DIR}/imagen.html", html)]


def publish(lab: LabContext, n: int) -> str:
    """Version `n` into the NFS docroot with the NAS's rendered content step, as `pulumi up` runs it."""
    nas = lab.topo.nodes_with_role(ROLE_NAS)[0].name
    sandbox(nas).write_files(version_pages(n))
    return run_step(render_cluster(lab.topo.config), nas, NAS_CONTENT_STEP)


def restore(lab: LabContext) -> str:
    """The rendered pages again (what `lab up` published)."""
    nas = lab.topo.nodes_with_role(ROLE_NAS)[0].name
    plan = render_cluster(lab.topo.config)
    sandbox(nas).write_files([f for p, f in plan.nodes[nas].files.items() if p.startswith(CONTENT_DIR + "/")])
    return run_step(plan, nas, NAS_CONTENT_STEP)


def start_checker(urls: list[str], concurrency: int = 4, duration: float = 120) -> subprocess.Popen:
    argv = ["ip", "netns", "exec", netns_name(CLIENT), sys.executable, str(CHECKER), *urls, "-c", str(concurrency), "--duration", str(duration)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_checker(proc: subprocess.Popen, timeout: float = 60) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"consistency checker failed: {err.strip()}")
    return json.loads(out)
