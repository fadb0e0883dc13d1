"""``LowWater``: log when the share of active tokens falls below a mark, and when it recovers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import _log
from .._core.scheduler import INF


class LowWater:
    """Logs ``aurora.pool.low`` / ``aurora.pool.recovered`` when the share of active
    tokens crosses ``mark``. ``count(now)`` gives ``(tokens, active, earliest cooldown
    end)`` (the scheduler counts the tokens it marked as maybe not active, not every
    token); a check runs at most every half second, and a check that is skipped, and
    the end of the earliest cooldown while the pool is low, are each caught up by one
    timer."""

    __slots__ = ("_count", "_low", "_next_check", "_timer", "mark")

    def __init__(self, mark: float, count: Callable[[float], tuple[int, int, float]]) -> None:
        self.mark = mark
        self._count = count
        self._low = False
        self._next_check = -INF
        self._timer: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        """The token set changed: the next check runs whenever it is asked for."""
        self._next_check = -INF

    def check(self, now: float, loop: asyncio.AbstractEventLoop | None) -> None:
        if now < self._next_check:
            if loop is not None and self._timer is None:
                self._timer = loop.call_at(self._next_check, self._recheck, loop)
            return
        self._next_check = now + 0.5
        total, active, cooling_ends = self._count(now)
        if not total:
            return
        low = active / total < self.mark
        if low and not self._low:
            _log.warning("aurora.pool.low", active=active, tokens=total, low_water=self.mark)
        elif self._low and not low:
            _log.info("aurora.pool.recovered", active=active, tokens=total)
        self._low = low
        if low and cooling_ends < INF and loop is not None and self._timer is None:
            when = max(cooling_ends, self._next_check)
            self._timer = loop.call_at(when, self._recheck, loop)

    def _recheck(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self.check(loop.time(), loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
