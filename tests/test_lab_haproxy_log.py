"""The lab's HAProxy log receiver: it listens where the rendered config sends, and reads the
failures out of HAProxy's own httplog lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from webcluster import requestlog
from webcluster.lab import haproxy_log, processes
from webcluster.render.director import HAPROXY_CFG
from webcluster.render.plan import ClusterPlan

# Lines as HAProxy 2.6 on this machine wrote them in the lab (a 200, a response timeout, a health check, a start).
OK = 'cluster1 <134>Dec  2 05:57:27 haproxy[11414]: 192.168.1.254:44260 [02/Dec/2026:05:57:27.812] haproxy-http http-servers/cluster21p 0/0/0/0/0 200 609 - - --NI 1/1/0/0/0 0/0 "GET /index.php HTTP/1.1"'
TIMEOUT = 'standby1 <134>Dec  2 05:57:36 haproxy[11415]: 192.168.1.254:46734 [02/Dec/2026:05:57:33.534] haproxy-http_g http-servers-g/cluster34p 0/0/0/-1/3001 504 194 - - sH-- 9/9/8/2/0 0/0 "GET /index.php HTTP/1.1"'
CHECK = "cluster1 <133>Dec  2 05:57:35 haproxy[11414]: Health check for server http-servers/cluster41p failed, reason: Layer4 timeout, check duration: 1001ms, status: 2/3 UP."
START = "cluster1 <133>Dec  2 05:57:20 haproxy[11414]: Proxy haproxy-http started."
# A TCP-mode session the server reset before answering (curl: "Empty reply from server"), as HAProxy 2.6 here logged it with `option tcplog`.
TCP_CUT = "127.0.0.1:44660 [02/Dec/2026:09:19:33.441] haproxy-tcp tcp-servers/cluster22p 1/0/2 0 SD 1/1/0/0/0 0/0"


def directives(plan: ClusterPlan, director: str, keyword: str) -> list[str]:
    lines = str(plan.nodes[director].files[HAPROXY_CFG].content).splitlines()
    return [line.split(None, 1)[1].split()[0] for line in lines if line.split() and line.split()[0] == keyword]


def test_the_receiver_binds_where_the_rendered_haproxy_logs(dev_plan: ClusterPlan) -> None:
    """HAProxy resolves its `log` socket inside its `chroot`: the receiver must bind exactly there."""
    for director in ("cluster1", "standby1", "standby2"):
        assert directives(dev_plan, director, "chroot") == [haproxy_log.CHROOT]
        assert set(directives(dev_plan, director, "log")) - {"global"} == {haproxy_log.LOG_TARGET}
        assert str(haproxy_log.socket_path(director)).endswith(f"{director}/private/var_lib_haproxy/dev/log")


def test_a_request_line_is_read_field_by_field() -> None:
    r = requestlog.parse(TIMEOUT)
    assert r is not None
    assert (r.director, r.frontend, r.backend, r.server) == ("standby1", "haproxy-http_g", "http-servers-g", "cluster34p")
    assert (r.timers, r.status, r.termination, r.retries) == ("0/0/0/-1/3001", 504, "sH--", "0")
    assert "cluster34p 504 sH--" in str(r) and r.failed()
    assert not requestlog.parse(OK).failed()
    assert requestlog.parse(CHECK) is None and requestlog.parse(START) is None


def test_a_tcp_mode_line_is_read_and_failed_only_when_not_the_client_s_doing() -> None:
    """tcplog lines (the TCP-mode services) have three timers and no status: a session the server
    ended (SD) or HAProxy killed as its server went DOWN (D) failed; a normal close did not."""
    r = requestlog.parse(TCP_CUT, director="standby2")
    assert r is not None and (r.director, r.backend, r.server, r.timers, r.status, r.termination, r.retries) == (
        "standby2", "tcp-servers", "cluster22p", "1/0/2", None, "SD", "0")
    assert r.failed() and "cluster22p tcp SD" in str(r)
    assert not requestlog.parse(TCP_CUT.replace(" SD ", " -- ")).failed()  # the same session closed normally
    assert not requestlog.parse(TCP_CUT.replace(" SD ", " CD ")).failed()
    assert [x.server for x in requestlog.failures([TCP_CUT, OK, TIMEOUT, CHECK], "d")] == ["cluster22p", "cluster34p"]


def test_failures_are_the_5xx_after_the_offset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "host.haproxy-log.log"
    monkeypatch.setattr(processes, "log_path", lambda node, role: log)
    assert haproxy_log.log_offset() == 0 and haproxy_log.request_failures() == []
    log.write_text(f"{TIMEOUT}\n{OK}\n")
    offset = haproxy_log.log_offset()
    assert [r.server for r in haproxy_log.request_failures()] == ["cluster34p"]
    with log.open("a") as f:
        f.write(f"{CHECK}\n{OK}\n{TIMEOUT.replace('cluster34p', 'cluster24p')}\n")
    assert [r.server for r in haproxy_log.request_failures(offset)] == ["cluster24p"]
