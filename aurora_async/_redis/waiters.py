"""This worker's waiters: one ticket per lease, and one timer for all of them.

A ticket moves ``QUEUED`` (in the worker's FIFO queue) -> ``SENT`` (in a reserve call)
-> ``RESERVED`` (holds a reservation, waits for it on the timeline) -> ``GRANTED``; or
to ``BLOCKED`` (this worker's in-flight caps are full: waits for a lease to end) and
back to ``QUEUED``; and to ``DONE`` when it fails, times out or its waiter leaves.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Sequence
from heapq import heappop, heappush
from typing import TYPE_CHECKING

from .._core.costs import Costs
from .degrade import Undo

if TYPE_CHECKING:
    from .._core.scheduler import Slot
    from .._pool.core import Queued

INF = math.inf
QUEUED, SENT, BLOCKED, RESERVED, GRANTED, DONE = range(6)
#: Waiting, in any way.
LIVE = (QUEUED, SENT, BLOCKED, RESERVED)
#: What a timeline entry is for.
DUE, DEADLINE = 0, 1


class Ticket:
    """One lease waiting in this worker's queue."""

    __slots__ = (
        "at",
        "cost",
        "deadline",
        "due",
        "fut",
        "lease",
        "local",
        "seq",
        "slot",
        "state",
        "tid",
        "tries",
        "undo",
    )

    def __init__(self, lease: Queued, fut: asyncio.Future[None], deadline: float, seq: int):
        self.lease = lease
        self.fut = fut
        cost = lease.cost
        #: requests, or a ``Costs`` (several resources, or a scope)
        self.cost = cost if isinstance(cost, Costs) else float(cost)
        self.deadline = deadline  #: loop time, or inf
        self.seq = seq  #: arrival order
        self.state = QUEUED
        self.slot: Slot | None = None  #: the reservation's token
        self.tid = ""  #: ... and its id
        self.due = 0.0  #: loop time the reservation comes due
        self.undo: Sequence[str] | Undo = ()  #: what gives the reservation back
        self.at = ""  #: the reservation's server time (µs), for the audit log
        self.local = False  #: reserved on the local (degraded) limiter, not in Redis
        self.tries = 0  #: reserve calls that found no token

    def __repr__(self) -> str:
        state = ("queued", "sent", "blocked", "reserved", "granted", "done")[self.state]
        return f"<Ticket #{self.seq} cost={self.cost:g} {state}>"


class Timeline:
    """Reservations coming due and deadlines of blocked tickets, in one heap, with one
    timer armed for the earliest. Entries of tickets that moved on are dropped lazily."""

    __slots__ = ("_at", "_fire", "_heap", "_timer")

    def __init__(self, fire: Callable[[], None]) -> None:
        self._heap: list[tuple[float, int, int, Ticket]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._at = INF
        self._fire = fire

    def add(self, loop: asyncio.AbstractEventLoop, when: float, kind: int, ticket: Ticket) -> None:
        heappush(self._heap, (when, ticket.seq, kind, ticket))
        if when < self._at:
            self._arm(loop, when)

    def pop_due(self, limit: float) -> list[tuple[float, int, Ticket]]:
        """Every entry due at ``limit``: ``(when, kind, ticket)``, earliest first."""
        heap = self._heap
        due = []
        while heap and heap[0][0] <= limit:
            when, _, kind, ticket = heappop(heap)
            due.append((when, kind, ticket))
        return due

    def rearm(self, loop: asyncio.AbstractEventLoop) -> None:
        heap = self._heap
        while heap and heap[0][3].state not in (RESERVED, BLOCKED):
            heappop(heap)
        if heap:
            self._arm(loop, heap[0][0])

    def reserved(self) -> Iterator[tuple[float, Ticket]]:
        """``(due, ticket)`` of every ticket waiting for its reservation."""
        for when, _, kind, ticket in self._heap:
            if kind == DUE and ticket.state == RESERVED and ticket.due == when:
                yield when, ticket

    def tickets(self) -> Iterator[Ticket]:
        return (entry[3] for entry in self._heap)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._at = INF
        self._heap.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = when
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._at = INF
        self._fire()

    def __len__(self) -> int:
        return len(self._heap)
