"""``Calibration``: the pool's side of self-calibrating limits.

Limits are beliefs, not facts. Each token that is used gets a :class:`Calibrator` (pure:
evidence and ``now`` in, decisions out, in ``aurora_async._core.calibrate``) that keeps
the declared limits as a ceiling (or, for the library's default, a first guess) and an
*effective* limit the scheduler uses. This module feeds it the evidence the pool sees
(429s the token's own limiter allowed, rate-limit headers, and clean service, read by a
tick four times a second while the pool is busy), applies what it decides to the
scheduler, and logs each change (``aurora.token.limit_lowered``, ``limit_raised``,
``limit_from_header``). The scheduler never exceeds the effective limit it has.

A token that was never used has no calibrator (it costs nothing); its effective limits
are :func:`~aurora_async._core.calibrate.starting_limits` of its declared ones.

A restart (the state file, ``_io/statefile.py``) keeps what was learned: :meth:`kept`
and :meth:`restore`. The effective limits alone would not be enough: a calibrator made
afresh around them would forget the least rate the server refused (after the 429 that
lowered it, it would probe upward 2% at a time instead of climbing halfway back toward
that rate), the patience it learned between rate probes (reset to one period: a rate
just refused is probed again twice as soon), the rate its probe steps are a share of, a
probe not confirmed yet (undone if refused), and, with nothing declared, whether slow
start was still on. So the calibrator's memory
(:class:`~aurora_async._core.calibrate_types.Memory`: a handful of numbers) is kept
beside the limits, and a restored calibrator decides as the running one would have
after the same idle time (``tests/core/test_calibrate_restore.py`` compares them
decision for decision). What is not kept is the evidence of the moment (the saturated
stretch, the marks of the measured rate, the 429 episode and its backoff step): a
restart is an idle stretch, after which the running calibrator starts those afresh too.
The restored limits go in through the scheduler's ``restate``, not ``relimit``: relimit
starts new windows full because nothing is known of how they were spent, while here the
state file knows, and restores their levels next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .. import _log
from .._core.calibrate import TICK, Calibrator, same_declaration, starting_limits
from .._core.calibrate_types import (
    LIMIT_FROM_HEADER,
    LIMIT_RESTORED,
    CalibrationSnapshot,
    Change,
    Kept,
    LimitSource,
    Memory,
)
from .._core.headers import RateLimitInfo
from .._core.limits import REQUESTS, Limit
from .._core.scheduler import Scheduler, Slot
from .._core.stated import kept_limits, stated_limits
from .._core.vendor_headers import ResourceReading

#: A token's declared limits and whether they are the user's (a ceiling) or a guess.
Declared = Callable[[Slot], tuple[tuple[Limit, ...], bool]]


class Shared(Protocol):
    """Where limits are shared by many processes (the pool's backend)."""

    def relimited(self, slot: Slot, limits: tuple[Limit, ...], was: tuple[Limit, ...]) -> None:
        """``slot``'s effective limits changed here, from ``was`` to ``limits``."""


class Calibration:
    """The calibrators of a pool's tokens, and the one tick timer they share."""

    __slots__ = (
        "_by_slot",
        "_declared",
        "_floor",
        "_granted",
        "_last_granted",
        "_loop",
        "_now",
        "_sched",
        "_seen",
        "_shared",
        "_timer",
        "backoff",
        "enabled",
    )

    def __init__(
        self,
        sched: Scheduler,
        now: Callable[[], float],
        loop: Callable[[], asyncio.AbstractEventLoop | None],
        granted: Callable[[], int],
        declared: Declared,
        *,
        enabled: bool,
        backoff: tuple[float, float],
        shared: Callable[[], Shared | None] = lambda: None,
    ) -> None:
        self.enabled = enabled
        self.backoff = backoff
        self._sched = sched
        self._now = now
        self._loop = loop
        self._granted = granted
        self._declared = declared
        self._shared = shared  # the backend, if any: it shares each change of limits
        self._by_slot: dict[Slot, Calibrator] = {}
        self._seen: dict[Slot, float] = {}  # units granted at the last tick
        self._timer: asyncio.TimerHandle | None = None
        self._last_granted = -1
        self._floor = 1.0  # the largest cost leased: no effective burst goes below it

    # -- tokens joining and leaving ------------------------------------------------

    def starting(self, declared: tuple[Limit, ...], trusted: bool) -> tuple[Limit, ...]:
        """The effective limits of a new token with ``declared`` limits."""
        if not self.enabled or any(
            limit.unit != REQUESTS or limit.scope or limit.calendar for limit in declared
        ):
            return declared  # resources, scopes, calendars: declared, not calibrated (yet)
        return starting_limits(declared, trusted=trusted, min_burst=self._floor)

    def redeclare(self, slot: Slot, declared: tuple[Limit, ...], trusted: bool) -> None:
        """``slot``'s declared limits changed (a reload): start over from them."""
        self._by_slot.pop(slot, None)
        self._seen.pop(slot, None)
        self._sched.relimit(slot, self.starting(declared, trusted), self._now())

    def forget(self, dropped: Iterable[Slot]) -> None:
        """Drop the calibrators of tokens the pool forgot (``dropped``: retired states
        that drained, see ``TokenSet.prune_retired``). A token's calibrator lives exactly
        as long as its state: a removed token that is still remembered keeps its own."""
        for slot in dropped:
            self._by_slot.pop(slot, None)
            self._seen.pop(slot, None)

    def widen(self, cost: float) -> None:
        """A lease of ``cost`` units: no effective burst stays below it (where the
        declared one allows it), so calibration never makes a cost impossible."""
        if cost <= self._floor:
            return
        now = self._now()
        for slot in list(self._sched.slots.values()):
            if slot.mixed:
                continue
            change = self._of(slot, now).set_min_burst(cost)  # (made with the old floor)
            if change is not None:
                self._apply(slot, change, now)
        self._floor = cost

    def _of(self, slot: Slot, now: float) -> Calibrator:
        """``slot``'s calibrator, made on first use."""
        calibrator = self._by_slot.get(slot)
        if calibrator is None:
            declared, trusted = self._declared(slot)
            calibrator = self._by_slot[slot] = Calibrator(
                declared, trusted=trusted, now=now, min_burst=self._floor, backoff=self.backoff
            )
        return calibrator

    # -- evidence --------------------------------------------------------------------

    def rate_limited(
        self, slot: Slot, granted_at: float, retry_after: float | None
    ) -> tuple[float, str] | None:
        """A 429 on a lease of ``slot`` granted at ``granted_at``: how long to cool it
        (and why), or ``None`` when the 429 belongs to an episode already answered."""
        now = self._now()
        calibrator = self._of(slot, now)
        decision = calibrator.rate_limited(now, granted_at, slot.ok, slot.units, retry_after)
        if decision.change is not None:
            self._apply(slot, decision.change, now)
        self._arm()
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
        if not self.enabled or info.limit is None or slot.mixed:
            return
        now = self._now()
        change = self._of(slot, now).from_headers(
            now, info.limit, info.remaining, info.reset_after, info.window
        )
        if change is not None:
            self._apply(slot, change, now)

    def stated(self, slot: Slot, readings: Sequence[ResourceReading]) -> None:
        """What the API's own headers (OpenAI, Anthropic) say of the size of ``slot``'s
        per-minute windows, for a token whose windows count several resources (the
        calibrator takes plain ones): each is restated to the server's size, never above
        the declared one (``stated.stated_limits``); the others keep their state. In one
        process only: a shared pool enforces such a token's declared limits as given."""
        if not self.enabled or not slot.mixed or slot.removed or self._shared() is not None:
            return
        declared, _ = self._declared(slot)
        was = tuple(w.limit for w in slot.windows)
        floors = {**self._sched.largest_parts, REQUESTS: self._floor}
        limits = stated_limits(declared, was, readings, floors)
        if limits is None:
            return
        self._sched.restate(slot, limits, self._now())
        _log.info(
            LIMIT_FROM_HEADER,
            token=slot.name,
            limits=[str(limit) for limit in limits],
            was=[str(limit) for limit in was],
            source=LimitSource.HEADER.value,
            reason="stated",
        )

    def adopt(self, slot: Slot, limits: tuple[Limit, ...]) -> None:
        """``slot``'s effective limits as another process of a shared pool decided them:
        its calibrator believes them from now on (the caller relimits the slot)."""
        if self.enabled and not slot.mixed:
            self._of(slot, self._now()).adopt(limits)

    def snapshot(self, slot: Slot) -> CalibrationSnapshot | None:
        """``slot``'s declared and effective limits, for ``stats()``."""
        if not self.enabled:
            return None
        calibrator = self._by_slot.get(slot)
        if calibrator is not None:
            return calibrator.snapshot()
        declared, trusted = self._declared(slot)
        effective = tuple(w.limit for w in slot.windows)
        source = LimitSource.DECLARED if trusted else LimitSource.DEFAULT
        if slot.mixed and effective != declared:  # sized by headers (Calibration.stated)
            source = LimitSource.HEADER
        return CalibrationSnapshot(declared, effective, source, False, 0)

    # -- a restart (the state file) ----------------------------------------------------

    def kept(self, slot: Slot) -> tuple[tuple[Kept, ...], Memory | None]:
        """What a restart must keep of ``slot``'s limits: the windows whose effective
        limit evidence moved from the declared one, and its calibrator's memory (a
        token calibrated from 429s). Nothing with calibration off, nor in a shared pool
        (the backend keeps every process's limits)."""
        if not self.enabled or self._shared() is not None:
            return (), None
        calibrator = self._by_slot.get(slot)
        if calibrator is not None:
            kept = calibrator.kept()
            return kept, (calibrator.memory() if kept else None)
        if not slot.mixed:
            return (), None
        declared, _ = self._declared(slot)  # sized by headers (stated): index for index
        windows = slot.windows
        if len(windows) != len(declared):
            return (), None
        pairs = zip(windows, declared, strict=True)
        return tuple(Kept(w.limit, LimitSource.HEADER, d) for w, d in pairs if w.limit != d), None

    def restore(self, slot: Slot, kept: Sequence[Kept], memory: Memory | None) -> list[Kept]:
        """Give ``slot`` the limits an earlier run learned or was told (``kept``, from a
        state file), before its windows' levels are restored: through the scheduler's
        ``restate``, which keeps the windows whose limit stays and files the slot in its
        new tier (not ``relimit``, which starts new windows full: the file knows their
        levels). A calibrated token's calibrator takes them with ``memory``. Returns the
        ones discarded because the token no longer declares the limit they came from
        (the user's new declaration wins)."""
        declared, _ = self._declared(slot)
        stale = [k for k in kept if not any(same_declaration(d, k.declared) for d in declared)]
        fits = [k for k in kept if k not in stale]
        if not self.enabled or self._shared() is not None or not fits:
            return stale
        now = self._now()
        was = tuple(w.limit for w in slot.windows)
        if slot.mixed:
            limits = kept_limits(declared, was, fits)
        else:
            calibrator = self._of(slot, now)
            calibrator.restore(fits, None if stale else memory)
            limits = calibrator.effective
        if limits != was:
            self._sched.restate(slot, limits, now)
            _log.info(
                LIMIT_RESTORED,
                token=slot.name,
                limits=[str(limit) for limit in limits],
                was=[str(limit) for limit in was],
                source=fits[-1].source.value,
                reason="state file",
            )
        return stale

    # -- the tick --------------------------------------------------------------------

    def start(self) -> None:
        """The pool is open: tick while it is busy."""
        self._arm()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        loop = self._loop()
        if self.enabled and self._timer is None and loop is not None:
            self._timer = loop.call_at(loop.time() + TICK, self._tick)

    def _tick(self) -> None:
        """Show the calibrator of each token used since the last tick how it served. An
        idle pool costs one comparison a tick; a busy one a dictionary lookup per token
        (skipping a token granted nothing since the last tick is safe: it learns nothing
        from an idle stretch). A token with no calibrator yet whose declared limits
        leave nothing to grow (trusted, the fastest window's burst given) gets none: 429s
        and headers make one when there is evidence."""
        self._timer = None
        granted = self._granted()
        busy = granted != self._last_granted
        self._last_granted = granted
        if busy:
            now = self._now()
            seen = self._seen
            by_slot = self._by_slot
            for slot in list(self._sched.slots.values()):
                units = slot.units
                if slot.removed or slot.mixed or seen.get(slot, 0.0) == units:
                    continue  # granted nothing since the last tick: nothing to learn
                calibrator = by_slot.get(slot)
                if calibrator is None and not self._may_grow(slot):
                    continue
                seen[slot] = units
                calibrator = self._of(slot, now)
                if calibrator.wants_ticks:
                    change = calibrator.tick(now, slot.ok, units)
                    if change is not None:
                        self._apply(slot, change, now)
        self._arm()

    def _may_grow(self, slot: Slot) -> bool:
        """Whether a token that has seen no evidence yet may still grow from its start:
        a guessed limit, or a fastest window whose burst was left at its default."""
        declared, trusted = self._declared(slot)
        if not trusted:
            return True
        fast = min(declared, key=lambda limit: (limit.per, limit.per_second))
        return not fast.burst_given

    def _apply(self, slot: Slot, change: Change, now: float) -> None:
        if tuple(w.limit for w in slot.windows) != change.limits:
            # the windows changed start full; the others keep what they hold
            self._sched.relimit(slot, change.limits, now, keep_same=True)
            shared = self._shared()
            if shared is not None:
                shared.relimited(slot, change.limits, change.old)
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
