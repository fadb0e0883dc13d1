"""``Lease``: the right to make one call of ``cost`` units with one token."""

from __future__ import annotations

import math
from asyncio import Future, get_running_loop
from collections.abc import Mapping
from threading import get_ident
from types import TracebackType
from typing import TYPE_CHECKING

from .._core.costs import Costs, scope_of, settled
from .._core.policy import Verdict
from .._core.scheduler import Scheduler
from .core import PoolCore, Queued

if TYPE_CHECKING:
    from .._core.scheduler import Slot

_PENDING, _HELD, _DONE = 0, 1, 2
_INF = float("inf")
_PLAIN = (float, int)  # timeouts the fast path takes as they are (not bool: a subclass)
_OK = Verdict.OK
_FINE = (None, _OK)
_new = object.__new__


_Future = Future  # the C class, without loop.create_future()'s Python frame


class Lease:
    """A granted token, from ``pool.lease()`` (``async with``) or ``await pool.acquire()``.

    Report what happened with :meth:`rate_limited`, :meth:`revoked` or :meth:`failed`;
    a lease that ends without a report counts as fine, and one left by an exception
    counts as failed (not as rate-limited). Leases from :meth:`TokenPool.acquire` must be
    ended with :meth:`release`.
    """

    # A lease that never waits is just these fields; one that must wait puts a queue
    # entry (``Queued``) in the pool's queue and takes its token from it. A new lease
    # sets the first four; the grant sets the others (``_enqueued_at`` only if it waited).
    __slots__ = (
        "_core",
        "_cost",
        "_enqueued_at",
        "_granted_at",
        "_outcome",
        "_slot",
        "_state",
        "_timeout",
    )
    #: The scheduler's fast path for this lease's cost (``VectorLease``: several
    #: resources), chosen by the class, so a lease of a plain number pays no test for it.
    _try = staticmethod(Scheduler.try_take)
    _slot: Slot
    _granted_at: float  # loop time of the grant
    _enqueued_at: float  # loop time of the request, for a lease that waited
    _outcome: Verdict | None

    def __init__(self, core: PoolCore, cost: float, timeout: float | None) -> None:
        self._core = core
        self._cost = cost
        self._timeout = timeout
        self._state = _PENDING

    def _held(self) -> Slot:
        if self._state == _PENDING:
            raise RuntimeError("this lease has not been granted yet: use it inside `async with`")
        return self._slot

    @property
    def scope(self) -> str | None:
        """The scope this lease was taken in (``pool.lease(scope=...)``), or ``None``."""
        return scope_of(self._cost)

    @property
    def cost(self) -> float:
        """The units this lease takes from its token's buckets: a number of requests,
        or a :class:`~aurora_async.Costs` of several resources (settled: its true cost)."""
        return self._cost

    @property
    def token(self) -> str:
        """The secret, to hand to your own client or SDK. Never log it: log :attr:`name`."""
        return self._held().token.value

    @property
    def waited(self) -> float:
        """Seconds this lease waited in the queue before it was granted."""
        if self._state == _PENDING:
            return 0.0
        try:
            return self._granted_at - self._enqueued_at
        except AttributeError:  # granted at once: it never waited
            return 0.0

    @property
    def name(self) -> str:
        """The token's masked name."""
        return self._held().name

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def rate_limited(self, retry_after: float | None = None) -> None:
        """The server answered 429 (or equivalent): cool the token down (only for its
        scope, for a lease taken with ``scope=``: the token serves the others).

        ``retry_after`` is in seconds. Without it, the pool decides: a calibrating pool
        lowers the token's effective limit and rests it briefly (backing off, doubling,
        only while it keeps being refused); with ``calibrate=False`` the token backs off,
        doubling each time it is rate-limited again, up to the pool's cap.
        """
        if retry_after is not None and not (retry_after >= 0 and math.isfinite(retry_after)):
            raise ValueError(
                f"retry_after must be a non-negative finite number of seconds, got {retry_after!r}"
            )
        slot = self._held()
        if self._outcome is Verdict.RATE_LIMITED:
            return  # one lease, one 429: a second report counts nothing
        self._outcome = Verdict.RATE_LIMITED
        self._core.report(
            slot,
            Verdict.RATE_LIMITED,
            cooldown=retry_after,
            granted_at=self._granted_at,
            scope=scope_of(self._cost),
        )

    def revoked(self, reason: str | None = None) -> None:
        """The token is dead (a 401, revoked, expired): disable it for every caller."""
        slot = self._held()
        self._outcome = Verdict.REVOKED
        self._core.report(slot, Verdict.REVOKED, reason=reason or "revoked")

    def failed(self) -> None:
        """The call failed for another reason: counted as an error, nothing disabled."""
        self._held()
        self._outcome = Verdict.SERVER_ERROR

    def succeeded(self) -> None:
        """The call went well (the default when the lease ends without a report)."""
        self._held()
        self._outcome = _OK

    def exhausted(self, seconds: float, slack: float = 0.0) -> None:
        """The server said (in rate-limit headers on a good answer) that the token's quota
        is used up for ``seconds``: rest it until then, unless its own limiter holds it
        that long anyway (``slack`` seconds of tolerance)."""
        self._core.exhausted(self._held(), seconds, slack, scope_of(self._cost))

    def settle(self, actual: Mapping[str, float] | None = None, /, **parts: float) -> None:
        """The call's true cost, once its answer says it: ``lease.settle(tokens=980)``
        (or ``lease.settle({"tokens": 980})``), for the resources that differ from what
        the lease reserved; the others keep their reservation.

        Less than reserved goes back to the token's buckets now (and may let a waiter
        through); more is charged now, even past a bucket's burst: that debt keeps the
        token from its next lease until it has drained, so the server's count and the
        pool's agree again. A lease never settled keeps what it reserved. May be called
        again (each time with the cost so far), also after the lease ended, e.g. when a
        streamed answer finishes."""
        slot = self._held()
        if actual is None:
            merged = parts  # a new dict already
        else:
            merged = dict(actual)
            merged.update(parts)
        if not merged:
            raise TypeError("settle() needs the true cost of at least one resource")
        cost = settled(self._cost, merged)
        core = self._core
        # A shared reservation is made after the lease asked (and granted here a round
        # trip later): from when it asked, a refund never reaches a quota period that did
        # not count it (CalendarWindow.adjust's rule).
        since = self._granted_at if core.backend is None else self._enqueued_at
        core.settle(slot, self._cost, cost, since)
        self._cost = cost

    def client_error(self) -> None:
        """The server refused the request itself (a 4xx other than 401/429): the token
        works, so it counts as proven; the call counts as an error."""
        self._held()
        self._outcome = Verdict.CLIENT_ERROR

    def release(self) -> None:
        """End the lease (for leases from ``acquire()``; ``async with`` does it for you)."""
        if self._state == _HELD:
            self._state = _DONE
            slot = self._slot
            outcome = self._outcome
            if outcome in _FINE and slot.proven and slot.indexed and self._core.backend is None:
                slot.ok += 1  # the common case, as in __aexit__
                slot.backoff = 0.0
                slot.in_flight -= 1
                return
            self._core.release(self._held(), outcome or _OK)

    async def __aenter__(self) -> Lease:
        core = self._core
        timeout = self._timeout
        loop = core.loop
        if (
            self._state == _PENDING
            and core.fast
            and loop is not None  # on the pool's loop, running here: asked of the loop
            and (loop._thread_id == get_ident() if core.by_thread else loop is get_running_loop())  # type: ignore[attr-defined]
            # no timeout, or a plain positive finite one (anything else: the careful path
            # says what is wrong with it, or handles timeout=0); 0.0: a float timeout is
            # compared float to float (an int and a float take the slow path)
            and (timeout is None or (type(timeout) in _PLAIN and 0.0 < timeout < _INF))
        ):
            sched = core.sched
            cost = self._cost
            now = loop.time()
            if not sched.waiting:
                # The fast path: a token can fire now and nobody waits. ``try_take`` is
                # also the one cost check: it grants only a cost its token can take (a
                # valid one), and says ``None`` for any other (the careful path raises).
                slot = self._try(sched, cost, now)
                if slot is not None:
                    self._slot = slot
                    self._granted_at = now
                    self._outcome = None
                    self._state = _HELD
                    core.granted += 1
                    if now >= core.next_mark:
                        core.mark(now)
                    return self
            try:
                usual = 0 < cost <= sched.max_cost
            except TypeError:
                usual = False
        else:
            if self._state != _PENDING:
                raise RuntimeError("a Lease can be entered only once; call pool.lease() again")
            usual = False
        if not usual:
            # First use, a timeout of 0 or an odd one, an odd cost, a closed pool, a
            # shared backend: the careful path checks everything, may grant at once...
            if core.backend is not None:
                return await self._shared()
            now, slot, _ = core.prepare(self._cost, timeout)
            if slot is not None:
                self._slot = slot
                self._granted_at = now
                self._outcome = None
                self._state = _HELD
                return self
            sched = core.sched
            cost = self._cost
        # ... or it waits in the pool's queue until the dispatcher resolves its entry's
        # future with a token, an error, or a timeout (here, not in a PoolCore method:
        # a frame less for every waiting lease).
        queued: Queued = _new(Queued)  # no __init__ frames; the grant sets the rest
        queued.cost = cost
        queued.deadline = deadline = _INF if timeout is None else now + timeout
        queued.enqueued_at = now
        queued.live = True
        queued.slot = None
        queued.timeout = timeout
        fut: Future[None] = _Future()  # the running loop's, the pool's: no keyword to parse
        queued.fut = fut
        if sched.enqueue(queued):
            core.dispatch()
        if deadline < core.timer_at:
            core.arm(deadline)
        try:
            await fut
        except BaseException:
            core.abandon(queued)
            raise
        self._slot = queued.slot  # type: ignore[assignment]
        self._granted_at = queued.granted_at
        self._enqueued_at = now
        self._outcome = None
        self._state = _HELD
        return self

    async def _shared(self) -> Lease:
        """A pool with a shared backend: the backend decides, and queues the lease."""
        queued = Queued(self._cost, _INF, 0.0, self._timeout)
        await self._core.backend.acquire(queued)  # type: ignore[union-attr]
        return self._take(queued)

    def _take(self, queued: Queued) -> Lease:
        """Hold the token granted to ``queued``."""
        self._slot = queued.slot  # type: ignore[assignment]
        self._granted_at = queued.granted_at
        self._enqueued_at = queued.enqueued_at
        self._outcome = None
        self._state = _HELD
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # (A coroutine, though nothing here waits: returning a future already done
        # measured ~420 instructions less a lease, but asyncio.gather or wait_for on it
        # then failed, as the reviewer of that change showed.)
        if self._state == _HELD:
            self._state = _DONE
            slot = self._slot
            outcome = self._outcome
            if (
                outcome is None
                and exc_type is None
                and slot.proven
                and slot.indexed
                and self._core.backend is None
            ):
                # The common case, inlined: fine, and the token stays schedulable.
                slot.ok += 1
                slot.backoff = 0.0
                slot.in_flight -= 1
            else:
                if outcome is None:
                    outcome = Verdict.SERVER_ERROR if exc_type is not None else _OK
                self._core.release(self._held(), outcome)

    def __repr__(self) -> str:
        state = ("pending", "held", "done")[self._state]
        who = f" {self._slot.name}" if self._state != _PENDING else ""
        return f"<Lease{who} cost={self._cost:g} {state}>"


