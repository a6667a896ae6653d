"""`python -m webcluster lab up|down|status|test|bench|watch`, and the verbs that break it by hand (faults.py)."""

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


EXIT_USAGE = 2  # an unknown name, as argparse's own usage errors
VERB_LOCK_TIMEOUT = 60.0  # a verb waits this long for a lab command running elsewhere (test, bench), then says so
Act = Callable[[object, argparse.Namespace], object]


def _verb(check: Act, act: Act, done: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    """A `lab` verb on the running lab: names checked first (unknown -> the known ones, exit 2), then
    the fault made or undone under the lab lock, then one line saying what happened."""

    def cmd(args: argparse.Namespace) -> int:
        from .context import LabContext
        from .faults import FaultError
        from .state import LabBusy, exclusive

        try:
            lab = LabContext.current()
            check(lab, args)
            with exclusive(timeout=VERB_LOCK_TIMEOUT):
                act(lab, args)
        except ValueError as exc:  # UnknownName, or arguments that do not go together
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (FaultError, LabBusy, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(done(args))
        return 0

    return cmd


def _check_degrade(lab, args: argparse.Namespace) -> None:
    from .faults import known
    from .state import NETWORKS

    known("network", args.network, list(NETWORKS))
    if args.clear == bool(args.delay or args.loss):
        raise ValueError("give --delay MS and/or --loss PCT, or --clear alone")
    if args.delay < 0 or not 0 <= args.loss <= 100:
        raise ValueError("--delay is milliseconds >= 0 and --loss a percentage 0..100")


def add_fault_parsers(lsub: argparse._SubParsersAction) -> None:
    """The verbs that break the running lab by hand, each undoable, and `lab heal`."""
    from . import faults as f

    def verb(name: str, help: str, check: Act, act: Act, done: Callable[[argparse.Namespace], str]) -> argparse.ArgumentParser:
        p = lsub.add_parser(name, help=help)
        p.set_defaults(func=_verb(check, act, done))
        return p

    def container(lab, a):
        f.known("container", a.container, list(f.containers(lab)))

    p = verb("stop", "stop a container as `docker stop` does (Apache's stop signal)", container, lambda lab, a: f.stop(lab, a.container), lambda a: f"stopped container {a.container}")
    p.add_argument("container")

    def start_check(lab, a):
        if a.node is None:
            container(lab, a)
        else:
            f.check_daemon(lab, a.container, a.node)

    def start_act(lab, a):
        if a.node is None:
            f.start(lab, a.container)
        else:
            f.start_daemon(lab, a.container, a.node)

    p = verb("start", "start a stopped container (CONTAINER) or a killed daemon (DAEMON NODE) again", start_check, start_act,
             lambda a: f"started {a.container}" + (f" on {a.node}" if a.node else ""))
    p.add_argument("container", metavar="CONTAINER|DAEMON")
    p.add_argument("node", nargs="?", metavar="NODE")
    p = verb("kill", f"SIGKILL a daemon on a node ({', '.join(f.DAEMONS)}); `lab start DAEMON NODE` undoes it",
             lambda lab, a: f.check_daemon(lab, a.daemon, a.node), lambda lab, a: f.kill(lab, a.daemon, a.node), lambda a: f"killed {a.daemon} on {a.node}")
    p.add_argument("daemon")
    p.add_argument("node")
    for name, act, words in (("cut", f.cut, "unplugged"), ("plug", f.plug, "plugged back")):
        p = verb(name, f"{'unplug' if name == 'cut' else 'plug back'} a node's cables (every network's, or --link's)",
                 lambda lab, a: f.cut_networks(lab, a.node, a.link), lambda lab, a, act=act: act(lab, a.node, a.link),
                 lambda a, words=words: f"{a.node}: {a.link or 'every'} cable {words}")
        p.add_argument("node")
        p.add_argument("--link", metavar="NETWORK", help="external, internal or heartbeat")
    p = verb("power", "power a node off (as the fence switch does: cables out, every process killed, VIPs gone) or on",
             lambda lab, a: f.known("node", a.node, f.nodes(lab)), lambda lab, a: (f.power_off if a.action == "off" else f.power_on)(lab, a.node),
             lambda a: f"{a.node} powered {a.action}")
    p.add_argument("action", choices=("off", "on"))
    p.add_argument("node")
    p = verb("degrade", "delay and lose packets on a network (tc netem on every NIC of it; netfilter where the kernel has no netem), or --clear", _check_degrade,
             lambda lab, a: f.degrade(lab, a.network, a.delay, a.loss),
             lambda a: f"{a.network}: " + ("back to normal" if a.clear else f"{a.delay:g} ms delay, {a.loss:g} % loss"))
    p.add_argument("network", metavar="LINK", help="external, internal or heartbeat")
    p.add_argument("--delay", type=float, default=0, metavar="MS")
    p.add_argument("--loss", type=float, default=0, metavar="PCT")
    p.add_argument("--clear", action="store_true")
    healed: list[str] = []
    verb("heal", "undo every fault in force (and power on every node that is off)", lambda lab, a: None,
         lambda lab, a: healed.extend(f.heal(lab)), lambda a: "healed: " + ("; ".join(healed) or "nothing to undo"))


def cmd_watch(args: argparse.Namespace) -> int:
    from . import watch
    from .context import LabContext

    try:
        lab = LabContext.current()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return watch.run(lab, duration=args.duration, rate=args.rate)


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
    p.add_argument("--skip", nargs="*", default=[], help="parts to skip: takeover, load, ab, https (HTTP vs HTTPS through the VIP: h2load and ab), gluster, gluster-tls (Gluster with TLS on and off, two labs), serving (issue #17's faults), pacemaker (the same stack with haStack: pacemaker, last)")
    p.set_defaults(func=_locked(cmd_bench))
    add_fault_parsers(lsub)
    p = lsub.add_parser("watch", help="live view: VIP holders, HAProxy servers, nodes and faults, a probe load's success (Ctrl-C quits)")
    p.add_argument("--rate", type=float, default=4.0, help="probe requests a second per service (default 4)")
    p.add_argument("--duration", type=float, default=3600.0, help="quit after this many seconds at the latest (default 3600)")
    p.set_defaults(func=cmd_watch)
