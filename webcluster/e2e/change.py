"""`e2e change`: changes applied to a provisioned cluster as `pulumi up` would, under load (issue #15).

Against the guests `e2e run --keep` left running (a guest that is not running, e.g. the Docker
host the last check powered off, is restored from its snapshot), or, with none running, the
saved snapshots restored. Each change (webcluster/e2e/changes.py) is recorded with the program
under the mock engine, cumulatively; the steps pulumi-command would run again run in the
changed plan's order (:func:`.replay.replay`) while clients send requests through the external
VIP in HTTP and TCP mode (:mod:`.load`) and the VIP watch hears every move. One row per change.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from webcluster.render import templating
from webcluster.topology import ROLE_BACKEND, ROLE_DIRECTOR, Topology

from . import changeplot, guests, haproxy_journal, network, timeline
from .changes import Change, Row, Variant, all_pass, changed_steps, plan_of_changed, set_key, table, templates_edited
from .checks import CheckFailed, Cluster, healthy, http_get, on, request_timeout, stats_auth, watch_vip
from .image import GuestImage
from .load import Load
from .pki import new_https_certificate
from .recording import PlanRecording, record, stack_config
from .replay import StepResult, replay
from .run import Report, host_side, recorded_stack, restored, snapshot_key
from .serverwatch import ServerWatch, report_lines
from .shell import log, run
from .ssh import key_pair
from ..waiting import Timeout, wait_until

LOAD_CLIENTS = 2  # per mode: the requests in flight, so the TCP loss budget
LOAD_MAX_S = 3600  # a change's load ends by then whatever its steps do (each step: replay.STEP_TIMEOUT_S)
AFTER_STEPS_S = 3  # the load goes on this long after the last step
JOURNAL_TIMEOUT_S = 240  # reading a director's journal over SSH after a change that lost requests
CONTENT_PAGE = "content/imagen.html.j2"
CONTENT_MARKER = "<p>e2e change: new content</p>"
NEW_IMAGE_SUFFIX = "-e2e-change"


@dataclass(frozen=True)
class OnGuests:
    """What the changes do on the guests (faked in the tests)."""

    certificate: Callable[[], tuple[str, str]]  # (chain, key) of a new certificate
    tag_images: Callable[[str, str], str]  # (old, new): make `new` exist on every Docker host, as a pull would
    served: Callable[[str, str], None]  # (page, text): wait until the HTTP-mode services serve it
    certificate_served: Callable[[str], None]  # (chain): wait until every TLS frontend presents its leaf


def the_changes(stack_file: dict, topology: Topology, on_guests: OnGuests) -> list[Change]:
    """The issue's five changes, in order, each from the previous one's configuration."""
    cluster = topology.cluster
    timeout = cluster.haproxy.tuning.timeout_server_ms + 1000
    backends = [b.model_dump(by_alias=True, mode="json") for b in cluster.backends]
    first = backends[0]
    port = max(ct["port"] for b in backends for ct in b["containers"]) + 1
    first["containers"] = [*first["containers"], {"name": f"{first['name']}{len(first['containers']) + 1}p", "port": port, "docroot": "nfs"}]
    old_image = cluster.docker.image
    new_image = old_image + NEW_IMAGE_SUFFIX
    page = (templating.TEMPLATES / CONTENT_PAGE).read_text()
    issued: dict[str, str] = {}

    def with_certificate(v: Variant) -> Variant:
        issued["chain"], key = on_guests.certificate()
        return replace(v, secrets={**v.secrets, "httpsCertificate": issued["chain"], "httpsKey": key})

    return [
        Change("haproxy timeout", lambda v: set_key(stack_file, v, "cluster.haproxy.tuning.timeoutServerMs", timeout)),
        Change("certificate", with_certificate, verify=lambda: on_guests.certificate_served(issued["chain"])),
        Change("content", lambda v: replace(v, templates={**v.templates, CONTENT_PAGE: page.replace("</body>", CONTENT_MARKER + "\n</body>")}),
               verify=lambda: on_guests.served("imagen.html", CONTENT_MARKER)),
        Change("one more container", lambda v: set_key(stack_file, v, "cluster.backends", backends)),
        Change("image tag", lambda v: set_key(stack_file, v, "cluster.docker.image", new_image), lambda: on_guests.tag_images(old_image, new_image)),
    ]


def running(topology: Topology, plan: PlanRecording, image: GuestImage, report: Report) -> None:
    """Every guest of the plan running at the plan's baseline: those `e2e run --keep` left when
    all of them run, else every guest from its snapshot (also when an earlier `e2e change`
    changed them). Never some from their snapshots beside others that ran on: a guest restored
    alone resumes an hour-old moment, its NFS and Gluster connections long closed by the servers,
    and its pages hung past the server timeout for about two minutes while they reconnected
    (2 December: a lone restored cluster4 gave the first change 4 HTTP and 8 TCP failures, all
    on its containers)."""
    key = snapshot_key(image, plan)
    alive = {g for g in plan.guests if guests.alive(g)}
    if alive and guests.CHANGED_MARK.exists():
        log("the running guests were changed by an earlier `e2e change`: restoring every guest from its snapshot")
        alive = set()
    elif alive and alive != set(plan.guests):
        log(f"not running: {', '.join(sorted(set(plan.guests) - alive))}: restoring every guest from its snapshot (one consistent moment)")
        alive = set()
    if alive:
        return
    if not all(guests.snapshot_matches(g, key) for g in plan.guests):
        raise RuntimeError("no snapshot of this plan for every guest: run `e2e run --keep` first")
    guests.stop_all()
    network.create(host_side(topology, plan))
    guests.CHANGED_MARK.unlink(missing_ok=True)
    if not restored(plan, image, report):
        raise RuntimeError("the snapshots did not restore (see above): run `e2e run --keep` first")


def tag_on_docker_hosts(c: Cluster, old: str, new: str) -> str:
    """`docker tag OLD NEW` on every Docker host: the e2e's stand-in image is baked into the guest
    image under OLD (Docker Hub is unreachable), so NEW is made locally instead of pulled."""
    hosts = c.nodes(ROLE_BACKEND)
    for host in hosts:
        on(c, host, f"docker tag {old} {new}", timeout=120, tries=2)
    return f"tagged {old} as {new} on {', '.join(hosts)}"


SERVED_WAIT_S = 60


def served(c: Cluster, page: str, text: str) -> None:
    """Every HTTP-mode service serves `text` in `page` within SERVED_WAIT_S (a static page: the
    content switch shows at once, no PHP realpath cache lag)."""
    for url in urls_by_mode(c)["http"]:
        wait_until(f"{text!r} in {url}{page}", lambda: text in http_get(url + page)[1], SERVED_WAIT_S, 2)


PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


def leaf(text: str) -> str:
    """The first certificate in PEM text ("" if none): the server's own in a chain."""
    m = PEM_CERTIFICATE.search(text)
    return m.group(0) if m else ""


