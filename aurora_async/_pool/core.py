"""``PoolCore``: the one internal API of a pool, between the asyncio shell and everything
around it.

The pure scheduler (``aurora_async._core``) decides; this module binds it to one event
loop, turns its decisions into resolved futures, keeps exactly **one** timer for the
whole pool (armed for the next moment something is due), and is the only place that
changes a token's state. Leases, retries, health probes, the token monitor, reloads, the
state file, metrics and the Redis backend act on a pool only through the public methods
and attributes of this class; :class:`~aurora_async.TokenPool` is the public facade over
it. Time is ``loop.time()``, so tests run on virtual time. Outcomes take one path:
every verdict on a call (an HTTP response, a lease's own report, a health probe, a
restored state file) reaches the token through :meth:`PoolCore.report` and, when a lease
ends, :meth:`PoolCore.release`.
"""

from __future__ import annotations

import asyncio
import enum
import time
import weakref
from collections import deque
from typing import Protocol, runtime_checkable

from .. import _log
from .._core.costs import scoped
from .._core.limits import Limit
from .._core.policy import Verdict
from .._core.scheduler import EPS, INF, Scheduler, Slot, Waiter, check_timeout
from .._errors import (
    LeaseTimeout,
    PoolClosed,
    lease_timeout_error,
    no_tokens_error,
    no_tokens_why,
)
from .calibration import Calibration
from .low_water import LowWater
from .redact import Redactor
from .waits import fail
from .waits import log_waited as _log_waited

#: The wall clock calendar quotas read (``Limit.daily``); a test may replace it.
wall_clock = time.time

_DEBUG = 10


class PoolState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Evidence(enum.Enum):
    """Where a verdict comes from."""

    CALL = "call"  #: a leased call: an HTTP response, or the lease's own report
    PROBE = "probe"  #: a health probe's call, made outside the scheduler
    RESTORE = "restore"  #: a state file replaying what an earlier run saw


#: A health probe's 429 rests the token for the backoff's first step (or the server's
#: Retry-After) without doubling the backoff and without filling the token's buckets.
#: Why: a probe's call is made outside the scheduler, one call at a time, so a 429 to it
#: says the token is alive but busy right now, and nothing about the pool's own pacing;
#: doubling or filling would punish the pool's traffic for a call it did not make.
PROBE_429_RULE = "a probe's 429 rests the token, without doubling or filling its buckets"


InvalidStateError = asyncio.InvalidStateError


class Queued(Waiter):
    """A lease waiting in the pool's queue (or the backend's): its entry, resolved
    through ``fut``. A lease that gets a token at once never makes one."""

    __slots__ = ("fut", "timeout")

    def __init__(
        self, cost: float, deadline: float, enqueued_at: float, timeout: float | None
    ) -> None:
        super().__init__(cost, deadline, enqueued_at)
        self.timeout = timeout  #: seconds the lease may wait (``None``: no bound)
        self.fut: asyncio.Future[None] | None = None


@runtime_checkable
class Backend(Protocol):
    """Where the limiter state lives when it is shared (``RedisBackend``): what the pool
    calls on it. In memory (no backend), the pool's own scheduler decides every lease.
    With one, the pool keeps its token slots, names, counters and per-process in-flight
    caps, and asks the backend *which token* may fire and *when*: the backend owns the
    limiter state that every process shares, and its own queue of local waiters.

    Every method but ``acquire`` and ``aclose`` is synchronous: it may start I/O in the
    background, but never blocks the caller."""

    def bind(self, core: PoolCore) -> None:
        """Called once by the pool's constructor, after its tokens are in place."""

    async def acquire(self, lease: Queued) -> None:
        """Grant ``lease`` (set ``lease.slot``, ``granted_at``, ``enqueued_at`` and count
        the grant on its slot) or raise ``LeaseTimeout``, ``NoTokensAvailable`` or
        ``PoolClosed``; cancel-safe."""

    def released(self, slot: Slot, outcome: Verdict) -> None:
        """A lease of ``slot`` ended with ``outcome``; the pool has updated the slot's
        counters."""

    def settled(self, slot: Slot, reserved: float, actual: float, granted_at: float) -> None:
        """A lease granted at ``granted_at`` reserved ``reserved``, cost ``actual``: share it."""

    def cooled(
        self, slot: Slot, seconds: float, spent: bool = False, scope: str | None = None
    ) -> None:
        """Every process should keep ``slot`` (its leases of ``scope``, if given) from
        firing for ``seconds``; ``spent``: the quota is used up, and the pool filled the
        spent windows (``spent_levels``): do the same to the shared state."""

    @property
    def waiting(self) -> int:
        """Leases of this process waiting for the backend."""

    def relimited(self, slot: Slot, limits: tuple[Limit, ...], was: tuple[Limit, ...]) -> None:
        """This process's calibration gave ``slot`` new effective ``limits`` (already in
        its windows), decided from ``was``: every process should enforce them."""

    def disabled(self, slot: Slot, reason: str) -> None:
        """Every process should stop using ``slot``."""

    def enabled(self, slot: Slot) -> None:
        """Every process may use ``slot`` again."""

    def tokens_changed(self) -> None:
        """The pool's token set changed (a reload): sync the shared membership."""

    async def aclose(self) -> None:
        """Stop background work and close connections the backend owns."""


