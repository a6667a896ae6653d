"""Issue #15: a change's failed requests explained by the directors' own HAProxy log lines."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from webcluster.e2e import haproxy_journal

# As HAProxy 2.6 wrote them (the lab; a director's journal holds the same message, `-o cat`).
TIMEOUT = '192.168.1.254:46734 [02/Dec/2026:05:57:33.534] haproxy-http_g http-servers-g/cluster34p 0/0/0/-1/3001 504 194 - - sH-- 9/9/8/2/0 0/0 "GET /index.php HTTP/1.1"'
OK = '192.168.1.254:44260 [02/Dec/2026:05:57:27.812] haproxy-http http-servers/cluster21p 0/0/0/0/0 200 609 - - --NI 1/1/0/0/0 0/0 "GET /index.php HTTP/1.1"'
CHECK = "Health check for server http-servers/cluster41p failed, reason: Layer4 timeout, check duration: 1001ms, status: 2/3 UP."


def test_the_window_is_counted_back_from_the_guest_s_own_clock(tmp_path: Path) -> None:
    """The script asks journalctl for the change's duration plus the slack, back from `date` on
    the guest (a restored guest's clock lags the host's), rounded up."""
    for name, body in (("date", "echo 100000"), ("journalctl", 'echo "$@"')):
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    out = subprocess.run(["bash", "-c", haproxy_journal.journal_script(59.2)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}).stdout.split()
    assert out == ["-t", "haproxy", "-o", "cat", "--no-pager", f"--since=@{100000 - 60 - haproxy_journal.SLACK_S}"]


def test_failed_requests_per_director_and_an_unread_journal_named() -> None:
    asked: list[tuple[str, str]] = []

    def read(director: str, script: str) -> str:
        asked.append((director, script))
        if director == "standby2":
            raise RuntimeError("exit 124")
        return "\n".join([OK, CHECK, TIMEOUT] if director == "standby1" else [OK])

    found, unread = haproxy_journal.failed_requests(read, ["cluster1", "standby1", "standby2"], 30)
    assert [(r.director, r.server, r.status, r.termination) for r in found] == [("standby1", "cluster34p", 504, "sH--")]
    assert unread == ["standby2: journal not read: exit 124"]
    assert sorted(d for d, _ in asked) == ["cluster1", "standby1", "standby2"] and len({s for _, s in asked}) == 1
    lines = haproxy_journal.report_lines(found, unread)
    assert lines[0] == "  HAProxy logged 1 failed request(s):" and "standby1: haproxy-http_g -> http-servers-g/cluster34p 504 sH--" in lines[1]
    assert lines[-1] == "  standby2: journal not read: exit 124"
    assert haproxy_journal.report_lines([], [])[0].startswith("  HAProxy logged no failed request")
