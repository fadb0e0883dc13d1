"""The scheduler's waiter queue: one FIFO for the pool, split by cost for backfilling,
and the waiters' deadlines.

The head waiter gets the soonest token for its cost the moment it can fire (its
*reservation*). Waiters behind the head with a smaller cost may be served out of turn,
but only on tokens other than the head's reservation, so the head is never delayed
(EASY backfilling): nothing is idle while someone waits, and a costly lease is overtaken
at most until its own reservation comes due. Waiters of one cost are served in order, so
backfilling looks at the queue split by cost (kept only once costs differ).

A waiter leaves the queue lazily: it is marked dead (``live = False``) and dropped when
it reaches a front, so cancelling costs O(1).

Deadlines cost a waiting lease one entry, ``(deadline, n, waiter)`` (``n``: its place
in arrival order), and a grant nothing. The entries go to a FIFO when they come in
deadline order (the usual: leases with the same timeout), else to a heap beside it (as
``lanes.py`` keeps keys), so the earliest deadline is the lower of two fronts. A lease
that leaves the queue (granted, expired, failed or cancelled) leaves its entry behind,
stale (``waiter.live`` is false): stale entries are dropped when they reach a front (the
queue's end of each dispatch drops those in front, so the next deadline is always a
waiting lease's), or all at once, in C, when there are more than ``timed +
DEADLINE_SLACK`` of them; so between calls the entries number at most ``2 * timed +
DEADLINE_SLACK``, ``timed`` being the waiting leases with a deadline. The one timer
expires every lease whose deadline passed in one batch (``_expire``), in deadline then
arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from heapq import heapify, heappop, heappush
from itertools import compress, count
from operator import attrgetter, itemgetter

from .costs import Costs, cheaper
from .slot import INF, Waiter

#: Stale deadline entries kept beyond one per waiting lease with a deadline (dropped
#: all at once past that), so that dropping them costs O(1) per lease amortised.
DEADLINE_SLACK = 64

Deadline = tuple[float, int, Waiter]  # (deadline, place in arrival order, waiter)
_waiter_of = itemgetter(2)
_live = attrgetter("live")


class WaiterQueue:
    """The waiters in arrival order. A base of the scheduler, which serves them."""

    def __init__(self) -> None:
        self.waiting = 0  # live waiters in the queue
        self._queue: deque[Waiter] = deque()
        #: Deadline entries in deadline order, and those that came out of it (a heap);
        #: stale ones included (see the module's notes).
        self._deadline_fifo: deque[Deadline] = deque()
        self._deadline_heap: list[Deadline] = []
        self.timed = 0  # live waiters with a deadline
        self._next_arrival = count().__next__
        self._costs: dict[float, int] = {}  # cost -> live waiters asking it
        #: The queue split by cost (kept once costs differ: backfilling needs it).
        self._by_cost: dict[float, deque[Waiter]] | None = None
        self._next_order = count().__next__

    def enqueue(self, waiter: Waiter) -> bool:
        """Queue ``waiter``. Returns whether the shell must dispatch now (the waiter is
        the new head, or may be served out of turn)."""
        queue = self._queue
        cost = waiter.cost
        costs = self._costs
        known = costs.get(cost)
        by_cost = self._by_cost
        if known is not None and by_cost is None:
            # The usual: every waiter asks this cost (the queue is not split), so the
            # head does too, and this one cannot be served before it.
            queue.append(waiter)
            self.waiting += 1
            costs[cost] = known + 1
            deadline = waiter.deadline
            if deadline < INF:  # _time, inlined
                entry = (deadline, self._next_arrival(), waiter)
                fifo = self._deadline_fifo
                if not fifo or deadline >= fifo[-1][0]:
                    fifo.append(entry)
                else:
                    heappush(self._deadline_heap, entry)
                self.timed += 1
            return False
        if self.waiting:
            head = queue[0]
            head_cost = head.cost if head.live else self._head_cost()
            dispatch = (
                head_cost is None
                or cost < head_cost
                or ((type(cost) is Costs or type(head_cost) is Costs) and cheaper(cost, head_cost))
            )
        else:
            dispatch = True
        queue.append(waiter)
        self.waiting += 1
        costs[cost] = (known or 0) + 1
        if by_cost is not None:
            waiter.order = self._next_order()
            same = by_cost.get(cost)
            if same is None:
                same = by_cost[cost] = deque()
            same.append(waiter)
        elif known is None and len(costs) > 1:
            self._split_by_cost()  # the first time costs differ: backfilling needs it
        deadline = waiter.deadline
        if deadline < INF:
            self._time(waiter, deadline)
        return dispatch

    def _time(self, waiter: Waiter, deadline: float) -> None:
        """A lease waits until ``deadline``: it joins the deadlines. (Only leaving the
        queue makes entries stale; each way out checks their number.)"""
        entry = (deadline, self._next_arrival(), waiter)
        fifo = self._deadline_fifo
        if not fifo or deadline >= fifo[-1][0]:
            fifo.append(entry)
        else:
            heappush(self._deadline_heap, entry)
        self.timed += 1

    def _split_by_cost(self) -> dict[float, deque[Waiter]]:
        by_cost: dict[float, deque[Waiter]] = {}
        for waiter in self._queue:
            if waiter.live:
                waiter.order = self._next_order()
                by_cost.setdefault(waiter.cost, deque()).append(waiter)
        self._by_cost = by_cost
        return by_cost

    def _head_cost(self) -> float | None:
        queue = self._queue
        while queue and not queue[0].live:
            queue.popleft()
        return queue[0].cost if queue else None

    def cancel(self, waiter: Waiter) -> bool:
        """A waiter left the queue (cancelled). Returns whether the shell must dispatch
        (it was the head, so the next one may be servable now)."""
        if not waiter.live:
            return False
        was_head = bool(self._queue) and self._queue[0] is waiter
        self._drop(waiter)
        return was_head

    def _drop(self, waiter: Waiter) -> None:
        """``waiter`` leaves the queue (granted, expired, failed or cancelled)."""
        self._leave(waiter)
        if waiter.deadline < INF:
            self._untime(1)

    def _untime(self, leaving: int) -> None:
        """``leaving`` waiting leases with a deadline left the queue: their entries stay,
        stale, until they reach a front or are too many."""
        timed = self.timed = self.timed - leaving
        if len(self._deadline_fifo) + len(self._deadline_heap) > 2 * timed + DEADLINE_SLACK:
            self._drop_stale_deadlines()

    def _drop_stale_deadlines(self) -> None:
        """Keep the entries of waiting leases only (in C: no Python frame per entry)."""
        fifo = self._deadline_fifo
        self._deadline_fifo = deque(compress(fifo, map(_live, map(_waiter_of, fifo))))
        heap = self._deadline_heap
        heap[:] = compress(heap, map(_live, map(_waiter_of, heap)))
        heapify(heap)

    def _leave(self, waiter: Waiter) -> None:
        """The queue's bookkeeping of :meth:`_drop`, all but the deadlines."""
        waiter.live = False
        self.waiting -= 1
        costs = self._costs
        left = costs[waiter.cost] - 1
        if left:
            costs[waiter.cost] = left
        else:
            del costs[waiter.cost]
        if self._by_cost is not None:
            self._unqueue_by_cost(waiter.cost)

    def _unqueue_by_cost(self, cost: float) -> None:
        """A waiter of ``cost`` left the queue: drop the dead front of its per-cost queue
        (it is usually that front: waiters of one cost go in order), so the split queue
        holds no more than the queue does; and forget the split once costs are uniform."""
        by_cost = self._by_cost
        assert by_cost is not None
        if len(self._costs) <= 1:
            self._by_cost = None
            return
        same = by_cost.get(cost)
        if same is not None:
            while same and not same[0].live:
                same.popleft()
            if not same:
                del by_cost[cost]

    def _expire(self, now: float, expired: list[Waiter]) -> float:
        """Drop the waiters whose deadline passed by ``now`` into ``expired`` (in deadline
        then arrival order) and the stale entries in front; returns the next deadline of
        a waiting lease (``inf``: none)."""
        fifo = self._deadline_fifo
        heap = self._deadline_heap
        left = 0
        while True:
            if fifo:
                entry = fifo[0]
                in_heap = bool(heap) and heap[0] < entry
                if in_heap:
                    entry = heap[0]
            elif heap:
                entry = heap[0]
                in_heap = True
            else:
                break
            waiter = entry[2]
            if waiter.live:
                if entry[0] > now:
                    break
                self._leave(waiter)
                expired.append(waiter)
                left += 1
            if in_heap:
                heappop(heap)
            else:
                fifo.popleft()
        self._untime(left)
        if fifo:
            return heap[0][0] if heap and heap[0] < fifo[0] else fifo[0][0]
        return heap[0][0] if heap else INF

    def _drop_costlier(self, max_cost: float) -> list[Waiter]:
        """Drop and return the waiters asking more than ``max_cost``."""
        failed = [w for w in self._queue if w.live and w.cost > max_cost]
        for waiter in failed:
            self._drop(waiter)
        return failed

    def waiters(self) -> Iterable[Waiter]:
        return (w for w in self._queue if w.live)


_NUMBERS = (int, float)  # built once: ``int | float`` would build a union on every call


def check_timeout(timeout: object) -> None:
    """Raise for a lease ``timeout`` that is neither ``None`` nor seconds >= 0."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, _NUMBERS):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if not timeout >= 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
