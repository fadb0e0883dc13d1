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

Deadlines hold only waiting leases: ``_timed`` maps each deadline to the leases waiting
with it (in arrival order), and ``_deadlines`` is a heap of those deadlines, bare floats,
each pushed once when its first lease arrives. A lease leaving the queue (granted,
expired, failed or cancelled) leaves ``_timed`` at once; the heap forgets a deadline
lazily (popped when it is on top, or all at once when the heap is rebuilt), so between
calls ``len(_deadlines) <= 2 * len(_timed) + DEADLINE_SLACK``. The one timer expires
every lease whose deadline passed in one batch (``_expire``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from heapq import heapify, heappop, heappush
from itertools import count

from .costs import Costs, cheaper
from .slot import INF, Waiter

#: Deadlines the heap may hold beyond twice those with a waiting lease (stale ones,
#: forgotten at the next rebuild), so that a rebuild costs O(1) per lease amortised.
DEADLINE_SLACK = 64


class WaiterQueue:
    """The waiters in arrival order. A base of the scheduler, which serves them."""

    def __init__(self) -> None:
        self.waiting = 0  # live waiters in the queue
        self._queue: deque[Waiter] = deque()
        #: A heap of the deadlines in ``_timed``, and stale ones (see the module's notes).
        self._deadlines: list[float] = []
        #: Deadline -> the leases waiting until it, in arrival order (a dict as a set).
        self._timed: dict[float, dict[Waiter, None]] = {}
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
            if deadline < INF:
                sharing = self._timed.get(deadline)
                if sharing is None:
                    self._time(waiter, deadline)
                else:
                    sharing[waiter] = None  # _time, inlined for a deadline others share
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
        """A lease waits until ``deadline``: it joins the deadlines."""
        same = self._timed.get(deadline)
        if same is None:
            self._timed[deadline] = {waiter: None}
            heappush(self._deadlines, deadline)
        else:
            same[waiter] = None

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
            self._untime(waiter)

    def _untime(self, waiter: Waiter) -> None:
        """A waiting lease with a deadline left the queue: it leaves the deadlines."""
        deadline = waiter.deadline
        same = self._timed[deadline]
        del same[waiter]
        if not same:
            self._forget_deadline(deadline)

    def _forget_deadline(self, deadline: float) -> None:
        """The last lease waiting until ``deadline`` left the queue."""
        timed = self._timed
        del timed[deadline]
        heap = self._deadlines
        if heap[0] == deadline:
            heappop(heap)  # the usual case: the earliest deadline's leases go first
        if len(heap) > 2 * len(timed) + DEADLINE_SLACK:
            self._rebuild_deadlines()

    def _rebuild_deadlines(self) -> None:
        """Forget the stale deadlines: the heap holds those of waiting leases only."""
        heap = self._deadlines
        heap[:] = self._timed
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
        """Drop the waiters whose deadline passed by ``now`` into ``expired``; returns the
        next deadline (``inf``: none)."""
        heap = self._deadlines
        timed = self._timed
        while heap:
            deadline = heap[0]
            if deadline > now and deadline in timed:
                break
            heappop(heap)  # passed, or stale
            same = timed.pop(deadline, None) if deadline <= now else None
            if same is not None:
                for waiter in same:  # in arrival order
                    self._leave(waiter)
                    expired.append(waiter)
        if len(heap) > 2 * len(timed) + DEADLINE_SLACK:
            self._rebuild_deadlines()
        return heap[0] if heap else INF

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
