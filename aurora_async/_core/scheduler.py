"""The scheduler as pure logic: token slots, the soonest-fire choice and the waiter queue.

Nothing here awaits, sleeps or reads a clock: every decision takes ``now`` and returns
what is due, and the asyncio shell (``aurora_async._pool``) turns those decisions into
resolved futures and one timer.

The parts, each in its own module:

- ``slot.py``: :class:`Slot` (one token: windows, state, counters), :class:`Waiter`;
- ``lanes.py`` and ``index.py``: the index of slots by when each can next fire, and the
  search for the token that can fire a cost soonest (:meth:`TokenIndex.best`);
- ``tokenset.py``: tokens joining, leaving, cooling, disabled; the one cost check;
- ``queue.py``: the FIFO of waiters, split by cost for backfilling, and deadlines;
- here: grants, refunds and releases (the one place their bookkeeping is written) and
  the dispatch that serves the queue.

The lease paths are inlined for speed (``try_take``, ``_serve_usual``, ``Slot.ready``,
``Slot.take``); ``tests/core/test_inlined.py`` checks every inlined copy of the bucket
arithmetic and of the bookkeeping against the reference on random histories.
"""

from __future__ import annotations

from .costs import Costs, cheaper, scope_of
from .lanes import Entry, Lane, top_of
from .limits import REQUESTS
from .queue import WaiterQueue, check_timeout
from .slot import EPS, INF, UNCAPPED, Slot, TokenState, Waiter, put_state, state_of
from .tokenset import TokenSet
from .vector import VectorTakes
from .vector import settle as settle_vector
from .vector import take as take_vector

_UNCAPPED = UNCAPPED  # the name other modules imported before the split
_NO_PARTS: dict[str, float] = {}  # the other resources of a plain number (read only)

__all__ = [
    "EPS",
    "INF",
    "UNCAPPED",
    "_UNCAPPED",
    "Scheduler",
    "Slot",
    "TokenState",
    "Waiter",
    "check_timeout",
]