def certificate_served(c: Cluster, chain: str) -> None:
    """Every TLS frontend presents the new certificate within SERVED_WAIT_S (`openssl s_client` from
    the client's side): the swap through HAProxy's runtime API took effect."""
    want = leaf(chain)
    for url in sorted((c.plan.outputs.get("httpsUrls") or {}).values()):
        address = url.split("://", 1)[1].split("/", 1)[0]

        def presented() -> str:
            r = run(["openssl", "s_client", "-connect", address, "-servername", c.topology.cluster.haproxy.https.dns_name],
                    input=b"", timeout=30, netns=network.NETNS, check=False)
            return leaf(r.stdout.decode(errors="replace"))

        wait_until(f"the new certificate on {address}", lambda: presented() == want, SERVED_WAIT_S, 2)


def modes(c: Cluster) -> dict[str, str]:
    return {s.name: s.mode.value for s in c.topology.cluster.haproxy.services}


def urls_by_mode(c: Cluster) -> dict[str, list[str]]:
    return {mode: [u for n, u in sorted(c.services.items()) if modes(c).get(n) == mode] for mode in ("http", "tcp")}


def plot_path(out: Path, change: str) -> Path:
    """Where a change's server-state plot goes: changes-<name, dashed>.png."""
    return out / f"changes-{re.sub(r'[^a-z0-9]+', '-', change.lower()).strip('-')}.png"


