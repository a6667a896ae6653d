"""Stack variants the lab bench brings up beside a stack (webcluster/lab/variants.py)."""

from __future__ import annotations

from pathlib import Path

from webcluster.lab import variants
from webcluster.stackfile import load_stack_file

ROOT = Path(__file__).resolve().parents[1]


def test_a_variant_changes_only_the_keys_it_names(tmp_path: Path) -> None:
    """Merged into the stack's own value (its other cluster keys stay), under the project prefix."""
    stack = tmp_path / "Pulumi.mine.yaml"
    stack.write_text("config:\n  ha-web-cluster:cluster:\n    domain: example\n    gluster:\n      brickSizeMib: 300\n  haStack: keepalived\n")
    out = variants.stack_variant(stack, tmp_path / "out", "plain", {"cluster": {"gluster": {"tls": False}}, "haStack": "pacemaker"})
    assert out.name == "Pulumi.mine-plain.yaml"
    config = load_stack_file(out).config
    assert config.cluster.domain == "example" and config.cluster.gluster.brick_size_mib == 300
    assert config.cluster.gluster.tls is False and config.ha_stack.value == "pacemaker"
    assert load_stack_file(stack).config.cluster.gluster.tls is True  # the original untouched