_CORES: weakref.WeakKeyDictionary[object, PoolCore] = weakref.WeakKeyDictionary()


def core_of(pool: object) -> PoolCore:
    """The core behind a :class:`~aurora_async.TokenPool` (for the package's services)."""
    try:
        return _CORES[pool]
    except (KeyError, TypeError):
        raise TypeError(f"expected a TokenPool, got {type(pool).__name__}") from None


class PoolCore:
    """The pool's state and every operation on it. Internal: use ``TokenPool``."""

    def __init__(
        self,
        facade: object,
        *,
        limits: tuple[Limit, ...],
        max_in_flight: int | None,
        trial_in_flight: int | None,
        low_water: float,
        backoff: tuple[float, float],
        start_full: bool,
        limits_declared: bool = True,
        calibrate: bool = True,
    ) -> None:
        _CORES[facade] = self
        self.limits = limits  #: the limits of tokens that have none of their own
        #: ``limits`` are the user's (a ceiling), not the library's default (a guess).
        self.limits_declared = limits_declared
        self.max_in_flight = max_in_flight
        self.backoff = backoff  #: (first, cap) seconds of cooldown after a bare 429
        self.start_full = start_full
        self.sched = Scheduler(trial_in_flight=trial_in_flight)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._unbound_since: float | None = None  # see now()
        self.sched.wall_offset = wall_clock() - self.now()  # (calendar quotas: Unix time)
        self._names: dict[str, Slot] | None = None  # by masked name, rebuilt on change
        self.state = PoolState.UNOPENED
        #: Open (or not yet) and no backend: the lease fast path may run.
        self.fast = True
        self.by_thread = False  #: its loop says its thread (Lease asks it: no getpid call)
        self.backend: Backend | None = None
        self.timer_at = INF  #: when the one timer fires (``INF``: not armed)
        self._timer: asyncio.TimerHandle | None = None
        self.granted = 0  #: leases granted, less those given back
        self.next_mark = -INF  #: when :meth:`mark` next records the grant rate
        self.marks: deque[tuple[float, int]] = deque(maxlen=12)
        sched = self.sched
        self.redact = Redactor(sched.known_values, sched.known_name)
        self.low_water = LowWater(low_water, sched.count_states)
        self.calibration = Calibration(
            sched,
            self.now,
            lambda: self.loop,
            lambda: self.granted,
            self.declared,
            enabled=calibrate,
            backoff=backoff,
            shared=lambda: self.backend,
        )

    # -- the clock and the loop ----------------------------------------------------

    def now(self) -> float:
        """The loop's time; before the pool is bound to a loop, a clock that starts at 0
        (:meth:`bind` moves everything recorded on it to the loop's clock)."""
        loop = self.loop
        if loop is not None:
            return loop.time()
        if self._unbound_since is None:
            try:
                return asyncio.get_running_loop().time()
            except RuntimeError:
                self._unbound_since = 0.0
        return 0.0

    def bind(self) -> asyncio.AbstractEventLoop:
        """Bind the pool to the running loop (once); the same loop again is fine."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
            self.by_thread = hasattr(loop, "_thread_id")
            if self._unbound_since is not None:
                # Built outside any loop: what was recorded at "time 0" (start_full
                # buckets, cooldowns set by hand) happened just now on the loop's clock.
                self.sched.shift(loop.time() - self._unbound_since)
                self._unbound_since = None
        elif self.loop is not loop:
            raise RuntimeError(
                "this TokenPool is bound to another event loop; create one pool per loop"
            )
        return loop

    @property
    def closed(self) -> bool:
        return self.state is PoolState.CLOSED

    # -- membership ----------------------------------------------------------------

    def names_changed(self) -> None:
        """The token set or a masked name changed: drop the caches built from it."""
        self._names = None
        self.redact.forget()

    def declared(self, slot: Slot) -> tuple[tuple[Limit, ...], bool]:
        """``slot``'s declared limits, and whether the user declared them (a ceiling)
        rather than the library's default (a first guess)."""
        own = slot.token.limits
        if own is not None:
            return own, True
        return self.limits, self.limits_declared

    def slot(self, name: str) -> Slot:
        """The token with masked name ``name``; ``KeyError`` naming it otherwise."""
        names = self._names
        if names is None:
            names = self._names = {s.name: s for s in self.sched.slots.values()}
        slot = names.get(name)
        if slot is None or self.sched.slots.get(slot.token.value) is not slot:
            raise KeyError(
                f"no token named {self.redact(name)!r} in this pool "
                "(tokens are named by their masked names: see pool.stats())"
            )
        return slot

    def tokens_changed(self) -> None:
        """Fail waiters no token can serve any more; wake the queue for new tokens."""
        if self.backend is not None:
            self.backend.tokens_changed()
        sched = self.sched
        self.low_water.soon()
        if sched.waiting:
            failed = sched.unservable()
            if failed:
                why = no_tokens_why(sched.usable)
                _log.error("aurora.pool.exhausted", failed_waiters=len(failed), why=why)
                for waiter in failed:
                    fail(waiter, no_tokens_error(sched.usable))
        self.check_low()
        if sched.waiting:
            self.dispatch()

    def check_low(self, now: float | None = None) -> None:
        self.low_water.check(self.now() if now is None else now, self.loop)

    # -- leasing -------------------------------------------------------------------

    def prepare(self, cost: float, timeout: float | None) -> tuple[float, Slot | None, float]:
        """Check a lease the careful way: bind the loop, validate cost and timeout, and
        take a token at once if one is free and nobody waits. Returns ``(now, slot,
        deadline)``: ``slot`` granted at ``now``, or ``None`` to wait until ``deadline``
        in the queue."""
        if self.state is PoolState.CLOSED:
            raise PoolClosed("the pool is closed; it takes no new leases")
        loop = self.loop
        if loop is None or loop is not asyncio.get_running_loop():
            loop = self.bind()
        sched = self.sched
        if self.calibration.enabled:
            try:
                large = cost > sched.max_cost
            except TypeError:
                large = False  # check_cost says what is wrong with it
            if large:
                self.calibration.widen(cost)
        sched.check_cost(cost)
        check_timeout(timeout)
        now = loop.time()
        taken = sched.try_take(cost, now)
        if taken is not None:
            self.count_grant(now)
            return now, taken, now
        if timeout == 0:
            raise LeaseTimeout(
                f"no token can take a lease of cost {cost:g} now (timeout=0: only if free now)"
            )
        return now, None, (INF if timeout is None else now + timeout)

    def take_other(
        self, cost: float, timeout: float | None, avoid: Slot
    ) -> tuple[float, Slot] | None:
        """A token other than ``avoid`` that can fire ``cost`` now while nobody waits,
        taken at the returned time (a retry: see ``RetryLease``). ``None`` leaves the
        lease to the usual path (which also raises for a closed pool or a bad argument)."""
        loop = self.loop
        if not self.fast or loop is None or loop is not asyncio.get_running_loop():
            return None
        check_timeout(timeout)
        now = loop.time()
        slot = self.sched.take_other(cost, now, avoid)
        if slot is None:
            return None
        self.count_grant(now)
        return now, slot

    def abandon(self, waiter: Waiter) -> None:
        """The waiting task left (cancelled, or its future failed)."""
        sched = self.sched
        if waiter.live:
            if sched.cancel(waiter):
                self.dispatch()
        elif waiter.slot is not None:
            # Granted, but cancelled before it could resume: give the token back.
            slot, waiter.slot = waiter.slot, None
            self.granted -= 1
            if sched.refund(slot, waiter.cost, waiter.granted_at, self.now(), waiter):
                self.dispatch()

    def count_grant(self, now: float) -> None:
        self.granted += 1
        if now >= self.next_mark:
            self.mark(now)

    def mark(self, now: float) -> None:
        """Record the grant count once a second (for ``granted_per_second``)."""
        self.marks.append((now, self.granted))
        self.next_mark = now + 1.0

    def grant_rate(self, now: float) -> float:
        if self.marks:
            t0, g0 = self.marks[0]
            if now - t0 > 0:
                return (self.granted - g0) / (now - t0)
        return 0.0

    # -- the one timer -------------------------------------------------------------

    def dispatch(self) -> None:
        """Hand out every grant that is due, fail the expired, and re-arm the timer."""
        loop = self.loop
        if loop is None or self.state is PoolState.CLOSED:
            return
        sched = self.sched
        while True:
            now = loop.time()
            granted, expired, wake = sched.dispatch(now)
            refunded = 0
            for lease in granted:
                try:
                    lease.fut.set_result(None)  # type: ignore[attr-defined]  # the queue holds Queued
                except InvalidStateError:  # cancelled while queued; its task has not run yet
                    sched.refund(lease.slot, lease.cost, now, now, lease)  # type: ignore[arg-type]
                    lease.slot = None  # given back: nothing for abandon() to refund
                    refunded += 1
            if granted:
                self.granted += len(granted) - refunded
                if now >= self.next_mark:
                    self.mark(now)
                if _log.enabled(_DEBUG):
                    _log_waited(now, granted)
            for lease in expired:
                fail(lease, self._timeout_error(lease, now))
            if not refunded:
                break
        self.arm(wake)

    def _timeout_error(self, waiter: Waiter, now: float) -> LeaseTimeout:
        sched = self.sched
        why = f"{sched.usable} usable tokens, {sched.waiting} leases still waiting"
        return lease_timeout_error(waiter.cost, now - waiter.enqueued_at, why)

    def arm(self, when: float) -> None:
        """Make the one timer fire at ``when`` unless an earlier wake is set."""
        timer = self._timer
        if when == INF:
            if timer is not None:
                timer.cancel()
                self._timer, self.timer_at = None, INF
            return
        if timer is not None:
            if self.timer_at <= when + EPS:
                return  # an earlier wake is set; it will re-arm
            timer.cancel()
        self.timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)  # type: ignore[union-attr]

    def _on_timer(self) -> None:
        self._timer, self.timer_at = None, INF
        self.dispatch()

    # -- outcomes: the one path ------------------------------------------------------

    def report(
        self,
        slot: Slot,
        verdict: Verdict,
        *,
        cooldown: float | None = None,
        reason: str | None = None,
        evidence: Evidence = Evidence.CALL,
        granted_at: float | None = None,
        scope: str | None = None,
    ) -> None:
        """What a call (or probe, or restored state) says about a token, acted on now.
        A call leased in a ``scope`` cools only that scope (not calibrated).

        ``RATE_LIMITED`` cools the token for ``cooldown`` (the server's Retry-After) or
        its backoff; ``REVOKED`` disables it with ``reason``; ``OK`` with a ``cooldown``
        (the server says nothing remains until a reset) rests it. Counters of calls are
        kept by :meth:`release` when the lease ends, except 429s, counted here. A 429
        on a lease granted at ``granted_at`` is evidence for the token's calibration:
        the first of an episode lowers its effective limit and rests it; those of the
        same episode (in flight when it began) change nothing more."""
        if verdict is Verdict.RATE_LIMITED:
            if evidence is Evidence.CALL:
                slot.rate_limited += 1
                calibrated = self.calibration.enabled and not slot.mixed and scope is None
                if granted_at is not None and calibrated:
                    decided = self.calibration.rate_limited(slot, granted_at, cooldown)
                    if decided is not None:  # else: an episode already answered
                        self.cool(slot, decided[0], decided[1], spent=True)
                elif cooldown is None:
                    first, cap = self.backoff
                    cooldown = slot.backoff = min(cap, slot.backoff * 2 if slot.backoff else first)
                    self.cool(slot, cooldown, "backoff", spent=True, scope=scope)
                else:
                    self.cool(slot, cooldown, "retry_after", spent=True, scope=scope)
            elif evidence is Evidence.PROBE:  # PROBE_429_RULE
                self.cool(slot, self.backoff[0] if cooldown is None else cooldown, "probe")
            elif cooldown:  # what is left of an earlier run's cooldown; windows restored
                self.cool(slot, cooldown, "restored")
        elif verdict is Verdict.REVOKED:
            self.disable(slot, reason or "revoked")
        elif cooldown:
            if evidence is Evidence.CALL:
                self.cool(slot, cooldown, "exhausted", spent=True, scope=scope)
            else:
                self.cool(slot, cooldown, evidence.value)

    def exhausted(self, slot: Slot, seconds: float, slack: float, scope: str | None = None) -> None:
        """A good answer said nothing remains for ``seconds``. The token's own limiter
        may already hold it that long; cool it only if the reset is later."""
        if self.now() + seconds > slot.ready(scoped(slot.key_cost, scope)) + slack:
            self.report(slot, Verdict.OK, cooldown=seconds, scope=scope)

    def release(self, slot: Slot, verdict: Verdict) -> None:
        """A lease of ``slot`` ended with ``verdict``: count it and free its place."""
        sched = self.sched
        more = False
        if verdict is Verdict.OK:
            slot.ok += 1
            slot.backoff = 0.0
            more = sched.mark_proven(slot)
        elif verdict is Verdict.CLIENT_ERROR:  # the server took the token; the request was bad
            slot.errors += 1
            more = sched.mark_proven(slot)
        elif verdict is not Verdict.RATE_LIMITED:  # failed or revoked (disabled already)
            slot.errors += 1
        backend = self.backend
        if backend is not None:
            slot.in_flight -= 1
            sched.forget_if_idle(slot)
            backend.released(slot, verdict)
        elif (sched.release(slot) or more) and sched.waiting:
            self.dispatch()

    # -- token state -----------------------------------------------------------------

    def cool(
        self, slot: Slot, seconds: float, why: str, *, spent: bool = False, scope: str | None = None
    ) -> None:
        """Keep ``slot`` from firing for ``seconds`` (in ``scope`` only, if given); ``spent``:
        the server said the quota is used up there (its buckets full at the end)."""
        now = self.now()
        if scope is None:
            self.sched.cool(slot, now + seconds, now if spent else None)
        else:
            self.sched.cool_scope(slot, scope, now + seconds, now, spent=spent)
        if self.backend is not None:
            self.backend.cooled(slot, seconds, spent, scope)
        if scope is not None:
            _log.info(
                "aurora.token.cooling", token=slot.name, seconds=seconds, why=why, scope=scope
            )
            return
        _log.info("aurora.token.cooling", token=slot.name, seconds=round(seconds, 6), why=why)
        self.check_low(now)
        if self.sched.waiting:
            self.dispatch()

    def disable(self, slot: Slot, reason: str, *, by_hand: bool | None = None) -> None:
        """Take ``slot`` out of service for every caller, with ``reason`` (redacted)."""
        if by_hand is not None:
            slot.by_hand = by_hand
        reason = self.redact(reason)
        if self.sched.disable(slot, reason):
            _log.warning("aurora.token.disabled", token=slot.name, reason=reason)
            if self.backend is not None:
                self.backend.disabled(slot, reason)
            self.tokens_changed()

    def enable(self, slot: Slot, *, by_hand: bool | None = None) -> None:
        """Put a disabled ``slot`` back in service."""
        if by_hand is not None:
            slot.by_hand = by_hand
        if self.sched.enable(slot):
            _log.info("aurora.token.enabled", token=slot.name)
            if self.backend is not None:
                self.backend.enabled(slot)
            self.tokens_changed()

    def settle(self, slot: Slot, reserved: float, actual: float, granted_at: float) -> None:
        """``Scheduler.settle`` now; then the backend's (the slot mirrors it) or a dispatch."""
        self.sched.settle(slot, reserved, actual, self.now(), granted_at)
        if self.backend is not None:
            self.backend.settled(slot, reserved, actual, granted_at)
        elif self.sched.waiting:
            self.dispatch()  # a refund may let a waiter in; a debt may move the timer

    def charge(self, slot: Slot, cost: float) -> None:
        """Put ``cost`` in ``slot``'s buckets now, outside any lease (a probe's call)."""
        self.sched.charge(slot, cost, self.now())

    def restored(self) -> None:
        """Token states were changed in bulk (a state file): serve who can be served."""
        if self.sched.waiting:
            self.dispatch()

    # -- closing -------------------------------------------------------------------

    def open(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop and start taking leases (and calibrating)."""
        loop = self.bind()
        self.state = PoolState.OPEN
        self.calibration.start()
        return loop

    def close(self) -> None:
        """No more leases: waiters get ``PoolClosed``; the timers stop."""
        self.state = PoolState.CLOSED
        self.fast = False
        self.arm(INF)
        self.low_water.stop()
        self.calibration.stop()
        sched = self.sched
        for waiter in list(sched.waiters()):
            sched.cancel(waiter)
            fail(waiter, PoolClosed("the pool was closed while this lease was waiting"))