def apply(c: Cluster, stack: str, changes: list[Change], rows: list[Row], all_steps: list[StepResult], out: Path) -> None:
    """Apply `changes` one after another, a row each (appended as it starts, so an error still
    leaves the rows so far); the first that fails ends the run. Meanwhile every director's view
    of the servers is watched: the row lists what left UP, and a plot per change shows it beside
    the failed requests and VIP moves."""
    private, public = key_pair()
    before, variant = c.plan, Variant()
    for change in changes:
        log(f"change: {change.name}")
        variant = change.apply(variant)
        with templates_edited(variant.templates):
            after = record(stack, private, public, variant.secrets, variant.overrides)
        names = changed_steps(before, after)
        row = Row(change.name, names)
        rows.append(row)
        log(f"change: {change.name}: {len(names)} steps to run: {', '.join(names) or 'none'}")
        before = after
        if not names:
            continue
        try:
            healthy(c)
            if change.prepare:
                log(f"change: {change.name}: {change.prepare()}")
        except (Timeout, CheckFailed) as exc:
            row.error = f"before the change: {exc}"
            break
        guests.CHANGED_MARK.touch()
        servers = ServerWatch(c.plan.outputs["statsUrls"], stats_auth(c), http_get)
        load = Load(urls_by_mode(c), LOAD_CLIENTS, request_timeout(c), LOAD_MAX_S, c.vip_watch)
        start, started = time.monotonic(), time.time()
        try:
            results = replay(plan_of_changed(after, names), lambda guest: None)
            time.sleep(AFTER_STEPS_S)
        finally:
            counted = load.stop()
            samples = servers.stop()
        row.seconds = time.monotonic() - start
        row.watched = report_lines(samples, started)
        if counted.failures:
            found, unread = haproxy_journal.failed_requests(lambda d, script: on(c, d, script, timeout=JOURNAL_TIMEOUT_S, tries=2), c.nodes(ROLE_DIRECTOR), row.seconds)
            row.watched += haproxy_journal.report_lines(found, unread)
        changeplot.plot(change.name, samples, counted.failures, counted.vip_moves, started, plot_path(out, change.name))
        all_steps += results
        row.sent = counted.sent
        row.failed = {mode: counted.reasons(mode) for mode in ("http", "tcp")}
        row.vip_moves = len(counted.vip_moves)
        failed = [r for r in results if not r.ok]
        if failed or len(results) != len(names):
            # Not its output: a step carrying a secret may print it (the log above has the output, as in `e2e run`).
            row.error = f"step {failed[0].name} failed (its output is in the log above)" if failed else "not every step ran"
            break
        if change.verify:
            try:
                change.verify()
            except Timeout as exc:
                row.error = f"no effect: {exc}"
        log(f"change: {change.name}: {row.seconds:.1f}s, HTTP {row.sent['http']}/{len(row.failed['http'])}, TCP {row.sent['tcp']}/{len(row.failed['tcp'])} sent/failed, VIP moves {row.vip_moves}")


def e2e_change(stack: str, only: Optional[list[str]], out: Path) -> tuple[str, bool]:
    """Run the changes (all, or those named in `only`, in the issue's order); (table, all passed)."""
    report = Report()
    rows: list[Row] = []
    steps: list[StepResult] = []
    start = time.monotonic()
    try:
        topology, plan, image = recorded_stack(stack, report)
        running(topology, plan, image, report)
        watch = watch_vip(topology, plan)
        try:
            c = Cluster(topology, plan, watch)
            on_guests = OnGuests(lambda: new_https_certificate(topology), lambda old, new: tag_on_docker_hosts(c, old, new),
                                 lambda page, text: served(c, page, text), lambda chain: certificate_served(c, chain))
            changes = the_changes(stack_config(stack), topology, on_guests)
            apply(c, stack, [ch for ch in changes if not only or ch.name in only], rows, steps, out)
        finally:
            watch.stop()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        rows.append(Row("(error)", [], error=f"{type(exc).__name__}: {exc}"))
        log(rows[-1].error)
    text = table(rows, LOAD_CLIENTS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "changes.txt").write_text(text + "\n")
    if steps:
        timeline.plot(steps, {}, start, out / "changes-timeline.png")
    return text, all_pass(rows, LOAD_CLIENTS)
