"""Step resources by reference, so a step can wait for one that a later tier declares.

The dependency rules live in the rendered plan (``ClusterPlan.dependencies``); tiers are
built one after another, yet the smoke check on a director waits for the backends'
containers and the containers wait for the web content. Pulumi accepts awaitables in
``depends_on``, so each reference is a future that the owning tier resolves.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Iterable

import pulumi

from webcluster.render.plan import StepRef


class StepRegistry:
    """StepRef -> the pulumi resource that runs it (a future until declared)."""

    def __init__(self) -> None:
        self._futures: dict[StepRef, asyncio.Future] = {}

    def _future(self, ref: StepRef) -> asyncio.Future:
        if ref not in self._futures:
            self._futures[ref] = asyncio.get_event_loop().create_future()
        return self._futures[ref]

    def add(self, ref: StepRef, resource: pulumi.Resource) -> None:
        future = self._future(ref)
        if future.done():
            raise ValueError(f"step {ref} declared twice")
        future.set_result(resource)

    def resources(self, refs: Iterable[StepRef]) -> list[Awaitable[pulumi.Resource]]:
        return [self._future(r) for r in refs]

    def seal(self) -> None:
        """Fail loudly (instead of waiting forever) if a step was awaited but never declared."""
        missing = sorted(str(r) for r, f in self._futures.items() if not f.done())
        if missing:
            error = ValueError(f"steps waited for but never declared: {', '.join(missing)}")
            for future in self._futures.values():
                if not future.done():
                    future.set_exception(error)
            raise error
