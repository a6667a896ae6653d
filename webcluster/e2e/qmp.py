"""A minimal QMP client: the one way the run talks to a running QEMU (links, snapshots, power)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class QmpError(RuntimeError):
    pass


class Qmp:
    """One short-lived connection per call sequence; every read is bounded by `timeout`."""

    def __init__(self, path: Path, timeout: float = 30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while True:
            line = self.file.readline()
            if not line:
                raise QmpError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, command: str, **arguments: Any) -> Any:
        self.file.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise QmpError(f"{command}: {reply['error'].get('desc')}")
        return reply.get("return")

    def hmp(self, line: str, timeout: float = 600) -> str:
        """A human-monitor command (savevm has no QMP equivalent in QEMU 7.2); its output is its error text."""
        self.sock.settimeout(timeout)
        return str(self.execute("human-monitor-command", **{"command-line": line}) or "")

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Qmp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
