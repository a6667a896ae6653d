"""What scenarios and benchmarks need from a running lab: topology, faults, waits, load."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional

from ..errors import UsageError
from ..model import Director
from ..stackfile import load_stack_file
from ..topology import Topology
from . import faults, haproxy_log, network, pacemaker, probe
from .state import CLIENT, LabState, lab_secrets, netns_name

LOAD_SCRIPT = Path(__file__).with_name("load.py")


@dataclass
class LabContext:
    state: LabState

    @classmethod
    def current(cls) -> "LabContext":
        state = LabState.load()
        if state is None or not state.complete:
            raise UsageError("no complete lab is up: run `python -m webcluster lab up` first")
        return cls(state)

    @cached_property
    def topo(self) -> Topology:
        return Topology(load_stack_file(Path(self.state.stack_file)).config)

    @property
    def vip(self) -> str:
        return str(self.topo.cluster.vips.external)

    @property
    def internal_vip(self) -> str:
        return str(self.topo.cluster.vips.internal)

    @property
    def directors(self) -> list[Director]:
        return self.topo.directors

    @property
    def auth(self) -> tuple[str, str]:
        return (self.topo.cluster.haproxy.stats.user, lab_secrets()["statsPassword"])

    def url(self, port: int, path: str = "/") -> str:
        return f"http://{self.vip}:{port}{path}"

    def service(self, name: str):
        return next(s for s in self.topo.cluster.haproxy.services if s.name == name)

    def services_by(self, mode: str, storage: str):
        return [s for s in self.topo.cluster.haproxy.services if s.mode.value == mode and s.storage == storage]

    # ------------------------------------------------------------------ observations
    def holders(self, address: str) -> list[str]:
        return [d.name for d in self.directors if network.holds(d.name, address)]

    def sole_holder(self, address: str) -> Optional[str]:
        h = self.holders(address)
        return h[0] if len(h) == 1 else None

    def vips_on(self, director: str) -> bool:
        return all(network.holds(director, v) for v in (self.vip, self.internal_vip))

    def stats(self) -> tuple[dict[tuple[str, str], str], str]:
        st = self.topo.cluster.haproxy.stats
        rows, desc = probe.stats_csv(self.vip, st.port, st.uri, self.auth)
        return {(r.backend, r.server): r.status for r in rows}, desc

    def server_aborts(self, backend: str) -> dict[str, int]:
        st = self.topo.cluster.haproxy.stats
        return probe.server_aborts(self.vip, st.port, st.uri, self.auth, backend)

    def server_states(self, server: str) -> set[str]:
        states, _ = self.stats()
        return {v for (_, s), v in states.items() if s == server}

    def description(self, director: str) -> str:
        d = next(x for x in self.directors if x.name == director)
        return self.topo.director_description(d)

    # ------------------------------------------------------------------ faults (webcluster.lab.faults: the `lab` verbs)
    @property
    def vips(self) -> list[str]:
        c = self.topo.cluster
        return [str(v) for v in (c.vips.external, c.vips.internal, c.vips.heartbeat)]

    def cut(self, node: str) -> None:
        faults.cut(self, node)

    def restore(self, node: str) -> None:
        faults.plug(self, node)
        self.revive(node)

    def revive(self, node: str) -> None:
        """Power a director back on that the HA stack's fencing powered off (Pacemaker; keepalived never fences)."""
        if self.pacemaker and node in {d.name for d in self.directors}:
            faults.power_on(self, node)

    @property
    def pacemaker(self) -> bool:
        return pacemaker.is_pacemaker(self.topo)

    def managed(self, role: str) -> bool:
        """Whether the HA stack, not the lab, runs this daemon (Pacemaker's HAProxy clone)."""
        return self.pacemaker and role in pacemaker.MANAGED

    def kill(self, node: str, role: str, sig: int = signal.SIGKILL) -> None:
        faults.stop_process(self, node, role, sig)

    def restart(self, node: str, role: str) -> None:
        faults.start_process(self, node, role)

    def containers_of(self, backend: str) -> list[str]:
        b = next(x for x in self.topo.cluster.backends if x.name == backend)
        return [c.name for c in b.containers]

    # ------------------------------------------------------------------ load
    def start_load(self, url: str, requests: int, concurrency: int = 10, duration: float = 60, cacert: Optional[str] = None) -> subprocess.Popen:
        argv = ["ip", "netns", "exec", netns_name(CLIENT), sys.executable, str(LOAD_SCRIPT), url, "-n", str(requests), "-c", str(concurrency), "--duration", str(duration)]
        argv += ["--cacert", cacert] if cacert else []
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def finish_load(proc: subprocess.Popen, timeout: float = 120) -> dict:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {err.strip()}")
        return json.loads(out)

    def load(self, url: str, requests: int, concurrency: int = 10) -> dict:
        """The load generator's result; with failures, also what the directors logged of them
        (`haproxy_failures`: server, timers, termination state), for the test's message."""
        since = haproxy_log.log_offset()
        result = self.finish_load(self.start_load(url, requests, concurrency))
        if result["failed"]:
            result["haproxy_failures"] = [str(r) for r in haproxy_log.request_failures(since)]
        return result
