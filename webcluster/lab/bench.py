"""`lab bench`: failover and load figures on the running lab, as a table, CSV files and PNG plots.

Numbers, not verdicts: every figure is measured here, on this machine, in one run, so
ratios (ours vs keepalived's defaults, balancer vs one container) compare like with like.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..render import render_cluster
from ..render.placeholders import fill
from . import apache, gluster_tls_bench, https_bench, pacemaker, processes, serving_faults
from ..waiting import wait_until
from .context import LabContext
from .state import lab_secrets, netns_name, sandbox

SEED_CSV = Path(__file__).resolve().parents[3] / "shared" / "reference" / "thesis-ab-results.csv"
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
TAKEOVER_TIMEOUT = 30.0  # a trial without takeover by then counts as NaN (Pacemaker with a quorum device needs up to ~15 s)
SETTLE_TIMEOUT = 60.0  # a fenced Pacemaker director is powered on and rejoins before the next trial


# --------------------------------------------------------------------------- VIP takeover


class AddressWatch:
    """Timestamps the moment an address appears in a namespace (ip monitor, no polling gaps)."""

    def __init__(self, ns: str, address: str):
        self.address = address
        self.seen_at: Optional[float] = None
        self.proc = subprocess.Popen(["ip", "-n", ns, "monitor", "address"], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.seen_at is None and f"inet {self.address}/" in line and not line.startswith("Deleted"):
                self.seen_at = time.monotonic()

    def wait(self, timeout: float) -> Optional[float]:
        deadline = time.monotonic() + timeout
        while self.seen_at is None and time.monotonic() < deadline:
            time.sleep(0.005)
        self.proc.terminate()
        self.proc.wait(timeout=5)
        return self.seen_at


def _keepalived_variant(lab: LabContext, advert: float) -> dict[str, str]:
    """keepalived.conf per director for another advert interval, rendered by the same renderer."""
    cfg = lab.topo.config
    vrrp = cfg.cluster.vrrp.model_copy(update={"advert_interval": advert})
    variant = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"vrrp": vrrp})})
    plan = render_cluster(variant)
    values = lab_secrets()
    return {d.name: fill(str(plan.nodes[d.name].files[KEEPALIVED_CONF].content), values) for d in lab.directors}


def _apply_keepalived(lab: LabContext, confs: dict[str, str]) -> None:
    for name, text in confs.items():
        sandbox(name).run(["sh", "-c", f"umask 077 && cat > {KEEPALIVED_CONF}"], input=text)  # the VRRP password: root only from the start
        processes.restart(lab.state, name, "keepalived")
    wait_until("master holds the VIPs", lambda: lab.vips_on(lab.directors[0].name) and lab.sole_holder(lab.vip) == lab.directors[0].name, 30)
    time.sleep(2)


def _settle(lab: LabContext) -> None:
    master = lab.directors[0].name
    wait_until("master holds the VIPs again", lambda: lab.sole_holder(lab.vip) == master and lab.vips_on(master), SETTLE_TIMEOUT)
    time.sleep(1.5)


def _freeze(lab: LabContext, director: str, sig: int) -> None:
    """SIGSTOP/SIGCONT every daemon of a director: a hung machine that sends nothing, not even a goodbye."""
    for proc in lab.state.processes:
        if proc.node == director:
            processes.signal_group(proc.pid, sig)


FAULTS: dict[str, tuple[Callable[[LabContext, str], None], Callable[[LabContext, str], None]]] = {
    "links cut": (lambda lab, d: lab.cut(d), lambda lab, d: lab.restore(d)),
    "haproxy killed": (lambda lab, d: lab.kill(d, "haproxy", sig=signal.SIGKILL), lambda lab, d: lab.restart(d, "haproxy")),
    "director frozen": (lambda lab, d: _freeze(lab, d, signal.SIGSTOP), lambda lab, d: _freeze(lab, d, signal.SIGCONT)),
}


def takeover_trial(lab: LabContext, fault: str) -> float:
    master, standby = lab.directors[0].name, lab.directors[1].name
    watch = AddressWatch(netns_name(standby), lab.vip)
    inject, repair = FAULTS[fault]
    t0 = time.monotonic()
    inject(lab, master)
    seen = watch.wait(timeout=TAKEOVER_TIMEOUT)
    repair(lab, master)
    lab.revive(master)  # Pacemaker fenced it: power it on again (keepalived never fences: nothing to do)
    _settle(lab)
    if seen is None:
        return float("nan")
    return seen - t0


def _trials_line(label: str, fault: str, values: list[float]) -> str:
    return f"takeover {label}, {fault}: median {statistics.median(values):.3f} s, trials " + " ".join(f"{v:.2f}" for v in values)


@dataclass
class TakeoverRow:
    settings: str
    fault: str
    trials: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.trials)

    @property
    def worst(self) -> float:
        return max(self.trials)

    @property
    def best(self) -> float:
        return min(self.trials)


def measure_takeover(lab: LabContext, trials: int, progress: Callable[[str], None]) -> list[TakeoverRow]:
    ours = lab.topo.cluster.vrrp.advert_interval
    variants = [(f"generated (adverts {ours:g} s)", ours), ("keepalived default (adverts 1 s)", 1.0)]
    rows = []
    try:
        for label, advert in variants:
            _apply_keepalived(lab, _keepalived_variant(lab, advert))
            for fault in FAULTS:
                values = [takeover_trial(lab, fault) for _ in range(trials)]
                rows.append(TakeoverRow(label, fault, values))
                progress(_trials_line(label, fault, values))
    finally:
        _apply_keepalived(lab, _keepalived_variant(lab, ours))
    return rows


def measure_pacemaker(lab: LabContext, trials: int, progress: Callable[[str], None]) -> list[TakeoverRow]:
    """The same faults on a lab whose directors run Pacemaker, with the rendered timers (nothing re-tuned)."""
    pm = lab.topo.cluster.pacemaker
    qdevice = f", qdevice {pm.qdevice_timeout_ms} ms" if pm.qnetd_host else ""
    label = f"pacemaker (token {pm.token_ms}+{pm.consensus} ms{qdevice}, haproxy monitor {pm.haproxy_monitor_ms} ms, load-threshold {pm.load_threshold_pct}%)"
    rows = []
    for fault in FAULTS:
        values = [takeover_trial(lab, fault) for _ in range(trials)]
        rows.append(TakeoverRow(label, fault, values))
        progress(_trials_line(label, fault, values))
    return rows


def pacemaker_part(lab: LabContext, trials: int, progress: Callable[[str], None], serving_trials: int = 0, takeover: bool = True) -> tuple[list[TakeoverRow], list["serving_faults.ServingRow"]]:
    """After the keepalived measurements, in the same run: the same stack with haStack: pacemaker, then the original lab back.

    Returns its takeover rows and (serving_trials > 0) its rows of the issue-17 faults."""
    from ..stackfile import load_stack_file
    from . import lifecycle
    from .state import LAB_ROOT

    original = Path(lab.state.stack_file)
    variant = pacemaker.stack_variant(original, LAB_ROOT / "stacks")
    quiet: Callable[[str], None] = lambda _m: None  # noqa: E731
    try:
        lifecycle.down(progress=quiet)
        progress(f"pacemaker: lab up with {variant}")
        lifecycle.up(load_stack_file(variant), str(variant), progress=quiet)
        pm_lab = LabContext.current()
        rows = measure_pacemaker(pm_lab, trials, progress) if takeover else []
        return rows, (serving_faults.measure(pm_lab, serving_trials, progress) if serving_trials else [])
    finally:
        lifecycle.down(progress=quiet)
        lifecycle.up(load_stack_file(original), str(original), progress=quiet)
        progress(f"original lab back up ({original.name})")


# --------------------------------------------------------------------------- requests lost under failures


@dataclass
class LoadRow:
    event: str
    service: str
    requests: int
    failed: int
    longest_gap_s: float


def _events(lab: LabContext) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    host = lab.topo.cluster.backends[0]
    container = host.containers[0].name
    master = lab.directors[0].name
    return {
        f"container {container} killed": (lambda: lab.kill(host.name, apache.role(container)), lambda: lab.restart(host.name, apache.role(container))),
        f"Docker host {lab.topo.cluster.backends[-1].name} cut": (lambda: lab.cut(lab.topo.cluster.backends[-1].name), lambda: lab.restore(lab.topo.cluster.backends[-1].name)),
        f"director {master} cut (failover)": (lambda: lab.cut(master), lambda: lab.restore(master)),
    }


def measure_load(lab: LabContext, requests: int, progress: Callable[[str], None]) -> list[LoadRow]:
    rows = []
    services = lab.services_by("tcp", "nfs") + lab.services_by("http", "nfs")
    for event, (fault, repair) in _events(lab).items():
        for svc in services:
            proc = lab.start_load(lab.url(svc.port, "/index.php"), requests, concurrency=10, duration=120)
            time.sleep(0.5)
            fault()
            try:
                result = lab.finish_load(proc, timeout=180)
            finally:
                repair()
            time.sleep(0.5)
            _settle(lab)
            wait_until("all servers UP", lambda: set(lab.stats()[0].values()) == {"UP"}, 30, 0.3)
            rows.append(LoadRow(event, f"{svc.name} ({svc.mode.value})", result["requests"], result["failed"], result["longest_gap_s"]))
            progress(f"{event}, {svc.name}: {result['failed']} of {result['requests']} failed, longest gap {result['longest_gap_s']:.2f} s")
    return rows


# --------------------------------------------------------------------------- ApacheBench matrix


PAGES = {"static": "/index.php", "dynamic": "/pi.php?n=100000", "image": "/imagen.html"}
CONCURRENCY = (1, 3, 5, 10, 20)
AB_RE = {"rps": re.compile(r"Requests per second:\s+([\d.]+)"), "tpr": re.compile(r"Time per request:\s+([\d.]+) \[ms\] \(mean\)"), "failed": re.compile(r"Failed requests:\s+(\d+)"), "non2xx": re.compile(r"Non-2xx responses:\s+(\d+)")}


@dataclass
class AbRow:
    target: str
    page: str
    concurrency: int
    requests: int
    rps: float
    tpr_ms: float
    failed: int


def ab(ns: str, url: str, n: int, c: int) -> tuple[float, float, int]:
    proc = subprocess.run(["ip", "netns", "exec", ns, "ab", "-q", "-n", str(n), "-c", str(c), "-s", "10", url], capture_output=True, text=True, timeout=300)
    out = proc.stdout
    if proc.returncode != 0 or not AB_RE["rps"].search(out):
        raise RuntimeError(f"ab {url} failed: {proc.stderr.strip()[-300:]}")
    failed = int(AB_RE["failed"].search(out).group(1)) + int((AB_RE["non2xx"].search(out) or [0, 0])[1] if AB_RE["non2xx"].search(out) else 0)
    return float(AB_RE["rps"].search(out).group(1)), float(AB_RE["tpr"].search(out).group(1)), failed


def measure_ab(lab: LabContext, n_static: int, n_dynamic: int, progress: Callable[[str], None]) -> list[AbRow]:
    """From the master director, as the seed did: through the VIP (TCP and HTTP) and straight to one container."""
    master = netns_name(lab.directors[0].name)
    tcp = lab.services_by("tcp", "nfs")[0]
    http = lab.services_by("http", "nfs")[0]
    host = lab.topo.cluster.backends[0]
    first = next(c for c in host.containers if c.docroot == "nfs")
    targets = {
        f"VIP TCP :{tcp.port}": f"http://{lab.vip}:{tcp.port}",
        f"VIP HTTP :{http.port}": f"http://{lab.vip}:{http.port}",
        f"one container ({first.name})": f"http://{host.address}:{first.port}",
    }
    rows = []
    for page, path in PAGES.items():
        n = n_dynamic if page == "dynamic" else n_static
        for target, base in targets.items():
            for c in CONCURRENCY:
                rps, tpr, failed = ab(master, base + path, n, c)
                rows.append(AbRow(target, page, c, n, rps, tpr, failed))
            progress(f"ab {page} via {target}: " + ", ".join(f"c={r.concurrency} {r.rps:.0f}/s" for r in rows[-len(CONCURRENCY):]))
    return rows


def seed_rows() -> dict[str, list[tuple[int, float, float]]]:
    """The seed's n=1000 rows (one laptop, VirtualBox): page -> [(c, rps, ms)]."""
    out: dict[str, list[tuple[int, float, float]]] = {}
    if not SEED_CSV.exists():
        return out
    with open(SEED_CSV) as f:
        rows = list(csv.DictReader(f))
    for page in PAGES:
        picked = [r for r in rows if r["page"] == page]
        if not picked:
            continue
        smallest_n = min(int(r["requests_n"]) for r in picked)
        out[page] = sorted((int(r["concurrency_c"]), float(r["requests_per_second"]), float(r["time_per_request_ms"])) for r in picked if int(r["requests_n"]) == smallest_n)
    return out


