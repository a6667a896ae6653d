"""A fresh OpenSSH key pair from ssh-keygen, for the lab (Pulumi makes its own with pulumi-tls)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def new_key_pair(comment: str) -> tuple[str, str]:
    """(private key, public key) of a new ED25519 key without passphrase, in OpenSSH format.
    The private key only ever exists in a 0700 temporary directory and in memory."""
    with tempfile.TemporaryDirectory(prefix="hawc-key-") as work:
        key = Path(work) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)], check=True, capture_output=True, timeout=30)
        return key.read_text(), key.with_suffix(".pub").read_text()
