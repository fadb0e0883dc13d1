"""``Window``: one limit window of one token, an aiolimiter bucket the scheduler can read.

Each window *is* an :class:`aiolimiter.AsyncLimiter` (its state, its leak arithmetic and,
for anyone who wants it, its own ``acquire()``), but the scheduler must know *when* a
bucket can take a cost, for every token, without awaiting anything. aiolimiter's public
API only answers ``has_capacity()`` (and asking it per token costs about three bare
acquires), so this thin subclass reads the bucket's state directly:

* ``_level``: units in the bucket as of ``_last_check``;
* ``_last_check``: the loop time the level was last brought up to date;
* ``_rate_per_sec``: how fast the bucket drains.

Those names are private to aiolimiter, so :func:`check_aiolimiter` verifies them at
import, the package pins the aiolimiter releases it was tested with, and
``tests/core/test_aiolimiter_contract.py`` fails loudly if a release changes their meaning.

Everything here takes ``now`` as an argument and never touches the event loop, so the
scheduler above it stays pure and testable on any clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from functools import partial
from itertools import count

from aiolimiter import AsyncLimiter

from .limits import REQUESTS, Limit

INF = math.inf

_STATE = ("_level", "_last_check", "_rate_per_sec", "max_rate", "time_period")


def check_aiolimiter() -> None:
    """Fail with a clear message if aiolimiter's bucket state is not what we read."""
    probe = AsyncLimiter(4, 2)
    missing = [name for name in _STATE if not hasattr(probe, name)]
    if missing or probe._rate_per_sec != 2 or probe._level != 0:
        import aiolimiter

        version = getattr(aiolimiter, "__version__", "unknown")
        raise ImportError(
            f"aurora_async reads aiolimiter's bucket state ({', '.join(_STATE)}), which "
            f"aiolimiter {version} no longer provides as expected. Install a supported "
            "release: pip install 'aiolimiter>=1.1,<1.4'"
        )


check_aiolimiter()

#: aiolimiter gives every limiter its own waiter heap and tie-breaking counter. A window
#: is normally never awaited on (the scheduler does the waiting), so windows share one
#: counter (still unique and increasing) and one empty heap, replaced by a list of its
#: own the moment anyone calls ``acquire()`` on a window. That saves about 300 bytes per
#: token, a third of an idle token's footprint.
_SHARED_COUNT = partial(next, count())
_NO_WAITERS: list[tuple[float, int, asyncio.Future[None]]] = []


class Window(AsyncLimiter):
    """One :class:`Limit` of one token: a leaky bucket of ``burst`` units draining at
    ``rate / per`` units a second, starting empty at ``now``."""

    __slots__ = ("burst", "limit", "rate", "scope", "unit")

    burst: float
    limit: Limit
    rate: float
    unit: str  #: the resource it counts (``Limit.unit``)
    scope: str | None  #: the scope it counts (``Limit.scope``; ``None``: every lease)

    def __init__(self, limit: Limit, now: float) -> None:
        # aiolimiter's bucket holds max_rate units and drains max_rate / time_period a
        # second; so a burst B draining r per second is AsyncLimiter(B, B / r).
        super().__init__(limit.burst, limit.burst / limit.per_second)
        self.limit = limit
        self.unit = limit.unit
        self.scope = limit.scope
        self.burst = limit.burst
        self.rate = self._rate_per_sec = limit.per_second
        self._last_check = now
        self._next_count = _SHARED_COUNT
        self._waiters = _NO_WAITERS

    async def acquire(self, amount: float = 1) -> None:
        """aiolimiter's own ``acquire()`` (the pool never calls it; you may)."""
        if self._waiters is _NO_WAITERS:
            self._waiters = []
        await super().acquire(amount)

    def ready_at(self, cost: float) -> float:
        """The loop time from which ``cost`` units fit (may be in the past; ``inf`` if
        ``cost`` exceeds the burst). Exact: the bucket's level at time t is
        ``max(0, level - rate * (t - last_check))``, and the cost fits once that is at
        most ``burst - cost``."""
        if cost > self.burst:
            return math.inf
        return self._last_check + (self._level + cost - self.burst) / self.rate

    def level_at(self, now: float) -> float:
        """Units in the bucket at ``now``."""
        elapsed = now - self._last_check
        if elapsed <= 0.0:
            return self._level
        level = self._level - elapsed * self.rate
        return level if level > 0.0 else 0.0

    def take(self, cost: float, now: float) -> None:
        """Put ``cost`` units in the bucket at ``now`` (aiolimiter's leak, then add)."""
        elapsed = now - self._last_check
        if elapsed > 0.0:
            level = self._level - elapsed * self.rate
            self._level = (level if level > 0.0 else 0.0) + cost
            self._last_check = now
        else:
            self._level += cost

    def put(self, level: float, at: float) -> None:
        """Say the bucket holds ``level`` units as of ``at``: a state learnt elsewhere (a
        spent quota, a state file, shared buckets). ``at`` must not go back in time."""
        self._level = level
        self._last_check = at

    def adjust(self, delta: float, now: float, granted_at: float | None = None) -> None:
        """A lease's true cost differed from what it took by ``delta`` units: add them at
        ``now`` (``Lease.settle``). Less comes back at once, never below an empty bucket;
        more may fill the bucket past its burst: debt, which nothing fits until drained.
        (``granted_at``: when the lease took it; a leaky bucket needs no more.)"""
        at = now if now > self._last_check else self._last_check
        level = self.level_at(at) + delta
        self._level = level if level > 0.0 else 0.0
        self._last_check = at

    def shift(self, offset: float) -> None:
        """Move the bucket's clock by ``offset`` seconds (another clock took over)."""
        self._last_check += offset

    def give_back(self, cost: float, granted_at: float, now: float) -> None:
        """Undo a ``take(cost, granted_at)`` whose lease was never used.

        Only the part of ``cost`` that cannot have drained since ``granted_at`` comes
        back, so a refund never lets the bucket admit more than it would have without
        the lease (exact when no time has passed, conservative otherwise).
        """
        back = cost - (now - granted_at) * self.rate
        level = self.level_at(now)
        if back > 0.0:
            level = level - back if level > back else 0.0
        self._level = level
        if now > self._last_check:
            self._last_check = now

    def __repr__(self) -> str:
        return f"<Window {self.limit} level={self._level:.3f}@{self._last_check:.6f}>"