# --------------------------------------------------------------------------- Gluster stall


@dataclass
class StallRow:
    ping_timeout_s: str
    stall_s: float


def measure_gluster_stall(lab: LabContext, progress: Callable[[str], None]) -> list[StallRow]:
    from .gluster_checks import pending_heals, ping_timeout, replica_volume, stall_after_cut

    vol = replica_volume(lab)
    svc = next(s for s in lab.topo.cluster.haproxy.services if s.storage == vol.name)
    servers = [s.name for s in lab.topo.cluster.gluster.servers]
    ours = ping_timeout(vol)
    rows = []
    for value in ("42", ours):
        sandbox(servers[0]).run(["gluster", "--mode=script", "volume", "set", vol.name, "network.ping-timeout", value], timeout=60)
        time.sleep(2)
        lab.cut(servers[0])
        try:
            stall = stall_after_cut(lab, svc, float(value), timeout=120)
        finally:
            lab.restore(servers[0])
        wait_until("gv0 healed", lambda: pending_heals(lab, servers[1], vol.name) == 0, 180, 1.0)
        label = f"{value} (Gluster default)" if value == "42" else f"{value} (generated)"
        rows.append(StallRow(label, stall))
        progress(f"gluster ping-timeout {label}: a web request stalled {stall:.1f} s")
    return rows