class Scheduler(TokenSet, WaiterQueue, VectorTakes):
    """Token slots, the waiter queue and the decisions between them."""

    def __init__(self, *, trial_in_flight: int | None = 1) -> None:
        TokenSet.__init__(self, trial_in_flight=trial_in_flight)
        WaiterQueue.__init__(self)

    # -- grant and refund bookkeeping: the one place ---------------------------------

    def count_grant(self, slot: Slot, cost: float) -> None:
        """Count a lease of ``cost`` on ``slot`` (in flight, leases, units). A shared-state
        backend, whose limiter lives elsewhere, calls this alone; :meth:`grant` calls it
        after taking the cost from the slot's own windows."""
        slot.in_flight += 1
        slot.leases += 1
        slot.units += cost
        if type(cost) is Costs:
            slot.count_usage(cost)

    def uncount_grant(self, slot: Slot, cost: float) -> bool:
        """Undo :meth:`count_grant` for a lease never used. Returns whether ``slot`` is
        still in service (a removed one is forgotten once idle)."""
        slot.in_flight -= 1
        slot.leases -= 1
        slot.units -= cost
        if type(cost) is Costs:
            slot.count_usage(cost, -1.0)
        if slot.removed:
            self.forget_if_idle(slot)
            return False
        return True

    def count_release(self, slot: Slot) -> bool:
        """A lease of ``slot`` ended: one fewer in flight. Returns whether ``slot`` is
        still in service (a removed one is forgotten once idle)."""
        slot.in_flight -= 1
        if slot.removed:
            self.forget_if_idle(slot)
            return False
        return True

    def grant(self, slot: Slot, cost: float, now: float, waiter: Waiter | None = None) -> None:
        """Lease ``slot`` for ``cost`` at ``now``: take the cost from its windows, count
        the lease and re-index the slot. With ``waiter``, record the grant on it, with
        what :meth:`refund` needs to give it back exactly."""
        if waiter is not None:
            waiter.slot = slot
            waiter.granted_at = now
            waiter.undo = state_of(slot)
        key = slot.take(cost, now)
        self.count_grant(slot, cost)
        self.reindex(slot, key)
        if waiter is not None:
            waiter.epoch = slot.epoch

    def refund(
        self, slot: Slot, cost: float, granted_at: float, now: float, waiter: Waiter | None = None
    ) -> bool:
        """A granted lease was never used (its waiter was cancelled before it resumed):
        give its capacity back. Returns whether waiters may now be served.

        When nothing touched the token's windows since this grant (the usual case: the
        waiter is cancelled in the same loop turn), their state before the grant comes
        back exactly, down to how long each bucket had been empty; otherwise only the part
        of the cost that cannot have drained since comes back (``Window.give_back``)."""
        if not (waiter is not None and waiter.epoch == slot.epoch and put_state(slot, waiter.undo)):
            for w in slot.lease_windows(scope_of(cost)):
                w.give_back(slot.part(w, cost), granted_at, now)
        slot.epoch += 1
        if not self.uncount_grant(slot, cost):
            return False
        self.reindex(slot)
        return True

    def settle(
        self,
        slot: Slot,
        reserved: float,
        actual: float,
        now: float,
        granted_at: float | None = None,
    ) -> bool:
        """A lease of ``slot`` that took ``reserved`` (at ``granted_at``) turned out to
        cost ``actual``: every window takes the difference of its part at ``now``. Less
        than reserved comes back at once (never below an empty bucket; never to a quota
        period after the grant's); more is charged on top, even past the burst: debt,
        which keeps the token from firing until it has drained. Returns
        whether capacity came back (waiters may now be served)."""
        freed = False
        requests = float(actual) - float(reserved)
        mine = actual.parts if type(actual) is Costs else _NO_PARTS
        before = reserved.parts if type(reserved) is Costs else _NO_PARTS
        scope = reserved.scope if type(reserved) is Costs else scope_of(reserved)
        key: float | None = None
        if slot.vector is not None and scope is None:  # plain buckets: one pass
            key, freed = settle_vector(slot, reserved, actual, now)
        for w in () if key is not None else slot.lease_windows(scope, now):
            wscope = w.scope
            if wscope is not None and wscope != scope:
                continue  # another scope's window: this lease took nothing from it
            unit = w.unit
            delta = requests if unit == REQUESTS else mine.get(unit, 0.0) - before.get(unit, 0.0)
            if delta:
                w.adjust(delta, now, granted_at)
                freed = freed or delta < 0.0
        slot.units += requests
        if before or mine:  # count_usage(reserved, -1), then count_usage(actual)
            usage = slot.tally  # (the run, if any, stays a run: added in when read)
            if usage is None:
                usage = slot.tally = {}
            for unit, units in mine.items():
                usage[unit] = usage.get(unit, 0.0) + units - before.get(unit, 0.0)
            for unit, units in before.items():
                if unit not in mine:
                    usage[unit] = usage.get(unit, 0.0) - units
        slot.epoch += 1  # a refund must not undo this
        if slot.indexed:
            fifo = slot.lane.fifo
            if fifo and fifo[-1][1] == slot.seq:
                if key is None:
                    key = slot.ready(slot.key_cost)
                if len(fifo) == 1 or key >= fifo[-2][0]:
                    # The usual: it was the last leased. Its entry moves in place (as
                    # reindex would file it, leaving no stale entry; its number kept
                    # for a later key, see lanes.py).
                    seq = slot.seq if key > fifo[-1][0] else self._next_seq()
                    fifo[-1] = (key, seq, slot)
                    slot.seq = seq
                    return freed
            self.reindex(slot, key)
        return freed

    def release(self, slot: Slot) -> bool:
        """A lease of ``slot`` ended. Returns whether waiters may now be served."""
        if not self.count_release(slot):
            return False
        return self._reinstate(slot)

    # -- leases at once ----------------------------------------------------------------

    def try_take(self, cost: float, now: float) -> Slot | None:
        """The fast path: lease a token at once if one can fire ``cost`` now and nobody
        waits (waiters come first). ``None`` otherwise, also for an invalid cost."""
        if self.waiting:
            return None
        lanes = self._lane_list
        if len(lanes) == 1:
            lane = lanes[0]
            fifo = lane.fifo
            if fifo and not lane.heap:
                top = fifo[0]
                slot = top[2]
                windows = slot.windows
                if slot.seq != top[1] or top[0] > now + EPS:
                    pass  # not current, or not due: Lane.top and the general path below
                elif len(windows) == 1 and cost == slot.key_cost and slot.in_flight + 1 < slot.cap:
                    # The commonest lease of all, inlined end to end (Lane.top, Slot.take,
                    # count_grant, Lane.retire and Lane.push): one lane, its front fires now.
                    w = windows[0]
                    rate = w.rate
                    elapsed = now - w._last_check
                    level = w._level
                    if elapsed > 0.0:
                        level -= elapsed * rate
                        if level < 0.0:
                            level = 0.0
                        w._last_check = now
                    level += cost
                    w._level = level
                    slot.epoch += 1
                    key = w._last_check + (level + cost - w.burst) / rate
                    if slot.cool_until > key:
                        key = slot.cool_until
                    slot.in_flight += 1
                    slot.leases += 1
                    slot.units += cost
                    fifo.popleft()
                    seq = top[1]  # its old entry is gone: it keeps its number for a later key
                    if key <= top[0]:
                        seq = slot.seq = self._next_seq()
                    if not fifo or key >= fifo[-1][0]:
                        fifo.append((key, seq, slot))
                    else:
                        lane.push((key, seq, slot))
                    return slot
            found = lane.top()  # (a vector on plain buckets: _take_top, vector.take)
        else:
            found = top_of(lanes)
        if found is not None and found[0] <= now + EPS and self._take_top(found, cost, now):
            return found[2]
        return self._take_best(cost, now, None)

    def _take_top(self, top: Entry[Slot], cost: float, now: float) -> bool:
        """Lease the top of the index, due at ``now``, if it fires ``cost`` now (``grant``
        inlined: the hot path of every lease with several tiers or windows, or of several
        resources). A current entry's key is exactly when its slot can fire its key cost,
        so for that cost (the usual one) the top answers without recomputing anything. A
        mixed slot's key bounds when it fires any cost (a vector): if the top fires a
        valid one now, it is what best() would choose (the lowest key)."""
        due, seq, slot = top
        if type(cost) is Costs and slot.vector is not None:
            key = take_vector(slot, cost, now)
            if key is None:
                return False
        elif cost == slot.key_cost or (
            slot.mixed and 0.0 < cost <= slot.max_cost and slot.ready(cost) <= now + EPS
        ):
            key = slot.take(cost, now)
            slot.in_flight += 1  # count_grant, inlined
            slot.leases += 1
            slot.units += cost
            if type(cost) is Costs:
                slot.count_usage(cost)
        else:
            return False
        lane = slot.lane
        gone = lane.retire(seq) is not None
        if slot.in_flight < slot.cap:
            if not gone or key <= due:  # (else it keeps its number, see lanes.py)
                seq = slot.seq = self._next_seq()
            lane.push((key, seq, slot))
        else:
            slot.seq = -1
            slot.indexed = False
        return True

    def take_other(self, cost: float, now: float, avoid: Slot) -> Slot | None:
        """Like :meth:`try_take`, but a token other than ``avoid`` if one can fire
        ``cost`` now (a retry after ``avoid`` failed); ``avoid`` itself only if none can."""
        if self.waiting or not self.fits(cost):
            return None
        return self._take_best(cost, now, avoid) or self.try_take(cost, now)

    def _take_best(self, cost: float, now: float, avoid: Slot | None) -> Slot | None:
        """Lease the token that can fire ``cost`` soonest (not ``avoid``), if it can fire
        now; ``None`` otherwise, also for an invalid cost."""
        if not self.fits(cost):
            return None
        chosen, t = self.best(cost, now, avoid)
        if chosen is None or t > now + EPS:
            return None
        self.grant(chosen, cost, now)
        return chosen

    # -- serving the queue ---------------------------------------------------------------

    def dispatch(self, now: float) -> tuple[list[Waiter], list[Waiter], float]:
        """Serve every waiter that is due at ``now``: from the head, in order, while the
        head's token can fire; then cheaper waiters behind it (backfilling).

        Returns the waiters granted (``waiter.slot`` set), those whose deadline passed,
        and the time of the next decision (``inf``: nothing to wait for but an event).
        """
        granted: list[Waiter] = []
        expired: list[Waiter] = []
        limit = now + EPS
        queue = self._queue
        wake = INF
        while queue:
            if self._by_cost is None and len(self._lane_list) == 1 and self._lane_list[0].single:
                self._serve_lane(self._lane_list[0], now, granted)
            self._serve_usual(now, granted)
            if not queue:
                break
            head = queue[0]  # live: _serve_usual dropped the dead ones in front
            cost = head.cost
            found, t = self.best(cost, now)
            if t <= limit:
                queue.popleft()
                self._give(found, head, now)  # type: ignore[arg-type]  # t finite: found set
                granted.append(head)
                continue
            if head.deadline <= now:
                queue.popleft()
                self._drop(head)
                expired.append(head)
                continue
            wake = t
            costs = self._costs
            if costs and (min(costs) < cost or _vectors(cost, costs)):
                wake = min(wake, self._backfill(head, found, now, granted))
            break
        if self._deadline_fifo or self._deadline_heap:
            deadline = self._expire(now, expired)
            if deadline < wake:
                wake = deadline
        return granted, expired, wake

    def _serve_lane(self, lane: Lane[Slot], now: float, granted: list[Waiter]) -> None:
        """:meth:`_serve_usual` for its commonest case, one lane of one-window tokens and
        waiters of one cost (no split queue): grant the head while the lane's FIFO front
        fires its cost now, no cooldown in the way; stops at the first head it cannot."""
        if lane.heap:
            return  # the lane's top may be there: _serve_usual looks
        limit = now + EPS
        queue = self._queue
        fifo = lane.fifo
        first = len(granted)
        timed = self._timed
        deadlines = self._deadline_fifo
        cost = _as_float(next(iter(self._costs), 0.0))  # the one cost waiting (no split)
        # Fronts popped, put back at the first head not served; the ends read kept here.
        back = fifo[-1][0] if fifo else INF
        front = deadlines[0] if deadlines else INF
        while queue and fifo:
            head = queue.popleft()
            if not head.live:
                continue
            top = fifo.popleft()
            due, seq, slot = top
            if not (
                due <= limit
                and slot.seq == seq
                and cost == slot.key_cost  # never a mixed slot, never a vector cost
                and slot.cool_until < now
            ):
                fifo.appendleft(top)
                queue.appendleft(head)
                break
            head.live = False  # _drop, inlined; the counts below the loop
            deadline = head.deadline
            if deadline < INF:  # _untime, inlined
                same = timed[deadline]
                if same is head:  # its deadline's own: the float goes stale, or goes now
                    del timed[deadline]
                    if deadline == front:  # the same timeouts' usual
                        deadlines.popleft()
                        front = deadlines[0] if deadlines else INF
                else:
                    del same[head]  # type: ignore[union-attr]  # shared: a dict
                    if not same:
                        del timed[deadline]
            # Slot.take for one window, count_grant and the new entry, as in _serve_usual.
            w = slot.windows[0]
            level, last = w._level, w._last_check
            head.undo = (level, last)
            rate = w.rate
            level = level - (now - last) * rate
            level = (level if level > 0.0 else 0.0) + cost
            w._level = level
            w._last_check = now
            head.epoch = slot.epoch = slot.epoch + 1
            head.slot = slot
            head.granted_at = now
            in_flight = slot.in_flight = slot.in_flight + 1
            slot.leases += 1
            slot.units += cost
            granted.append(head)
            if in_flight < slot.cap:
                key = now + (level + cost - w.burst) / rate  # > due: it keeps its number
                if not fifo or key >= back:
                    fifo.append((key, seq, slot))
                    back = key
                else:
                    lane.push((key, seq, slot))
                    break  # the lane's top may now be in its heap
            else:
                slot.seq = -1
                slot.indexed = False
        served = len(granted) - first
        if served:
            self.waiting -= served  # stale deadlines: checked at the dispatch's end
            costs = self._costs
            ((cost, waiting),) = costs.items()  # no split queue: one cost waits
            if waiting > served:
                costs[cost] = waiting - served
            else:
                del costs[cost]

    def _serve_usual(self, now: float, granted: list[Waiter]) -> None:
        """Grant the head, again and again, while the top of the index fires the head's
        cost now, and that cost is the top token's key cost (its key is exactly when it
        can fire it): the usual grant, inlined (``_give`` with ``Lane.top``, ``Slot.take``
        and ``reindex``), since a saturated pool does nothing else. Returns at the first
        head it cannot serve so, with the dead waiters in front of it dropped."""
        limit = now + EPS
        queue = self._queue
        costs = self._costs
        lanes = self._lane_list
        single = lanes[0] if len(lanes) == 1 else None
        while queue:
            head = queue[0]
            if not head.live:
                queue.popleft()
                continue
            cost = head.cost
            top: Entry[Slot] | None
            if single is not None:
                fifo = single.fifo
                if fifo and not single.heap and fifo[0][2].seq == fifo[0][1]:
                    top = fifo[0]  # Lane.top(), inlined for its usual case
                else:
                    top = single.top()
            else:
                top = top_of(lanes)
            if top is None or not (top[0] <= limit and cost == top[2].key_cost):
                return
            slot = top[2]
            queue.popleft()
            head.live = False  # _drop, inlined
            self.waiting -= 1
            left = costs[cost] - 1
            if left:
                costs[cost] = left
            else:
                del costs[cost]
            if self._by_cost is not None:
                self._unqueue_by_cost(cost)
            if head.deadline < INF:
                self._untime(head)  # the float goes stale: checked at the dispatch's end
            head.slot = slot
            head.granted_at = now
            windows = slot.windows
            if len(windows) == 1 and slot.cool_until < now:
                # Slot.take for one window, inlined (the bucket leaks, then takes).
                w = windows[0]
                head.undo = (w._level, w._last_check)
                rate = w.rate
                level = w._level - (now - w._last_check) * rate
                level = (level if level > 0.0 else 0.0) + cost
                w._level = level
                w._last_check = now
                key = now + (level + slot.key_cost - w.burst) / rate
                slot.epoch += 1
            else:
                head.undo = state_of(slot)
                key = slot.take(cost, now)
            head.epoch = slot.epoch
            slot.in_flight += 1  # count_grant, inlined
            slot.leases += 1
            slot.units += cost
            lane = slot.lane
            fifo = lane.fifo
            if fifo and fifo[0] is top:  # Lane.retire and Lane.push, inlined
                fifo.popleft()
            else:
                lane.retire(top[1])
            if slot.in_flight < slot.cap:
                seq = slot.seq = self._next_seq()
                if not fifo or key >= fifo[-1][0]:
                    fifo.append((key, seq, slot))
                else:
                    lane.push((key, seq, slot))
            else:
                slot.seq = -1
                slot.indexed = False
            granted.append(head)

    def _give(self, slot: Slot, waiter: Waiter, now: float) -> None:
        self._drop(waiter)
        self.grant(slot, waiter.cost, now, waiter)

    def _backfill(
        self, head: Waiter, reserved: Slot | None, now: float, granted: list[Waiter]
    ) -> float:
        """Serve cheaper waiters behind the head on tokens other than the head's
        reservation, in queue order. Returns when the next one might fit.

        Waiters of one cost are served in order, so only the first of each cost needs
        a look: if it cannot fit now, none of its cost can. Each step serves the
        earliest arrival among the costs that fit, until none does."""
        limit = now + EPS
        by_cost = self._by_cost
        if by_cost is None:
            by_cost = self._split_by_cost()
        for cost in [c for c in by_cost if c not in self._costs]:
            del by_cost[cost]  # only dead waiters left in it
        smaller = [c for c in self._costs if cheaper(c, head.cost)]
        while True:
            wake = INF
            pick: tuple[Waiter, Slot] | None = None
            for cost in smaller:
                same = by_cost[cost]
                while same and not same[0].live:
                    same.popleft()
                if not same:
                    continue
                slot, t = self.best(cost, now, exclude=reserved)
                if t <= limit:
                    if pick is None or same[0].order < pick[0].order:
                        pick = (same[0], slot)  # type: ignore[assignment]
                else:
                    wake = min(wake, t)
            if pick is None:
                return wake
            waiter, slot = pick
            self._give(slot, waiter, now)
            granted.append(waiter)
            smaller = [c for c in smaller if c in self._costs]

    def unservable(self) -> list[Waiter]:
        """Waiters no usable token can ever serve (after tokens were disabled or
        removed); they are dropped from the queue and should fail."""
        return self._drop_costlier(self.max_cost)


def _as_float(cost: float) -> float:
    """``cost`` as a float if it is one exactly (an int and a float compare and add on
    the slow path of both); the same number, so the same results."""
    if type(cost) is int and float(cost) == cost:
        return float(cost)
    return cost


def _vectors(cost: float, costs: dict[float, int]) -> bool:
    """Whether a waiter behind a head of ``cost`` may fit where it does not, though no
    waiting cost is below it in requests: costs of several resources differ elsewhere."""
    if type(cost) is Costs or any(type(c) is Costs for c in costs):
        return any(cheaper(c, cost) for c in costs if c != cost)
    return False