def spent_levels(
    limits: Sequence[Limit], key_cost: float, seconds: float
) -> tuple[float | None, ...]:
    """The one rule for a cooldown of ``seconds`` after the API said the token's quota
    is spent: the level each window must hold when the cooldown ends, or ``None`` for a
    window it leaves alone.

    The windows whose period is no longer than the cooldown (or the shortest one, if
    none is) are spent: they end the cooldown full but for ``key_cost`` units, so one
    call may go when it ends (as Retry-After says) and the token then fires at its
    steady rate, not with a fresh burst the API would refuse again. Longer windows may
    still have room, and keep it. The scheduler applies this to its windows
    (``Scheduler.cool``), the Redis backend to the shared ones (the ``cool`` operation of
    ``TOKEN_OP`` fills the windows flagged here, to the same level).
    """
    longest = max(seconds, min(limit.per for limit in limits))
    return tuple(limit.burst - key_cost if limit.per <= longest else None for limit in limits)


class CalendarWindow:
    """One calendar quota of one token (``Limit.daily``, ``Limit.monthly``), with the
    interface of :class:`Window` that the scheduler's general path reads: ``burst``
    units (the count) per period, used up as leases take them and all back at each
    reset. Times: the window lives on the loop's clock, resets on the wall clock, and
    ``wall = loop time + wall_offset`` (the scheduler's ``TokenSet.wall_offset``).

    ``_level`` is what was used in the period that holds ``_last_check``; ``_start`` and
    ``_reset`` bound that period on the loop's clock. Usage past the count (a settle that
    said more) is debt: nothing fits until the reset.
    """

    __slots__ = (
        "_last_check",
        "_level",
        "_reset",
        "_start",
        "_wall_offset",
        "burst",
        "calendar",
        "limit",
        "rate",
        "scope",
        "unit",
    )

    def __init__(self, limit: Limit, now: float, wall_offset: float) -> None:
        calendar = limit.calendar
        assert calendar is not None
        self.limit = limit
        self.calendar = calendar
        self.unit = limit.unit
        self.scope = limit.scope
        self.burst = limit.burst
        self.rate = limit.per_second  # the average: for the scheduler's bounds only
        self._wall_offset = wall_offset
        self._level = 0.0
        self._last_check = now
        self._start = self._reset = -INF
        self._roll(now)

    def _roll(self, now: float) -> None:
        """Move to the period that holds ``now``: a new period starts empty."""
        if now < self._reset:
            return
        wall = now + self._wall_offset
        self._start = self.calendar.last_reset(wall) - self._wall_offset
        self._reset = self.calendar.next_reset(wall) - self._wall_offset
        self._level = 0.0

    @property
    def resets_at(self) -> float:
        """The loop time of the next reset (as of the window's last update)."""
        return self._reset

    def ready_at(self, cost: float) -> float:
        """The loop time from which ``cost`` fits: now, if the period has room for it;
        else the next reset (``inf`` if ``cost`` exceeds the count)."""
        if cost > self.burst:
            return INF
        if self._level + cost <= self.burst:
            return -INF
        return self._reset

    def level_at(self, now: float) -> float:
        return 0.0 if now >= self._reset else self._level

    def take(self, cost: float, now: float) -> None:
        self._roll(now)
        self._level += cost
        if now > self._last_check:
            self._last_check = now

    def adjust(self, delta: float, now: float, granted_at: float | None = None) -> None:
        """A settle: ``delta`` more (or fewer) units used in the current period. A refund
        of a lease granted (at ``granted_at``) in an earlier period gives nothing back:
        this period never counted its reservation."""
        self._roll(now)
        if delta < 0.0 and granted_at is not None and granted_at < self._start:
            return
        level = self._level + delta
        self._level = level if level > 0.0 else 0.0
        if now > self._last_check:
            self._last_check = now

    def give_back(self, cost: float, granted_at: float, now: float) -> None:
        """Undo a ``take(cost, granted_at)`` never used: only if it was this period's."""
        self._roll(now)
        if granted_at >= self._start:
            level = self._level - cost
            self._level = level if level > 0.0 else 0.0

    def put(self, level: float, at: float) -> None:
        """Say ``level`` units were used as of ``at`` (a saved state): counted only if
        ``at`` falls in the current period."""
        self._roll(at)
        self._level = level if at >= self._start else 0.0
        if at > self._last_check:
            self._last_check = at

    def carry(self, used: float, at: float) -> bool:
        """A saved state said ``used`` units were used as of the loop time ``at`` (in
        the past): they count if ``at`` falls in the current period and are more than
        this window holds. Returns whether the window changed."""
        if at < self._start or used <= self._level:
            return False
        self._level = used
        return True

    def shift(self, offset: float) -> None:
        """Move the window's clock by ``offset`` seconds (another clock took over); the
        wall clock stays where it is."""
        self._last_check += offset
        self._start += offset
        self._reset += offset
        self._wall_offset -= offset

    def __repr__(self) -> str:
        return f"<CalendarWindow {self.limit} used={self._level:g} resets={self._reset:.3f}>"


