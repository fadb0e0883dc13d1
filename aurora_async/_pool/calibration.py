"""``Calibration``: the pool's side of self-calibrating limits.

Limits are beliefs, not facts. Each token has a :class:`Calibrator` (pure: evidence and
``now`` in, decisions out, in ``aurora_async._core.calibrate``) that keeps the declared
limits as a ceiling (or, for the library's default, a first guess) and an *effective*
limit the scheduler uses. This module feeds it the evidence the pool sees (429s the
token's own limiter allowed, rate-limit headers, clean service, by a tick four times a
second while some calibrator asks for it), applies what it decides to the scheduler,
and logs each change (``aurora.token.limit_lowered``, ``limit_raised``,
``limit_from_header``). The scheduler never exceeds the effective limit it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import _log
from .._core.calibrate import TICK, Calibrator
from .._core.calibrate_types import CalibrationSnapshot, Change
from .._core.headers import RateLimitInfo
from .._core.limits import Limit
from .._core.scheduler import Scheduler, Slot


class Calibration:
    """One calibrator per token of a pool, and the one tick timer they share."""

    __slots__ = ("_by_slot", "_floor", "_loop", "_now", "_sched", "_timer", "backoff", "enabled")

    def __init__(
        self,
        sched: Scheduler,
        now: Callable[[], float],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        *,
        enabled: bool,
        backoff: tuple[float, float],
    ) -> None:
        self.enabled = enabled
        self.backoff = backoff
        self._sched = sched
        self._now = now
        self._loop = loop
        self._by_slot: dict[Slot, Calibrator] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._floor = 1.0  # the largest cost leased: no effective burst goes below it

    # -- tokens joining and leaving ------------------------------------------------

    def begin(self, declared: tuple[Limit, ...], trusted: bool) -> Calibrator | None:
        """A calibrator for a new token with ``declared`` limits (``trusted``: the user's,
        not the library's default); its ``effective`` limits are the token's first.
        ``None`` when the pool does not calibrate."""
        if not self.enabled:
            return None
        return Calibrator(
            declared,
            trusted=trusted,
            now=self._now(),
            min_burst=self._floor,
            backoff=self.backoff,
        )

    def attach(self, slot: Slot, calibrator: Calibrator | None) -> None:
        """Calibrate ``slot`` with ``calibrator`` (from :meth:`begin`) from now on."""
        if calibrator is not None:
            self._by_slot[slot] = calibrator
            self._arm()

    def declared(self, slot: Slot) -> tuple[Limit, ...]:
        """The limits the user (or the default) declared for ``slot``."""
        calibrator = self._by_slot.get(slot)
        if calibrator is not None:
            return calibrator.declared
        return tuple(w.limit for w in slot.windows)

    def redeclare(self, slot: Slot, declared: tuple[Limit, ...], trusted: bool) -> None:
        """``slot``'s declared limits changed (a reload): start over from them."""
        calibrator = self.begin(declared, trusted)
        limits = declared if calibrator is None else calibrator.effective
        self._sched.relimit(slot, limits, self._now())
        self._by_slot.pop(slot, None)
        self.attach(slot, calibrator)

    def forget(self, slots: set[Slot]) -> None:
        """Tokens the pool no longer remembers: drop their calibrators."""
        for slot in [s for s in self._by_slot if s not in slots]:
            del self._by_slot[slot]

    def widen(self, cost: float) -> None:
        """A lease of ``cost`` units: no effective burst stays below it (where the
        declared one allows it), so calibration never makes a cost impossible."""
        if cost <= self._floor:
            return
        self._floor = cost
        now = self._now()
        for slot, calibrator in self._by_slot.items():
            change = calibrator.set_min_burst(cost)
            if change is not None:
                self._apply(slot, change, now)

    # -- evidence --------------------------------------------------------------------

    def rate_limited(
        self, slot: Slot, granted_at: float, retry_after: float | None
    ) -> tuple[float, str] | None:
        """A 429 on a lease of ``slot`` granted at ``granted_at``: how long to cool it
        (and why), or ``None`` when the 429 belongs to an episode already answered."""
        calibrator = self._by_slot.get(slot)
        if calibrator is None:
            return None
        now = self._now()
        decision = calibrator.rate_limited(now, granted_at, slot.ok, slot.units, retry_after)
        if decision.change is not None:
            self._apply(slot, decision.change, now)
        if not decision.new_episode:
            return None
        if retry_after is not None:
            why = "retry_after"
        elif decision.backoff_step:
            why = "backoff"
        else:
            why = "calibrating"
        return decision.cooldown, why

    def headers(self, slot: Slot, info: RateLimitInfo) -> None:
        """What a response's rate-limit headers say about ``slot``'s limit."""
        calibrator = self._by_slot.get(slot)
        if calibrator is None or info.limit is None:
            return
        now = self._now()
        window = getattr(info, "window", None)
        change = calibrator.from_headers(now, info.limit, info.remaining, info.reset_after, window)
        if change is not None:
            self._apply(slot, change, now)

    def snapshot(self, slot: Slot) -> CalibrationSnapshot | None:
        calibrator = self._by_slot.get(slot)
        return None if calibrator is None else calibrator.snapshot()

    # -- the tick --------------------------------------------------------------------

    def _arm(self) -> None:
        loop = self._loop()
        if self._timer is not None or loop is None:
            return
        if any(c.wants_ticks for c in self._by_slot.values()):
            self._timer = loop.call_at(loop.time() + TICK, self._tick)

    def start(self) -> None:
        """The pool is open: tick when asked to."""
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        now = self._now()
        for slot, calibrator in list(self._by_slot.items()):
            if calibrator.wants_ticks and not slot.removed:
                change = calibrator.tick(now, slot.ok, slot.units)
                if change is not None:
                    self._apply(slot, change, now)
        self._arm()

    def _apply(self, slot: Slot, change: Change, now: float) -> None:
        if tuple(w.limit for w in slot.windows) != change.limits:
            self._sched.relimit(slot, change.limits, now)  # new windows start full
        elif change.levels is not None:
            for window, level in zip(slot.windows, change.levels, strict=True):
                if level is not None and level > window.level_at(now):
                    window.take(level - window.level_at(now), now)  # the server's count
            self._sched.touched(slot)  # its key moved later
        _log.info(
            change.event,
            token=slot.name,
            limits=[str(limit) for limit in change.limits],
            was=[str(limit) for limit in change.old],
            source=change.source.value,
            reason=change.reason,
        )
        self._arm()
