"""HAProxy's stats page as CSV (`<stats uri>;csv`, or `show stat` on the runtime API): one dict
per proxy or server line, keyed by the header. The lab's probes and the e2e's checks and server
watch read the same export."""

from __future__ import annotations

import csv
import io


def csv_rows(body: str) -> list[dict[str, str]]:
    """The CSV export, one dict per line (the header's leading `# ` removed)."""
    return list(csv.DictReader(io.StringIO(body.lstrip("# "))))
