"""The loss budget the lab scenarios and the e2e checks assert (issue #13: no replay after a response timeout)."""

from __future__ import annotations

import pytest

from webcluster.loss import loss_budget


@pytest.mark.parametrize("mode, silent, expected", [
    ("http", False, 0),  # a stopped or killed container: its GETs are replayed elsewhere
    ("tcp", False, 10),  # a layer-4 proxy cannot replay what it forwarded
    ("http", True, 10),  # a host gone silent: its requests end in a response timeout, never replayed
    ("tcp", True, 10),
])
def test_budget(mode: str, silent: bool, expected: int) -> None:
    assert loss_budget(mode, 10, silent=silent) == expected
