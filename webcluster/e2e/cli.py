"""`python -m webcluster e2e run|change|down`: the program's plan replayed on QEMU guests."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def cmd_run(args: argparse.Namespace) -> int:
    from ..stackfile import load_stack_file, stack_path
    from .run import e2e_run, write_results
    from .shell import exit_on_sigterm

    load_stack_file(stack_path(args.stack))  # a bad stack is a clear error (exit 2) before any guest work
    exit_on_sigterm()
    report = e2e_run(args.stack, args.keep, args.resume)
    print(report.table())
    for path in write_results(report, args.out):
        print(f"wrote {path}")
    return 0 if report.ok else 1


def cmd_change(args: argparse.Namespace) -> int:
    from ..stackfile import load_stack_file, stack_path
    from .change import e2e_change
    from .shell import exit_on_sigterm

    load_stack_file(stack_path(args.stack))
    exit_on_sigterm()
    text, ok = e2e_change(args.stack, args.only, args.out)
    print(text)
    print(f"wrote {args.out / 'changes.txt'}")
    return 0 if ok else 1


def cmd_down(args: argparse.Namespace) -> int:
    from .run import e2e_down

    e2e_down(purge=args.purge)
    return 0


def add_e2e_parser(sub: argparse._SubParsersAction, add_stack_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("e2e", help="end-to-end run on QEMU guests (needs root and qemu-system-x86)")
    e2e = p.add_subparsers(dest="e2e_command", required=True)
    r = e2e.add_parser("run", help="build/cache the image, boot and provision (or restore), run the tests, print the table")
    r.add_argument("--stack", default="e2e", help="stack name (Pulumi.<stack>.yaml; default: e2e)")
    r.add_argument("--keep", action="store_true", help="leave the guests and namespace up afterwards")
    r.add_argument("--resume", action="store_true", help="after a provisioning that failed (with --keep): run its unfinished steps on the same guests, as a second `pulumi up` would, then snapshot and check")
    r.add_argument("--out", type=Path, default=Path("e2e-results"), help="where report.txt and timeline.png go (default: e2e-results)")
    r.set_defaults(func=cmd_run)
    from .changes import CHANGE_NAMES

    c = e2e.add_parser("change", help="apply changes to the provisioned cluster as `pulumi up` would, under load; one row per change")
    c.add_argument("--stack", default="e2e", help="stack name (Pulumi.<stack>.yaml; default: e2e)")
    c.add_argument("--only", nargs="+", choices=CHANGE_NAMES, metavar="NAME", help=f"only these changes (always applied in this order): {', '.join(repr(n) for n in CHANGE_NAMES)}")
    c.add_argument("--out", type=Path, default=Path("e2e-results"), help="where changes.txt goes (default: e2e-results)")
    c.set_defaults(func=cmd_change)
    d = e2e.add_parser("down", help="stop the guests, remove the namespace")
    d.add_argument("--purge", action="store_true", help="also remove snapshots, images and the package cache")
    d.set_defaults(func=cmd_down)
