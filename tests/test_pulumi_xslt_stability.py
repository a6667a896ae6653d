"""The XSLT stylesheets the program declares are byte-stable: same model, same bytes, whatever the hash seed.

terraform-provider-libvirt v0.8.1 marks a domain's and a network's `xml.xslt` ForceNew with
no diff suppression on either (libvirt/resource_libvirt_domain.go, resource_libvirt_network.go;
`xsltDiffSupressFunc` in libvirt/utils_xslt.go is not wired to them): one changed byte,
whitespace included, replaces every domain it touches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DUMP = """
import json, sys
sys.path.insert(0, "tests")
from pulumi_harness import run_stack
out = {}
for stack, over in (("dev", {}), ("dev", {"haStack": "pacemaker"})):
    rec = run_stack(stack, **over)
    for r in rec.resources.values():
        xslt = (r.inputs.get("xml") or {}).get("xslt")
        if xslt is not None:
            out[f"{over.get('haStack', 'keepalived')}/{r.type}/{r.name}"] = xslt
print(json.dumps(out, sort_keys=True))
"""


def stylesheets(hash_seed: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    result = subprocess.run([sys.executable, "-c", DUMP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_stylesheets_are_identical_across_hash_seeds() -> None:
    first = stylesheets("0")
    assert len([k for k in first if "/libvirt:index/domain:Domain/" in k]) == 20, "every domain of both stacks has one"
    assert any("/libvirt:index/network:Network/" in k for k in first)
    for seed in ("1", "4242"):
        assert stylesheets(seed) == first
