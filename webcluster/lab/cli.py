"""`python -m webcluster lab up|down|status|test|bench`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable


def _stack_file(args: argparse.Namespace) -> Path:
    from ..stackfile import stack_path

    return (args.file or stack_path(args.stack or "dev")).resolve()


def cmd_up(args: argparse.Namespace) -> int:
    from ..stackfile import load_stack_file
    from ..topology import Topology
    from . import lifecycle, status

    path = _stack_file(args)
    stack = load_stack_file(path)
    state = lifecycle.up(stack, str(path))
    vips = status.collect(state)["vips"]
    cluster = Topology(stack.config).cluster
    vip = cluster.vips.external
    print(f"\nservices (from the client namespace: ip netns exec {status.netns_name(status.CLIENT)} curl ...):")
    for svc in cluster.haproxy.services:
        print(f"  {svc.name:<15} http://{vip}:{svc.port}/   ({svc.mode.value}, {svc.storage})")
    st = cluster.haproxy.stats
    print(f"  stats           http://{vip}:{st.port}{st.uri}  (user {st.user}, password in {state.secrets_file};")
    print(f"                  only from adminNetworks: ip netns exec {status.netns_name(status.HYPERVISOR)} curl ..., the hypervisor host's namespace)")
    print("VIPs: " + ", ".join(f"{k} -> {v}" for k, v in vips.items()))
    print("inspect: python3 -m webcluster lab status    tear down: python3 -m webcluster lab down")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from . import lifecycle

    lifecycle.down()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from . import status
    from .state import LabState

    state = LabState.load()
    if state is None:
        print("no lab is up", file=sys.stderr)
        return 1
    s = status.collect(state)
    print(json.dumps(s, indent=2, sort_keys=True) if args.json else status.format_status(s))
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from . import scenarios

    return scenarios.main(only=args.only)


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    return bench.main(args)


def _locked(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def wrapper(args: argparse.Namespace) -> int:
        from .state import exclusive

        with exclusive():
            return func(args)

    return wrapper


def add_lab_parser(sub: argparse._SubParsersAction, add_stack_args: Callable[[argparse.ArgumentParser], None]) -> None:
    lab = sub.add_parser("lab", help="the namespace lab: the stack's cluster on this machine, real daemons")
    lsub = lab.add_subparsers(dest="lab_command", required=True)
    p = lsub.add_parser("up", help="create the namespaces and start every daemon")
    add_stack_args(p)
    p.set_defaults(func=_locked(cmd_up))
    p = lsub.add_parser("down", help="remove everything the lab created")
    p.set_defaults(func=_locked(cmd_down))
    p = lsub.add_parser("status", help="nodes, VIP holders, HAProxy server states")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = lsub.add_parser("test", help="run the seed's scenarios on the running lab and print a table")
    p.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    p.set_defaults(func=_locked(cmd_test))
    p = lsub.add_parser("bench", help="failover and load measurements (table, CSV, PNG)")
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--quick", action="store_true", help="fewer trials and requests")
    p.add_argument("--skip", nargs="*", default=[], help="parts to skip: takeover, load, ab, gluster, serving (issue #17's faults), pacemaker (the same stack with haStack: pacemaker, last)")
    p.set_defaults(func=_locked(cmd_bench))
