"""This worker's queue of waiters and its one timer.

Waiters queue here in arrival order (the outbox) until a reserve call takes them; one
holding a reservation waits on the timeline for it to come due and is granted then; one
that only waits for this worker's in-flight caps is blocked until a lease ends. Each
waiter is a :class:`~.waiters.Ticket`; ``waiters.py`` has its states.

A Redis reservation that comes due when Redis has not answered lately (``fresh``) is
*held* until a call confirms Redis is there (``confirm``): ``failover.py`` says why.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import TYPE_CHECKING

from .._core.costs import scope_of
from .._core.scheduler import EPS, Slot
from .._errors import LeaseTimeout, lease_timeout_error
from .context import Context
from .waiters import (
    BLOCKED,
    DEADLINE,
    DONE,
    DUE,
    GRANTED,
    LIVE,
    QUEUED,
    RESERVED,
    SENT,
    Ticket,
    Timeline,
)

if TYPE_CHECKING:
    from .._pool.core import Queued

INF = float("inf")


def fail(ticket: Ticket, error: BaseException) -> None:
    ticket.state = DONE
    if not ticket.fut.done():
        ticket.fut.set_exception(error)


def timeout_error(t: Ticket, soonest: float | None) -> LeaseTimeout:
    if soonest is None:
        why = "every token this worker may use is at its in-flight cap"
    else:
        why = f"the soonest token can take it in {soonest:.3f}s"
    return lease_timeout_error(t.cost, t.lease.timeout or 0.0, why)


def cooled_until(slot: Slot, cost: float) -> float:
    """Until when ``slot`` cools for a lease of ``cost``: the token's cooldown, or its
    scope's if later (as this worker knows them)."""
    until = slot.cool_until
    scope = scope_of(cost)
    if scope is not None and slot.scope_cool:
        until = max(until, slot.scope_cool.get(scope, -INF))
    return until


