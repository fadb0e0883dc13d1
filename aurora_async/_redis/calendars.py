"""The calendar periods a call to Redis carries, for quotas on the calendar
(``Limit.daily``, ``Limit.monthly``).

A calendar window in Redis counts the units used in one period, named by the period's
start (a wall-clock Unix time, the same for every worker: it comes from the quota's
calendar, not from a clock). The scripts cannot do time-zone arithmetic, so each call
that may decide a calendar window carries, per calendar of this worker's tokens, five
consecutive resets around the worker's wall clock (the previous period to two ahead),
and the worker's wall clock itself: the script finds the period of a moment there, and
a window whose namespace period is older moves to it (periods only move forward).

Whose clock: the *worker's wall clock* (the pool's: ``core.wall_clock`` at binding, then
the loop's clock) says which period it is, as it does for an in-memory pool; the first
worker whose clock passes a reset starts the new period for every worker. The server's
clock still decides every delay: a reset is due ``reset - wall`` after the call, on the
server's clock. ``docs/redis.md`` (*Calendar quotas*) says why, and what skew costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .._core.calendar import Calendar

_US = 1_000_000
#: Resets sent per calendar: the previous period's start to the end of the one after next.
RESETS = 5


def calendar_key(calendar: Calendar) -> str:
    """The calendar's name in Redis: the same for every worker that declares it."""
    return f"{calendar.period}/{calendar.day}/{calendar.at}/{calendar.tz}"


def resets(calendar: Calendar, wall: float) -> list[int]:
    """``RESETS`` consecutive resets (Unix µs): the one before the latest at or before
    ``wall``, that one, and the next three."""
    latest = calendar.last_reset(wall)
    out = [calendar.last_reset(latest - 1.0), latest]
    while len(out) < RESETS:
        out.append(calendar.next_reset(out[-1]))
    return [math.floor(r * _US) for r in out]


class Calendars:
    """The calendars of this worker's tokens, and their resets as last computed (again
    once the wall clock passes the current period's end)."""

    __slots__ = ("_by_key", "_cache", "_until")

    def __init__(self) -> None:
        self._by_key: dict[str, Calendar] = {}
        self._cache = ""
        self._until = -math.inf  # wall clock (s) until which the cache holds

    def configure(self, calendars: Iterable[Calendar]) -> None:
        self._by_key = {calendar_key(c): c for c in calendars}
        self._cache = ""
        self._until = -math.inf

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def arg(self, wall: float) -> str:
        """``,<wall µs>,{key: [resets], ...}``: what a call appends to its JSON array
        (nothing when this worker's tokens have no calendar window)."""
        if not self._by_key:
            return ""
        if not (wall < self._until and self._cache):
            table = {key: resets(c, wall) for key, c in self._by_key.items()}
            inner = ",".join(
                f'"{key}":[{",".join(str(r) for r in rs)}]' for key, rs in table.items()
            )
            self._cache = "{" + inner + "}"
            # Recomputed once the current period is over (its end is the third reset).
            self._until = min(rs[2] for rs in table.values()) / _US
        return f",{math.floor(wall * _US)},{self._cache}"
