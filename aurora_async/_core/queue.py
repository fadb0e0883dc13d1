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

Deadlines: ``_timed`` maps each deadline to the lease waiting until it (or, when several
share it, a dict of them in arrival order), and the deadlines themselves, bare floats, sit
in a FIFO when they come in order (the usual: leases with the same timeout) or else in a
heap beside it (as ``lanes.py`` keeps keys), so the earliest is the lower of two fronts.
A lease costs one float pushed and one map entry; a grant, one ``dict.pop`` (no object
that outlives the lease: nothing for the garbage collector to chase). A deadline no
lease waits for any more stays behind, stale, until it reaches a front (each dispatch
drops those in front, so the next deadline is a waiting lease's) or the floats pass
``2 * len(_timed) + DEADLINE_SLACK`` (then only the live ones are kept, in C). The one
timer expires every lease whose deadline passed in one batch (``_expire``), in deadline
then arrival order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from heapq import heapify, heappop, heappush
from itertools import count

from .costs import Costs, cheaper
from .slot import INF, Waiter

#: Stale deadlines kept beyond one per deadline a lease waits for (dropped all at once
#: past that), so that dropping them costs O(1) per lease amortised.
DEADLINE_SLACK = 64

#: The lease waiting until a deadline, or those (a dict as a set) when several share it.
Timed = Waiter | dict[Waiter, None]


class WaiterQueue:
    """The waiters in arrival order. A base of the scheduler, which serves them."""

    def __init__(self) -> None:
        self.waiting = 0  # live waiters in the queue
        self._queue: deque[Waiter] = deque()
        #: Deadline -> the lease(s) waiting until it (see the module's notes).
        self._timed: dict[float, Timed] = {}
        #: The deadlines in ``_timed`` (and stale ones): those that came in order, and a
        #: heap of the others.
        self._deadline_fifo: deque[float] = deque()
        self._deadline_heap: list[float] = []
        #: The FIFO's back, while it has one (cheaper to read than a deque's last item).
        self._deadline_back = -INF
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
            if deadline < INF:  # _time and _share, inlined
                timed = self._timed
                sharing = timed.setdefault(deadline, waiter)  # one float hashed, not two
                if sharing is waiter:  # its own deadline
                    fifo = self._deadline_fifo
                    if not fifo or deadline >= self._deadline_back:
                        fifo.append(deadline)
                        self._deadline_back = deadline
                    else:
                        heappush(self._deadline_heap, deadline)
                elif type(sharing) is dict:
                    sharing[waiter] = None
                else:
                    timed[deadline] = {sharing: None, waiter: None}  # type: ignore[dict-item]
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
        timed = self._timed
        if deadline in timed:
            self._share(waiter, deadline)
            return
        timed[deadline] = waiter
        fifo = self._deadline_fifo
        if not fifo or deadline >= self._deadline_back:
            fifo.append(deadline)
            self._deadline_back = deadline
        else:
            heappush(self._deadline_heap, deadline)

    def _share(self, waiter: Waiter, deadline: float) -> None:
        """``waiter`` waits until a deadline another lease waits for."""
        same = self._timed[deadline]
        if isinstance(same, dict):
            same[waiter] = None
        else:
            self._timed[deadline] = {same: None, waiter: None}

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
            self._check_deadlines()

    def _untime(self, waiter: Waiter) -> None:
        """``waiter``, which had a deadline, left the queue: it leaves ``_timed`` (its
        deadline's float stays, stale, if no other lease waits until it)."""
        deadline = waiter.deadline
        same = self._timed.pop(deadline)
        if same is not waiter:
            self._unshare(waiter, deadline, same)

    def _unshare(self, waiter: Waiter, deadline: float, same: Timed) -> None:
        """``waiter`` left the queue; ``same`` (taken out of ``_timed``) is every lease
        that waited until its deadline: the others go back."""
        assert isinstance(same, dict)
        del same[waiter]
        if same:
            self._timed[deadline] = same

    def _check_deadlines(self) -> None:
        """Keep the stale deadlines bounded: past ``len(_timed) + DEADLINE_SLACK`` of them,
        keep only those a lease waits for (in C: no Python frame per deadline)."""
        fifo = self._deadline_fifo
        heap = self._deadline_heap
        timed = self._timed
        if len(fifo) + len(heap) > 2 * len(timed) + DEADLINE_SLACK:
            fifo.clear()
            heap[:] = timed
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
        then arrival order) and the stale deadlines in front; returns the next deadline
        a lease waits for (``inf``: none)."""
        fifo = self._deadline_fifo
        heap = self._deadline_heap
        timed = self._timed
        while True:
            while fifo and fifo[0] not in timed:
                fifo.popleft()  # stale
            while heap and heap[0] not in timed:
                heappop(heap)  # stale
            if fifo:
                deadline = fifo[0]
                if heap and heap[0] < deadline:
                    deadline = heappop(heap) if heap[0] <= now else heap[0]
                elif deadline <= now:
                    fifo.popleft()
            elif heap:
                deadline = heappop(heap) if heap[0] <= now else heap[0]
            else:
                deadline = INF
            if deadline > now:
                break
            # Passed (and taken out above): every lease waiting until it expires.
            same = timed.pop(deadline)
            for waiter in same if isinstance(same, dict) else (same,):  # arrival order
                self._leave(waiter)
                expired.append(waiter)
        self._check_deadlines()
        return deadline

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