#: A window of a slot: a leaky bucket, or a quota on the calendar.
AnyWindow = Window | CalendarWindow


def window_for(limit: Limit, now: float, wall_offset: float) -> AnyWindow:
    """The window that keeps ``limit``, empty at ``now``."""
    if limit.calendar is not None:
        return CalendarWindow(limit, now, wall_offset)
    return Window(limit, now)


def window_like(template: AnyWindow, scope: str, now: float) -> AnyWindow:
    """A new, empty window of ``template``'s limit, counting the leases of ``scope``
    (a window of ``Limit(..., scope=EACH_SCOPE)`` made for one scope)."""
    if isinstance(template, CalendarWindow):
        window: AnyWindow = CalendarWindow(template.limit, now, template._wall_offset)
    else:
        window = Window(template.limit, now)
    window.scope = scope
    return window


def fill(window: AnyWindow, now: float) -> None:
    """Fill a leaky bucket to the brim at ``now`` (it fires at its steady rate from then
    on); a calendar quota is left as it is: filling it would spend the day."""
    if isinstance(window, Window):
        window.take(window.burst, now)


#: Vector shapes by value, so that equal shapes are one object (a cost's plan is checked
#: by identity); a handful in any program, bounded all the same.
_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {}
_SHAPES_KEPT = 1024


def shape_of(windows: Sequence[AnyWindow]) -> tuple[str, ...] | None:
    """The vector shape of a token with ``windows`` (``aurora_async._core.vector``): the
    resource each counts, or ``None`` if some window is not a plain bucket of no scope
    (a lease of several resources on it takes the general path)."""
    if not windows or any(type(w) is not Window or w.scope is not None for w in windows):
        return None
    units = tuple(w.unit for w in windows)
    found = _SHAPES.get(units)
    if found is None:
        found = units
        if len(_SHAPES) < _SHAPES_KEPT:
            _SHAPES[units] = units
    return found


#: The units a key cost puts in each window of a shape, by (shape, key cost): one tuple
#: for every token of a tier, not one each (a token's memory is the product).
_FITS: dict[tuple[tuple[str, ...] | None, float], tuple[float, ...]] = {}


def fits_of(shape: tuple[str, ...] | None, key: float) -> tuple[float, ...]:
    """The units a key cost of ``key`` requests puts in each window of ``shape``: the
    key in each requests window, nothing in the others (``()`` for no shape)."""
    found = _FITS.get((shape, key))
    if found is None:
        found = tuple(key if unit == REQUESTS else 0.0 for unit in shape or ())
        if len(_FITS) < _SHAPES_KEPT:
            _FITS[(shape, key)] = found
    return found
