"""`lab bench`'s HTTP vs HTTPS plot (https.png), drawn from synthetic rows shaped as
`https_bench.measure` returns them: no lab is started."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from webcluster.lab import plots
from webcluster.lab.https_bench import CONCURRENCY, HttpsRow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# As measure() makes them: per concurrency, h2load over the three protocols, then ab over two.
RPS = {("h2load", "HTTP/1.1"): 900.0, ("h2load", "HTTPS HTTP/1.1"): 700.0, ("h2load", "HTTPS h2"): 650.0,
       ("ab", "HTTP/1.1"): 400.0, ("ab", "HTTPS HTTP/1.1"): 120.0}


def rows() -> list[HttpsRow]:
    return [HttpsRow(tool, protocol, c, 300, rps * c ** 0.5, 0) for c in CONCURRENCY for (tool, protocol), rps in RPS.items()]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """plots.https run on the rows: the PNG's path and the figure (kept from plt.close to inspect)."""
    figures = []
    close = plots.plt.close
    monkeypatch.setattr(plots.plt, "close", figures.append)
    path = tmp_path / "https.png"
    plots.https(rows(), path)
    [fig] = figures
    yield path, fig
    close(fig)


def test_the_plot_is_a_png(drawn) -> None:
    path, fig = drawn
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    # Two panels of 5x4 inches at 100 dpi (tight_layout does not change the canvas).
    assert (width, height) == (1000, 400)
    assert len(data) > 10_000 and data[-8:-4] == b"IEND"


def test_each_tool_has_a_panel_with_every_protocol_it_measured(drawn) -> None:
    """One panel per tool, in the order measured; in each, one line per protocol (HTTP and HTTPS),
    labelled by protocol, through the requests/s of the rows at each concurrency."""
    _, fig = drawn
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["h2load: connections kept open", "ab: a new connection per request"]
    for ax, tool in zip(axes, ("h2load", "ab")):
        protocols = [p for (t, p) in RPS if t == tool]
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == protocols
        assert [t.get_text() for t in ax.get_legend().get_texts()] == protocols
        for line, protocol in zip(lines, protocols):
            assert list(line.get_xdata()) == list(CONCURRENCY)
            assert list(line.get_ydata()) == pytest.approx([RPS[tool, protocol] * c ** 0.5 for c in CONCURRENCY])
        assert ax.get_xlabel() == "concurrency" and ax.get_ylabel() == "requests per second"
    assert fig._suptitle.get_text() == "HTTP vs HTTPS through the VIP, from the master director"


def test_rows_out_of_order_are_drawn_by_concurrency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A line goes through its points by concurrency, whatever the order of the rows."""
    figures = []
    close = plots.plt.close
    monkeypatch.setattr(plots.plt, "close", figures.append)
    plots.https(list(reversed(rows())), tmp_path / "https.png")
    [fig] = figures
    try:
        for ax in fig.axes:
            for line in ax.get_lines():
                assert list(line.get_xdata()) == sorted(CONCURRENCY)
        assert {line.get_label() for ax in fig.axes for line in ax.get_lines()} == {"HTTP/1.1", "HTTPS HTTP/1.1", "HTTPS h2"}
    finally:
        close(fig)
