"""What the directors' HAProxy logged of the requests a change's load saw fail (issue #15).

The client sees `504` or `Empty reply from server`; the director's own line for that request
names the server, the timers (where the time went) and the termination state (`sH--`: the
server's response timed out; `SD`: the server cut the session). Read from each director's
journal after the load, only when something failed (an SSH session on a starved guest costs
seconds to minutes).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..requestlog import RequestLog, failures

SLACK_S = 60  # the window reaches this far before the change: guest clocks drift against the host's
REPORT_LINES = 20

Read = Callable[[str, str], str]  # (director, script) -> the script's output as root (checks.on)


def journal_script(elapsed_s: float) -> str:
    """The director's HAProxy journal over the last `elapsed_s` (+ slack), counted back from the
    guest's own clock: a restored guest's clock lags the host's, so no host time is passed in."""
    return f"journalctl -t haproxy -o cat --no-pager --since=@$(( $(date +%s) - {math.ceil(elapsed_s) + SLACK_S} ))"


def failed_requests(read: Read, directors: list[str], elapsed_s: float) -> tuple[list[RequestLog], list[str]]:
    """Every director's failed requests in the window, and the directors whose journal could not be read (why)."""
    script = journal_script(elapsed_s)

    def one(director: str) -> tuple[list[RequestLog], str]:
        try:
            return failures(read(director, script).splitlines(), director), ""
        except Exception as exc:  # noqa: BLE001 - an unread journal is reported, it does not end the run
            return [], f"{director}: journal not read: {exc}"

    with ThreadPoolExecutor(max(len(directors), 1)) as pool:
        results = list(pool.map(one, directors))
    return [r for found, _ in results for r in found], [why for _, why in results if why]


def report_lines(found: list[RequestLog], unread: list[str]) -> list[str]:
    """The row's account of the failures as HAProxy logged them."""
    lines = [f"  HAProxy logged {len(found)} failed request(s):" if found else "  HAProxy logged no failed request in the change's window"]
    lines += [f"    {r}" for r in found[:REPORT_LINES]]
    if len(found) > REPORT_LINES:
        lines.append(f"    ... {len(found) - REPORT_LINES} more")
    return lines + [f"  {why}" for why in unread]
