"""What `pulumi up` would re-run for a configuration change, and the changes the e2e applies.

A change is a new configuration of the same stack (config keys, secrets, or the checkout's
templates), recorded with the program under the mock engine like the baseline
(:func:`.recording.record`). The steps to run are those pulumi-command would run again
(:func:`reruns`), in the changed plan's dependency order (:func:`plan_of_changed`). The table
and its verdicts are here too: pure functions, tested without guests.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..loss import loss_budget
from ..render import templating
from .recording import PlanRecording, RemoteStep

PROJECT_PREFIX = "ha-web-cluster:"
# The changes, in the order they are applied (webcluster/e2e/change.py: the_changes).
CHANGE_NAMES = ("haproxy timeout", "certificate", "content", "one more container", "image tag")


def reruns(old: Optional[RemoteStep], new: RemoteStep) -> bool:
    """Whether `pulumi up` runs the step's `create` command again: a new step is created, and an
    existing one runs `create` again when any of its inputs changed.

    pulumi-command 1.2.1 (requirements.txt), provider/pkg/provider/remote/command.go: the remote
    Command has no Diff of its own, so pulumi-go-provider's `infer` diffs its inputs (`create`,
    `update`, `delete`, `stdin`, `triggers`, `connection`, `logging`, `environment`,
    `addPreviousOutputInEnv`): any difference is an update, and `triggers` (tagged
    `provider:"replaceOnChanges"` in provider/pkg/provider/common/inputs.go) a replace.
    provider/pkg/provider/remote/commandController.go: `Update` runs `update`, or `create` when
    there is none (this program gives none); a replace runs `create` too (and `delete`, which this
    program leaves empty). The recording keeps the inputs the program sets per step: `create`,
    `stdin`, `triggers` and the connection; `logging` follows the step's secrets, which its stdin
    already shows, and the rest are the same for every step."""
    if old is None:
        return True
    inputs = lambda s: (s.command, s.stdin, s.triggers, s.host, s.port, s.user, s.private_key, s.proxy)  # noqa: E731
    return inputs(old) != inputs(new)


def changed_steps(before: PlanRecording, after: PlanRecording) -> list[str]:
    """Names of the steps of `after` that `pulumi up` from `before` runs, in `after`'s order.
    (Steps only in `before` are deleted: their `delete` command, none here, is all that runs.)"""
    return [s.name for s in after.ordered() if reruns(before.steps.get(s.name), s)]


def plan_of_changed(after: PlanRecording, names: list[str]) -> PlanRecording:
    """`after` cut down to the steps `names`, each waiting for the chosen steps it depends on,
    also through steps that do not run (on guests that run already: nothing to wait for before
    they boot). Pulumi walks the whole graph in dependency order, unchanged resources included,
    so a Docker host's roll still follows the directors' re-run HAProxy step through their
    unchanged keepalived step: dropping the unchosen steps must keep that order."""
    chosen = set(names)
    reach: dict[str, frozenset[str]] = {}

    def chosen_ancestors(name: str) -> frozenset[str]:
        if name not in reach:
            found: set[str] = set()
            for dep in after.steps[name].after:
                found |= {dep} if dep in chosen else set()
                found |= chosen_ancestors(dep)
            reach[name] = frozenset(found)
        return reach[name]

    for step in after.ordered():  # dependencies first: the recursion stays shallow
        chosen_ancestors(step.name)
    steps = {n: replace(after.steps[n], after=reach[n]) for n in names}
    guests = {g: replace(guest, boot_after=frozenset()) for g, guest in after.guests.items()}
    return PlanRecording(after.stack, guests, steps, after.outputs)


# --------------------------------------------------------------------------- the configuration


@dataclass(frozen=True)
class Variant:
    """One configuration of the stack: top-level config overrides (keys without the project
    prefix), extra secrets, and template files replaced in a copy of templates/."""

    overrides: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)  # path under templates/ -> new text


def set_key(stack_config: dict[str, Any], variant: Variant, path: str, value: Any) -> Variant:
    """`variant` with the dotted config key `path` (camelCase, as in the stack file) set to `value`,
    the rest of its top-level key kept (from the variant, else from the stack file)."""
    top, *rest = path.split(".")
    tree = copy.deepcopy(variant.overrides.get(top, stack_config.get(PROJECT_PREFIX + top, {})))
    if not rest:
        tree = value
    else:
        node = tree
        for key in rest[:-1]:
            node = node.setdefault(key, {})
        node[rest[-1]] = value
    return replace(variant, overrides={**variant.overrides, top: tree})


@contextlib.contextmanager
def templates_edited(edits: dict[str, str]) -> Iterator[None]:
    """The renderer reads a copy of templates/ with `edits` applied, for the with block: what a user
    does to change the web content is edit templates/content/ in the checkout and run `pulumi up`
    (there is no config key for the pages), without touching this checkout."""
    if not edits:
        yield
        return
    original = templating.TEMPLATES
    with tempfile.TemporaryDirectory(prefix="hawc-e2e-templates-") as tmp:
        copy_root = Path(tmp) / "templates"
        shutil.copytree(original, copy_root)
        for name, text in edits.items():
            (copy_root / name).write_text(text)
        templating.TEMPLATES = copy_root
        templating.environment.cache_clear()
        try:
            yield
        finally:
            templating.TEMPLATES = original
            templating.environment.cache_clear()


@dataclass(frozen=True)
class Change:
    """One row: a name, how it changes the previous variant, what must be done on the guests
    before its steps run (the e2e's stand-in for what it cannot do, e.g. a registry pull), and
    how to see that it took effect."""

    name: str
    apply: Callable[[Variant], Variant]
    prepare: Optional[Callable[[], str]] = None  # returns what it did, for the log
    verify: Optional[Callable[[], None]] = None  # after its steps: raises (a Timeout) unless the change shows


# --------------------------------------------------------------------------- rows and verdicts


@dataclass
class Row:
    change: str
    steps: list[str]
    seconds: float = 0.0
    sent: dict[str, int] = field(default_factory=lambda: {"http": 0, "tcp": 0})
    failed: dict[str, list[str]] = field(default_factory=lambda: {"http": [], "tcp": []})  # mode -> reasons
    vip_moves: int = 0
    error: str = ""  # a step failed, or the change could not be applied
    watched: list[str] = field(default_factory=list)  # what the directors said meanwhile: server states (serverwatch), failed requests (haproxy_journal)

    def problems(self, in_flight: int) -> list[str]:
        """Why the row misses the goal (none: PASS). HTTP mode: none lost (HAProxy replays a GET);
        TCP mode: at most loss_budget('tcp', in_flight), the requests in flight on a connection a
        drained server closes; the VIP never moves (a move resets every connection in flight)."""
        out = [self.error] if self.error else []
        if not self.steps and not self.error:
            out.append("no step changed: the change had no effect on the plan")
        if len(self.failed["http"]) > loss_budget("http", in_flight):
            out.append(f"HTTP mode: {len(self.failed['http'])} failed, budget {loss_budget('http', in_flight)}")
        if len(self.failed["tcp"]) > loss_budget("tcp", in_flight):
            out.append(f"TCP mode: {len(self.failed['tcp'])} failed, budget {loss_budget('tcp', in_flight)}")
        if self.vip_moves:
            out.append(f"the VIP moved {self.vip_moves} times")
        return out


def table(rows: list[Row], in_flight: int) -> str:
    """The result table, PASS/FAIL per row, then each row's steps and reasons in full."""
    head = f"{'change':<20} {'steps':>5} {'time':>8} {'HTTP sent/failed':>17} {'TCP sent/failed':>16} {'VIP moves':>9}  result"
    lines = [head]
    for r in rows:
        http = f"{r.sent['http']}/{len(r.failed['http'])}"
        tcp = f"{r.sent['tcp']}/{len(r.failed['tcp'])}"
        lines.append(f"{r.change:<20} {len(r.steps):>5} {r.seconds:>7.1f}s {http:>17} {tcp:>16} {r.vip_moves:>9}  {'FAIL' if r.problems(in_flight) else 'PASS'}")
    lines.append("")
    lines.append(f"goal: HTTP mode 0 failed, TCP mode at most {loss_budget('tcp', in_flight)} failed (requests in flight: {in_flight}), no VIP move")
    for r in rows:
        lines.append(f"{r.change}: steps run: {', '.join(r.steps) or 'none'}")
        lines += r.watched
        for mode in ("http", "tcp"):
            if r.failed[mode]:
                lines.append(f"  {mode} failures: " + "; ".join(r.failed[mode][:5]) + (" ..." if len(r.failed[mode]) > 5 else ""))
        for problem in r.problems(in_flight):
            lines.append(f"  FAIL: {problem}")
    lines += ["", f"e2e change: {'PASS' if all_pass(rows, in_flight) else 'FAIL'}"]
    return "\n".join(lines)


def all_pass(rows: list[Row], in_flight: int) -> bool:
    return bool(rows) and not any(r.problems(in_flight) for r in rows)
