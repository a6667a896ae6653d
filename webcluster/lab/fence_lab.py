"""fence_lab: the namespace lab's fence agent.

In production a director is fenced by fence_virsh/fence_vbox logging into the hypervisor
host and powering the VM off. In the lab the "hypervisor" is the root namespace, where the
nodes' cables are and which a director's namespaces cannot see: the lab's power switch
(webcluster.lab.power) runs there and this agent asks it over a root-only unix socket.

What pacemaker-fenced runs is /usr/sbin/fence_lab: this module's source, written by the lab
into the directors' /usr/sbin overlay only (never the host's), speaking the usual
fence-agent protocol (options as key=value lines on stdin, or `-o ACTION -n PLUG`). It
imports nothing but the standard library. `reboot` is performed as `off` (the lab's device
parameter pcmk_reboot_action=off says so to Pacemaker): a fenced lab node stays off until
the lab powers it on (LabContext.restore / revive), like a VM whose host keeps it off.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

AGENT = "fence_lab"
AGENT_PATH = f"/usr/sbin/{AGENT}"
EXIT_OK, EXIT_ERROR, EXIT_OFF = 0, 1, 2  # fence-agent exit codes (status: 0 on, 2 off)
REPLY_TIMEOUT = 50.0  # below pacemaker's default fence timeout (60 s)
DEFAULT_SOCKET: Optional[str] = None  # the copy a director runs names its lab's switch (agent_program)

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_lab" shortdesc="Fence agent of the ha-web-cluster namespace lab">
<longdesc>Powers a node of the namespace lab off: its cables out, its processes killed, its VIPs gone.
It asks the lab's power switch, a service in the root namespace, over a unix socket.</longdesc>
<vendor-url>https://github.com/ha-web-cluster</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="off" />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[node]" />
		<content type="string" />
		<shortdesc lang="en">Lab node to power off</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[node]" />
		<content type="string" />
		<shortdesc lang="en">Lab node to power off</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="validate-all" />
</actions>
</resource-agent>
"""


# --------------------------------------------------------------------------- the agent


def agent_options(argv: Sequence[str], stdin: str) -> dict[str, str]:
    """Options as pacemaker-fenced gives them (key=value lines on stdin) or as a person types them."""
    opts: dict[str, str] = {}
    for line in stdin.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            opts[key.strip()] = value.strip()
    parser = argparse.ArgumentParser(prog=AGENT, add_help=False)
    parser.add_argument("-o", "--action")
    parser.add_argument("-n", "--plug")
    known, _ = parser.parse_known_args(list(argv))
    opts.update({k: v for k, v in vars(known).items() if v is not None})
    return opts


def ask(socket_path: Path, request: dict[str, str], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """One request to the power switch, one JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data or b"{}")


def agent_main(socket_path: Path, argv: Sequence[str], stdin: str) -> int:
    """The fence-agent protocol: print metadata, or have the switch act and map its answer to an exit code."""
    opts = agent_options(argv, stdin)
    action = opts.get("action", "off")
    if action == "metadata":
        print(METADATA, end="")
        return EXIT_OK
    node = opts.get("plug") or opts.get("port") or opts.get("nodename") or ""
    if action == "reboot":
        action = "off"  # see the module docstring: the lab powers a fenced node on itself
    if action in ("off", "status") and not node:
        print(f"{AGENT}: no plug (node) given", file=sys.stderr)
        return EXIT_ERROR
    try:
        reply = ask(socket_path, {"action": action, "node": node})
    except (OSError, ValueError) as exc:
        print(f"{AGENT}: the lab's power switch at {socket_path} did not answer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not reply.get("ok"):
        print(f"{AGENT}: {action} {node}: {reply.get('error', 'failed')}", file=sys.stderr)
        return EXIT_ERROR
    if action == "list":
        print("\n".join(f"{n}," for n in reply.get("nodes", [])))
    if action == "status":
        return EXIT_OK if reply.get("power") == "on" else EXIT_OFF
    return EXIT_OK


def agent_program(socket_path: Path) -> str:
    """/usr/sbin/fence_lab in a director: this module's own source under the system Python, bound to
    this lab's switch. Self-contained on purpose: pacemaker-controld runs the metadata action as
    user hacluster, who may read neither the lab's interpreter nor its checkout."""
    marker = "DEFAULT_SOCKET: Optional[str] = None"
    source = Path(__file__).read_text()
    assert marker in source
    bound = source.replace(marker, f"DEFAULT_SOCKET: Optional[str] = {str(socket_path)!r}", 1)
    return "#!/usr/bin/python3\n# The namespace lab's fence agent (webcluster/lab/fence_lab.py), written by `lab up` into this node's /usr/sbin overlay.\n" + bound


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--socket", type=Path, default=DEFAULT_SOCKET, help="the lab's power switch (webcluster.lab.power)")
    known, rest = parser.parse_known_args(args)
    if known.socket is None:
        parser.error("--socket is required")
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    return agent_main(known.socket, rest, stdin)


if __name__ == "__main__":
    sys.exit(main())