# --------------------------------------------------------------------------- output


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _takeover_outputs(rows: list[TakeoverRow], out: Path) -> list[str]:
    """takeover.csv and takeover.png; the summary lines."""
    from . import plots

    write_csv(out / "takeover.csv", ["settings", "fault", "trial", "seconds"], [[r.settings, r.fault, i + 1, f"{v:.4f}"] for r in rows for i, v in enumerate(r.trials)])
    plots.takeover(rows, out / "takeover.png")
    width = max(34, *(len(r.settings) for r in rows))
    return [f"VIP takeover (s, {len(rows[0].trials)} trials each)".ljust(width + 18) + "   min median    max"] + [f"  {r.settings:<{width}} {r.fault:<15} {r.best:6.3f} {r.median:6.3f} {r.worst:6.3f}" for r in rows]


def _serving_outputs(rows: list[serving_faults.ServingRow], out: Path) -> list[str]:
    """serving.csv (issue #17: a director that cannot serve); the summary lines, keepalived and Pacemaker side by side."""
    write_csv(
        out / "serving.csv",
        ["stack", "fault", "trial", "service_back_s", "takeover_s", "longest_gap_s"],
        [[r.stack, r.fault, i + 1, f"{b:.3f}", f"{r.took_s[i]:.3f}" if r.took_s else "", f"{r.gap_s[i]:.3f}"] for r in rows for i, b in enumerate(r.back_s)],
    )
    lines = [f"Director that cannot serve ({len(rows[0].back_s)} trials each): service back after (s, median / max), longest gap between answers (s, max)"]
    for fault in dict.fromkeys(r.fault for r in rows):
        cells = "   ".join(f"{r.stack} {r.median:5.2f} / {r.worst:5.2f}, gap {max(r.gap_s):5.2f}" for r in rows if r.fault == fault)
        lines.append(f"  {fault:<24} {cells}")
    return lines