def new_lease(core: PoolCore, cost: float, timeout: float | None) -> Lease:
    """``Lease(core, cost, timeout)``, without the ``__init__`` frame (``pool.lease``)."""
    lease: Lease = _new(Lease)
    lease._core = core
    lease._cost = cost
    lease._timeout = timeout
    lease._state = _PENDING
    return lease


class VectorLease(Lease):
    """A lease of a :class:`~aurora_async.Costs` (several resources): the scheduler's
    fast path for it is :meth:`~.vector.VectorTakes.try_take_vector`."""

    __slots__ = ()

    _try = staticmethod(Scheduler.try_take_vector)  # type: ignore[assignment]  # (a Costs)


def new_vector_lease(core: PoolCore, cost: Costs, timeout: float | None) -> Lease:
    """:func:`new_lease` for a cost of several resources."""
    lease: Lease = _new(VectorLease)
    lease._core = core
    lease._cost = cost
    lease._timeout = timeout
    lease._state = _PENDING
    return lease


def lease_slot(lease: Lease) -> Slot | None:
    """The token a lease holds (for the package's own layers: the HTTP retry loop)."""
    return None if lease._state == _PENDING else lease._slot


class RetryLease(Lease):
    """A lease for another attempt of a call that failed on ``avoid``'s token: it goes
    to another token if one can fire now, else (like any lease) to the soonest, which
    may be ``avoid`` again. Waiting, it is served in turn like any lease."""

    __slots__ = ("_avoid",)

    def __init__(
        self, core: PoolCore, cost: float, timeout: float | None, avoid: Slot | None
    ) -> None:
        super().__init__(core, cost, timeout)
        self._avoid = avoid

    async def __aenter__(self) -> Lease:
        avoid = self._avoid
        if avoid is not None and self._state == _PENDING:
            taken = self._core.take_other(self._cost, self._timeout, avoid)
            if taken is not None:
                self._granted_at = taken[0]
                self._slot = taken[1]
                self._outcome = None
                self._state = _HELD
                return self
        return await super().__aenter__()
