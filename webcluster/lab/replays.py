"""Issue #13 in the lab: HAProxy replays a request on another server only when that is safe.

A request to record.php (each execution logs one line with the request's id, then the page
waits) is sent through the VIP; as soon as a container logs it, that container is killed
(SIGKILL, `docker kill`: its connection closes with no answer). A GET is replayed elsewhere
and succeeds; a POST is not replayed, so it ran exactly once (its client gets an error, the
honest answer: HAProxy cannot know whether the POST took effect). Counted in every
container's log, so a replay on any server shows.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from typing import Optional

from ..waiting import wait_until
from . import apache, faults, probe, processes
from .context import LabContext

PAGE_WAIT_MS = 1500  # record.php's wait: the kill lands while the request runs (well inside `timeout server`)
FIND_TIMEOUT_S = 5.0  # until a container logged the request
CLIENT_TIMEOUT_S = 15.0
SETTLE_S = 0.5  # after the answer, for a replay's log line to be written


def executions(lab: LabContext, request_id: str) -> dict[str, int]:
    """Container -> how many times it ran the request, from the containers' logs."""
    marker = f"hawc-execution id={request_id} "
    counts = {}
    for b, c in lab.topo.containers():
        log = processes.log_path(b.name, apache.role(c.name))
        text = log.read_text(errors="replace") if log.exists() else ""
        if text.count(marker):
            counts[c.name] = text.count(marker)
    return counts


def _kill_mid_request(lab: LabContext, method: str) -> tuple[probe.Response, str, dict[str, int]]:
    """Send one request, kill the container running it, restart it: (the client's answer, the victim, executions)."""
    svc = lab.services_by("http", "nfs")[0]
    request_id = uuid.uuid4().hex
    wait_ms = min(PAGE_WAIT_MS, lab.topo.cluster.haproxy.tuning.timeout_server_ms // 2)
    url = lab.url(svc.port, f"/record.php?id={request_id}&ms={wait_ms}")
    answer: list[probe.Response] = []
    data: Optional[str] = f"order={request_id}" if method == "POST" else None
    client = threading.Thread(target=lambda: answer.append(probe.get(url, timeout=CLIENT_TIMEOUT_S, data=data)), daemon=True)
    client.start()
    victim = ""
    try:
        wait_until(f"a container runs {method} {request_id}", lambda: bool(executions(lab, request_id)), FIND_TIMEOUT_S, 0.02)
        victim = next(iter(executions(lab, request_id)))
        host = faults.containers(lab)[victim]
        faults.stop_process(lab, host, apache.role(victim), signal.SIGKILL)
        client.join(CLIENT_TIMEOUT_S + 5)
        assert answer, f"{method}: the client got no answer within {CLIENT_TIMEOUT_S} s"
        time.sleep(SETTLE_S)
        return answer[0], victim, executions(lab, request_id)
    finally:
        if victim:
            faults.start(lab, victim)
            wait_until(f"{victim} UP again", lambda: lab.server_states(victim) == {"UP"}, 15, 0.2)


def no_replayed_post(lab: LabContext) -> list[str]:
    """A container killed mid-request: the POST ran at most once, the GET was replayed and succeeded."""
    notes = []
    resp, victim, ran = _kill_mid_request(lab, "POST")
    assert sum(ran.values()) <= 1, f"POST killed on {victim} ran {sum(ran.values())} times: {ran} (answer {resp.status})"
    notes.append(f"POST: {victim} killed mid-request, ran once ({ran}), the client got {resp.status or resp.error}")
    resp, victim, ran = _kill_mid_request(lab, "GET")
    assert resp.ok, f"GET killed on {victim} was lost: {resp.status} {resp.error} (ran {ran})"
    assert resp.container != victim and resp.container in ran, f"GET answered by {resp.container}, ran {ran}"
    notes.append(f"GET: {victim} killed mid-request, replayed on {resp.container} ({ran}), 200 OK")
    return notes


PROOFS = (no_replayed_post,)
