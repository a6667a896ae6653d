"""The web pages of the seed (index.php, index1.php, pi.php, imagen.html + imagen.jpg), and record.php."""

from __future__ import annotations

from .builder import NodeBuilder
from .templating import asset

CONTENT_DIR = "/etc/ha-web-cluster/www"
PI_MAX_N = 10_000_000
RECORD_MAX_MS = 2000  # record.php's longest wait: below `timeout server`'s default, and one worker for 2 s at most
TIMEZONE = "Europe/Madrid"


def content_files(vip: str) -> dict[str, tuple[str, dict]]:
    """name -> (template, context)."""
    base = {"vip": vip, "timezone": TIMEZONE}
    return {
        "index.php": ("content/index.php.j2", {**base, "refresh": ""}),
        # The seed's traffic-loop variant: the same page, reloading itself every second.
        "index1.php": ("content/index.php.j2", {**base, "refresh": '<meta http-equiv="refresh" content="1">'}),
        "pi.php": ("content/pi.php.j2", {"max_n": PI_MAX_N}),
        "imagen.html": ("content/imagen.html.j2", {}),
        # Logs each execution, then waits: how the lab proves a POST is never replayed.
        "record.php": ("content/record.php.j2", {"max_ms": RECORD_MAX_MS}),
    }


def add_content_files(b: NodeBuilder) -> list[str]:
    vip = str(b.topo.cluster.vips.external)
    paths = [b.file(f"{CONTENT_DIR}/{name}", template, **ctx) for name, (template, ctx) in content_files(vip).items()]
    paths.append(b.raw(f"{CONTENT_DIR}/imagen.jpg", asset("content/imagen.jpg")))
    return paths
