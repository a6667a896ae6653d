"""`python -m webcluster`: validate and render stacks, generate docs, drive the namespace lab."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .stackfile import LoadedStack, load_stack_file, stack_path
from .errors import UsageError
from .validation import ConfigError, count_phrase

EXIT_CONFIG = 2


def _add_stack_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--stack", default=None, help="stack name: reads Pulumi.<stack>.yaml in the current directory (default: dev)")
    g.add_argument("--file", type=Path, default=None, help="path of any stack file")


def load_from_args(args: argparse.Namespace) -> LoadedStack:
    path = args.file or stack_path(args.stack or "dev")
    return load_stack_file(path)


def cmd_validate(args: argparse.Namespace) -> int:
    from .summary import summarize

    print(summarize(load_from_args(args)))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render_cluster
    from .render.plan import write_plan

    stack = load_from_args(args)
    plan = render_cluster(stack.config)
    written = write_plan(plan, args.out)
    steps = len(plan.all_steps())
    print(f"rendered stack {stack.name}: {len(plan.nodes)} nodes, {len(written)} files, {steps} steps -> {args.out}")
    print("secrets appear as @@hawc:secret:<key>@@ placeholders; the Pulumi program fills them from secret Outputs")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .checks import check_config, format_table

    results = check_config(load_from_args(args).config)
    print(format_table(results, verbose=args.verbose))
    return 1 if any(not r.ok for r in results) else 0


def cmd_docs(args: argparse.Namespace) -> int:
    from .docs import configuration_reference, with_matrix
    from .model import StackConfig

    security = args.out.parent / "security.md"
    texts = {args.out: configuration_reference(), security: with_matrix(security.read_text(), StackConfig())}
    if args.check:
        stale = [path for path, text in texts.items() if (path.read_text() if path.exists() else "") != text]
        for path in stale:
            print(f"{path} is out of date: run `python -m webcluster docs`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m webcluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a stack config and print a summary (exit 2 with every error)")
    _add_stack_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="write every node's files and configuration steps")
    _add_stack_args(p)
    p.add_argument("--out", type=Path, required=True, help="output directory (DIR/<node>/<absolute path>)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("check", help="run the daemons' own config checkers on every node's rendered files (root; exit 1 on a failure)")
    _add_stack_args(p)
    p.add_argument("--verbose", "-v", action="store_true", help="print every checker's output, not only the failures'")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("docs", help="regenerate docs/configuration.md and docs/security.md's port matrix from the model")
    p.add_argument("--out", type=Path, default=Path("docs/configuration.md"))
    p.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    p.set_defaults(func=cmd_docs)

    try:
        from .lab.cli import add_lab_parser
    except ImportError:  # the lab is optional for validate/render
        add_lab_parser = None
    if add_lab_parser is not None:
        add_lab_parser(sub, _add_stack_args)
    from .e2e.cli import add_e2e_parser

    add_e2e_parser(sub, _add_stack_args)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        errors = sum(1 for p in exc.problems if p.severity == "error")
        print(f"invalid stack config ({count_phrase(errors, 'error')}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; stop quietly (the recipe of Python's signal docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
