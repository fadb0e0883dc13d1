"""Resolving waiting leases: with an error, and the debug record of how long each waited."""

from __future__ import annotations

import asyncio

from .. import _log
from .._core.scheduler import Waiter


def fail(waiter: Waiter, error: BaseException) -> None:
    """Resolve a waiting lease's future with ``error`` (if it is still waiting)."""
    fut: asyncio.Future[None] = waiter.fut  # type: ignore[attr-defined]
    if not fut.done():
        fut.set_exception(error)


def log_waited(now: float, granted: list[Waiter]) -> None:
    for lease in granted:
        if lease.slot is not None:
            _log.debug(
                "aurora.lease.waited",
                token=lease.slot.name,
                cost=lease.cost,
                waited=round(now - lease.enqueued_at, 6),
            )