class LocalQueue:
    """This worker's waiters: the FIFO outbox, the batch at Redis, the blocked, and the
    timeline of reservations coming due (one timer).

    :param kick: make sure a reserve call will take what is in the outbox.
    :param give_back: return the reservation a ticket holds (in Redis or locally).
    :param fresh: whether a Redis reservation may be granted at a time without asking
        Redis first.
    :param confirm: ask Redis (a reserve call, even with nothing to reserve); the held
        reservations are granted when it answers (:meth:`release`).
    """

    __slots__ = (
        "_confirm",
        "_ctx",
        "_fresh",
        "_give_back",
        "_kick",
        "_next_seq",
        "blocked",
        "held",
        "outbox",
        "pending",
        "sent",
        "timeline",
    )

    def __init__(
        self,
        ctx: Context,
        kick: Callable[[], None],
        give_back: Callable[[Ticket], None],
        fresh: Callable[[float], bool],
        confirm: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._kick = kick
        self._give_back = give_back
        self._fresh = fresh
        self._confirm = confirm
        self._next_seq = count().__next__
        self.outbox: deque[Ticket] = deque()  #: queued, in arrival order
        self.sent: list[Ticket] = []  #: in the reserve call in flight
        self.blocked: list[Ticket] = []  #: waiting for a lease of this worker to end
        self.held: list[Ticket] = []  #: Redis reservations due, waiting for a confirmation
        self.timeline = Timeline(self._on_timer)
        self.pending: dict[str, int] = {}  #: token id -> reservations not yet granted

    def add(self, lease: Queued, fut: asyncio.Future[None], deadline: float) -> Ticket:
        ticket = Ticket(lease, fut, deadline, self._next_seq())
        self.outbox.append(ticket)
        return ticket

    def tickets(self) -> tuple[Ticket, ...]:
        """Every ticket in the queue (a ticket may appear twice)."""
        return (*self.outbox, *self.sent, *self.blocked, *self.held, *self.timeline.tickets())

    def holding(self) -> list[Ticket]:
        """Every ticket holding a reservation not granted yet (on the timeline or held)."""
        found = [t for _, t in self.timeline.reserved()]
        return found + [t for t in self.held if t.state == RESERVED]

    @property
    def waiting(self) -> int:
        """Waiters of this worker (queued, at Redis, or for their reservation)."""
        tickets = {id(t): t for t in self.tickets()}
        return sum(1 for t in tickets.values() if t.state in LIVE)

    def budget(self, tid: str, slot: Slot) -> int:
        """How many more leases this worker may reserve on ``slot`` now (its in-flight
        cap, less leases in flight and reservations not yet due)."""
        if not slot.usable:
            return 0
        left: int = slot.cap - slot.in_flight - self.pending.get(tid, 0)
        return left

    def front(self, tickets: list[Ticket]) -> None:
        """Put ``tickets`` back at the head of the queue, oldest first."""
        if tickets:
            tickets.sort(key=lambda t: t.seq)
            self.outbox.extendleft(reversed(tickets))
            self._kick()

    def take_batch(self, max_batch: int) -> list[Ticket]:
        """Up to ``max_batch`` queued tickets for one reserve call, in order (those no
        usable token can take fail now)."""
        port = self._ctx.port
        max_cost = port.max_cost
        batch: list[Ticket] = []
        out = self.outbox
        while out and len(batch) < max_batch:
            t = out.popleft()
            if t.state != QUEUED:
                continue
            if t.fut.done():
                t.state = DONE
            elif t.cost > max_cost:
                fail(t, port.no_tokens(t.cost))
            else:
                t.state = SENT
                batch.append(t)
        return batch

    # -- a ticket's way ------------------------------------------------------------------

    def reserved(self, ticket: Ticket, slot: Slot, tid: str, delay: float, now: float) -> None:
        """``ticket`` holds a reservation on ``slot``, due in ``delay`` seconds."""
        ticket.state = RESERVED
        ticket.slot = slot
        ticket.tid = tid
        self.pending[tid] = self.pending.get(tid, 0) + 1
        if delay <= 0:
            if ticket.local or self._fresh(now):
                self.grant(ticket, now)
            else:  # (a reply slower than the timeout)
                ticket.due = now
                self.held.append(ticket)
                self._confirm()
            return
        ticket.due = now + delay
        self.timeline.add(self._ctx.port.loop(), ticket.due, DUE, ticket)  # type: ignore[arg-type]

    def grant(self, ticket: Ticket, now: float) -> None:
        if ticket.fut.done():  # its task is being cancelled and will not take it
            self.cancel_reservation(ticket)
            return
        slot = ticket.slot
        assert slot is not None
        tid = ticket.tid
        self.pending[tid] = self.pending.get(tid, 1) - 1
        ticket.state = GRANTED
        self._ctx.port.grant(ticket.lease, slot, ticket.cost, now)
        ticket.fut.set_result(None)

    def block(self, ticket: Ticket) -> None:
        """Wait for one of this worker's leases to end (its in-flight caps are full)."""
        ticket.state = BLOCKED
        self.blocked.append(ticket)
        if ticket.deadline < INF:
            loop = self._ctx.port.loop()
            self.timeline.add(loop, ticket.deadline, DEADLINE, ticket)  # type: ignore[arg-type]

    def wake(self, slot: Slot | None, n: int) -> None:
        """Send up to ``n`` blocked waiters (that ``slot`` could serve) to try again."""
        woken: list[Ticket] = []
        keep: list[Ticket] = []
        for t in self.blocked:
            if t.state != BLOCKED:
                continue
            if len(woken) < n and (slot is None or t.cost <= slot.max_cost):
                t.state = QUEUED
                woken.append(t)
            else:
                keep.append(t)
        self.blocked = keep
        self.front(woken)

    def cancel_reservation(self, ticket: Ticket) -> None:
        """Drop a reservation that was not granted, and give it back."""
        tid = ticket.tid
        self.pending[tid] = self.pending.get(tid, 1) - 1
        ticket.state = DONE
        self._give_back(ticket)
        if self.blocked and ticket.slot is not None:
            self.wake(ticket.slot, 1)

    def abandon(self, ticket: Ticket) -> None:
        """The waiting task left (cancelled, or its future failed)."""
        state = ticket.state
        if state == RESERVED:
            self.cancel_reservation(ticket)
        elif state == GRANTED:
            # Granted, but cancelled before it could resume: give everything back.
            ticket.state = DONE
            slot = ticket.slot
            assert slot is not None
            self._ctx.port.refund(ticket.lease, slot, ticket.cost)
            self._give_back(ticket)
            if self.blocked:
                self.wake(slot, 1)
        elif state != SENT:  # a sent one learns it from its future when the reply comes
            ticket.state = DONE

    def _on_timer(self) -> None:
        """The one timer: grant every reservation that is due, expire blocked waiters."""
        now = self._ctx.now()
        limit = now + EPS
        requeue: list[Ticket] = []
        fresh = self._fresh(now)
        for when, kind, t in self.timeline.pop_due(limit):
            if kind == DUE:
                if t.state != RESERVED or t.due != when:
                    continue
                if not t.local and not fresh:
                    self.held.append(t)  # granted once Redis answers (or served locally)
                    continue
                self._due(t, now, requeue)
            elif t.state == BLOCKED:
                fail(t, timeout_error(t, None))
        self.front(requeue)
        self.timeline.rearm(self._ctx.port.loop())  # type: ignore[arg-type]
        if self.held:
            self._confirm()

    def _due(self, t: Ticket, now: float, requeue: list[Ticket]) -> None:
        """Grant ``t``'s reservation, which is due, unless its token went away or cools."""
        slot = t.slot
        assert slot is not None
        if not slot.usable or cooled_until(slot, t.cost) > now + EPS:
            # Disabled, removed or cooled since it was reserved: try again.
            self.cancel_reservation(t)
            t.state = QUEUED
            requeue.append(t)
            return
        self.grant(t, now)

    def release(self) -> None:
        """Redis has just answered: grant the held reservations (if the call was sent
        recently enough, else ask again)."""
        now = self._ctx.now()
        if not self._fresh(now):
            self._confirm()
            return
        held, self.held = self.held, []
        requeue: list[Ticket] = []
        for t in held:
            if t.state == RESERVED:
                self._due(t, now, requeue)
        self.front(requeue)

    # -- the pool's tokens changed, the backend closes -----------------------------------

    def tokens_changed(self) -> None:
        """Send reservations on tokens no longer usable back to the queue, fail waiters
        no token can take any more, and let the blocked try again."""
        port = self._ctx.port
        requeue = []
        for t in self.holding():
            if not t.slot.usable:  # type: ignore[union-attr]
                self.cancel_reservation(t)
                t.state = QUEUED
                requeue.append(t)
        max_cost = port.max_cost
        for t in (*self.outbox, *self.blocked, *requeue):
            if t.state in (QUEUED, BLOCKED) and t.cost > max_cost:
                fail(t, port.no_tokens(t.cost))
        self.front([t for t in requeue if t.state == QUEUED])
        self.wake(None, len(self.blocked))

    def close(self, error: BaseException) -> None:
        """Fail every waiter with ``error``; give reservations back."""
        for t in self.tickets():
            state = t.state
            if state == RESERVED:
                self.cancel_reservation(t)  # queues its give-back
            if state in LIVE:
                fail(t, error)
        self.outbox.clear()
        self.sent = []
        self.blocked.clear()
        self.held.clear()
        self.timeline.close()