def main(args: argparse.Namespace) -> int:
    from . import plots

    lab = LabContext.current()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    trials = 3 if args.quick else max(5, args.trials)
    requests = 2000 if args.quick else max(5000, args.requests)
    log = print
    summary: list[str] = []
    load_before = os.getloadavg()[0]
    takeover: list[TakeoverRow] = []
    if "takeover" not in args.skip:
        takeover += measure_pacemaker(lab, trials, log) if lab.pacemaker else measure_takeover(lab, trials, log)
    if "load" not in args.skip:
        lrows = measure_load(lab, requests, log)
        write_csv(out / "failures-under-load.csv", ["event", "service", "requests", "failed", "longest_gap_s"], [[r.event, r.service, r.requests, r.failed, r.longest_gap_s] for r in lrows])
        summary.append(f"requests lost under load ({requests} requests, concurrency 10)")
        summary += [f"  {r.event:<34} {r.service:<22} failed {r.failed:>4}/{r.requests}  longest gap {r.longest_gap_s:5.2f} s" for r in lrows]
    if "ab" not in args.skip:
        arows = measure_ab(lab, 300 if args.quick else 1000, 200 if args.quick else 500, log)
        write_csv(out / "ab.csv", ["target", "page", "concurrency", "requests", "requests_per_second", "time_per_request_ms", "failed"], [[r.target, r.page, r.concurrency, r.requests, r.rps, r.tpr_ms, r.failed] for r in arows])
        plots.ab(arows, seed_rows(), out / "ab.png")
        summary.append("ApacheBench (requests/s at c=1 / c=10; balancer overhead = VIP TCP vs one container at c=10)")
        for page in PAGES:
            for target in dict.fromkeys(r.target for r in arows):
                sel = {r.concurrency: r for r in arows if r.page == page and r.target == target}
                summary.append(f"  {page:<8} {target:<26} {sel[1].rps:8.1f} / {sel[10].rps:8.1f}")
            direct = next(r.rps for r in arows if r.page == page and r.concurrency == 10 and r.target.startswith("one container"))
            via = next(r.rps for r in arows if r.page == page and r.concurrency == 10 and r.target.startswith("VIP TCP"))
            summary.append(f"  {page:<8} ratio VIP/one container at c=10: {via / direct:.2f}")
    if "https" not in args.skip and any(s.tls_port for s in lab.topo.cluster.haproxy.services):
        hrows = https_bench.measure(lab, 300 if args.quick else 2000, log)
        write_csv(out / "https.csv", ["tool", "protocol", "concurrency", "requests", "requests_per_second", "failed"], [[r.tool, r.protocol, r.concurrency, r.requests, f"{r.rps:.1f}", r.failed] for r in hrows])
        plots.https(hrows, out / "https.png")
        summary += https_bench.summary(hrows)
    if "gluster" not in args.skip and lab.topo.cluster.gluster.servers:
        srows = measure_gluster_stall(lab, log)
        write_csv(out / "gluster-stall.csv", ["ping_timeout_s", "stall_s"], [[r.ping_timeout_s, f"{r.stall_s:.2f}"] for r in srows])
        summary.append("Gluster server cut: web request stall")
        summary += [f"  ping-timeout {r.ping_timeout_s:<22} {r.stall_s:6.1f} s" for r in srows]
    if "gluster-tls" not in args.skip and lab.topo.cluster.gluster.servers:
        trows = gluster_tls_bench.measure(lab, log)
        lab = LabContext.current()  # the original lab, brought back up
        write_csv(out / "gluster-tls.csv", ["tls", "write_mb_s", "page_requests_per_second"], [[r.tls, f"{r.write_mb_s:.1f}", f"{r.page_rps:.1f}"] for r in trows])
        summary += gluster_tls_bench.summary(trows)
    serving: list[serving_faults.ServingRow] = []
    serving_trials = 0 if "serving" in args.skip else (1 if args.quick else 3)
    if serving_trials:
        serving += serving_faults.measure(lab, serving_trials, log)
    if "pacemaker" not in args.skip and not lab.pacemaker:  # last: it takes the lab down and brings it back
        pm_takeover, pm_serving = pacemaker_part(lab, trials, log, serving_trials, takeover="takeover" not in args.skip)
        takeover += pm_takeover
        serving += pm_serving
    if serving:
        summary = _serving_outputs(serving, out) + summary
    if takeover:
        summary = _takeover_outputs(takeover, out) + summary
    # Timings on a shared machine depend on what else runs: say how busy it was.
    summary.append(f"load average (1 min) at the start / end: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\n" + "\n".join(summary))
    print(f"\nCSV and PNG files in {out}/ (this machine: 2 cores, everything in namespaces; the seed: a laptop with 10 VirtualBox VMs)")
    return 0
