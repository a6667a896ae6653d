"""Files that hold secrets are root-only from their creation: the renderer refuses anything looser,
and the lab's sandbox writes them private before their content is in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from webcluster.render import placeholders
from webcluster.render.builder import NodeBuilder, holds_secret
from webcluster.render.plan import NodePlan
from webcluster.sandbox import write_private_first
from webcluster.stackfile import load_values
from webcluster.topology import Topology


def test_a_secret_bearing_file_readable_by_others_is_refused() -> None:
    b = NodeBuilder(Topology(load_values({}).config), NodePlan(name="cluster1", role="director"))
    with pytest.raises(ValueError, match=r"cluster1:/etc/x.conf holds a secret.*0600 or stricter\), not 0644"):
        b.raw("/etc/x.conf", f"password {placeholders.secret('statsPassword')}\n")
    assert b.raw("/etc/x.conf", f"password {placeholders.secret('statsPassword')}\n", mode=0o600) == "/etc/x.conf"
    assert b.raw("/etc/y.conf", f"address {placeholders.value('sshPublicKey')}\n") == "/etc/y.conf", "a public value may be world-readable"
    assert not holds_secret(b"binary") and holds_secret(placeholders.secret("corosyncKey"))


def test_the_sandbox_makes_an_existing_file_private_before_writing_the_secret(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old, public\n")
    target.chmod(0o644)
    inode = target.stat().st_ino
    write_private_first(target, b"s3cret\n", 0o600)
    assert target.read_bytes() == b"s3cret\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_ino == inode, "the same inode (a file in a mounted overlay's upper dir must keep it)"
    fresh = tmp_path / "new"
    write_private_first(fresh, b"#!/bin/sh\n", 0o755)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o755
