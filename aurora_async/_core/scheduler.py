"""The scheduler as pure logic: token slots, the soonest-fire choice and the waiter queue.

Nothing here awaits, sleeps or reads a clock: every decision takes ``now`` and returns
what is due, and the asyncio shell (``aurora_async._pool``) turns those decisions into
resolved futures and one timer.

How a token is chosen
    Every token that may take a lease sits in one binary heap keyed by a lower bound on
    the time it can fire: the moment its bucket fits a unit cost (or its cooldown ends,
    whichever is later). For the usual unit-cost lease the top of the heap *is* the
    token that can fire soonest; ties between tokens that can all fire now go to the top
    as well, which is the one whose bucket has had room the longest (the most headroom,
    measured in time). For other costs a best-first search over the heap array finds the
    exact soonest token, pruning every subtree whose lower bound is already later.

How waiters are served
    One FIFO queue for the pool. The head waiter gets the soonest token for its cost the
    moment it can fire (its *reservation*). Waiters behind the head with a smaller cost
    may be served out of turn, but only on tokens other than the head's reservation, so
    the head is never delayed (EASY backfilling): nothing is idle while someone waits,
    and a costly lease is overtaken at most until its own reservation comes due.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Iterable
from heapq import heappop, heappush
from itertools import count

from .._errors import NoTokensAvailable
from .buckets import Window
from .expiry import jwt_expiry
from .lanes import Entry, Lane, in_key_order, top_of
from .limits import Limit
from .tokens import Token

#: Times within this many seconds count as equal: asyncio fires a timer when it is due
#: within the clock's resolution, and float arithmetic on times leaves crumbs this small.
EPS = 1e-9

INF = math.inf
_UNCAPPED = 1 << 62


class TokenState(enum.StrEnum):
    """Where a token stands."""

    ACTIVE = "active"  #: takes leases
    COOLING = "cooling"  #: rate-limited by the server; takes leases again at a known time
    DISABLED = "disabled"  #: revoked or disabled by hand; takes no leases
    REMOVED = "removed"  #: dropped by a reload; finishes its in-flight calls


class Slot:
    """One token's place in the pool: its windows, state and counters."""

    __slots__ = (
        "backoff",
        "by_hand",
        "cap",
        "cool_until",
        "disabled",
        "epoch",
        "errors",
        "expires_at",
        "full_cap",
        "in_flight",
        "indexed",
        "info",
        "key_cost",
        "lane",
        "leases",
        "max_cost",
        "name",
        "ok",
        "proven",
        "rate_limited",
        "reason",
        "removed",
        "seq",
        "token",
        "units",
        "windows",
    )

    def __init__(
        self,
        token: Token,
        name: str,
        limits: tuple[Limit, ...],
        max_in_flight: int | None,
        trial_in_flight: int | None,
        now: float,
    ) -> None:
        self.token = token
        self.name = name
        self.windows = tuple(Window(limit, now) for limit in limits)
        self.max_cost = min(w.burst for w in self.windows)
        self.key_cost = min(1.0, self.max_cost)
        self.full_cap = max_in_flight if max_in_flight is not None else _UNCAPPED
        self.proven = trial_in_flight is None
        self.cap = self.full_cap if self.proven else min(self.full_cap, trial_in_flight or 1)
        self.cool_until = -INF
        self.backoff = 0.0
        self.disabled = False
        self.removed = False
        self.reason: str | None = None
        self.in_flight = 0
        self.seq = -1
        self.indexed = False
        self.leases = 0
        self.units = 0.0
        self.ok = 0
        self.rate_limited = 0
        self.errors = 0
        self.info: object = None  # the HTTP layer's last rate-limit reading
        self.epoch = 0  # counts changes to the windows (see Scheduler.refund)
        self.by_hand = False  # disabled by pool.disable(): probes leave it alone
        self.expires_at = jwt_expiry(token.value)  # Unix time, for JWTs; else None
        self.lane: Lane = _NO_LANE

    @property
    def usable(self) -> bool:
        """Will take leases, now or once a cooldown ends."""
        return not (self.disabled or self.removed)

    def state(self, now: float) -> TokenState:
        if self.removed:
            return TokenState.REMOVED
        if self.disabled:
            return TokenState.DISABLED
        if self.cool_until > now:
            return TokenState.COOLING
        return TokenState.ACTIVE

    def ready(self, cost: float) -> float:
        """The earliest time this token can fire ``cost`` (ignoring in-flight caps).

        ``Window.ready_at`` inlined: this is the scheduler's innermost loop."""
        t = self.cool_until
        for w in self.windows:
            burst = w.burst
            if cost > burst:
                return INF
            r = w._last_check + (w._level + cost - burst) / w.rate
            if r > t:
                t = r
        return t

    def take(self, cost: float, now: float) -> float:
        """Put ``cost`` in every window at ``now`` (``Window.take`` inlined) and return
        the slot's new key: when it can next fire its key cost."""
        self.epoch += 1
        key = self.cool_until
        key_cost = self.key_cost
        windows = self.windows
        if len(windows) == 1:  # the usual single window, without the loop
            w = windows[0]
            rate = w.rate
            elapsed = now - w._last_check
            if elapsed > 0.0:
                level = w._level - elapsed * rate
                level = (level if level > 0.0 else 0.0) + cost
                w._last_check = now
            else:
                level = w._level + cost
            w._level = level
            r = w._last_check + (level + key_cost - w.burst) / rate
            return r if r > key else key
        for w in windows:
            rate = w.rate
            elapsed = now - w._last_check
            if elapsed > 0.0:
                level = w._level - elapsed * rate
                level = (level if level > 0.0 else 0.0) + cost
                w._last_check = now
            else:
                level = w._level + cost
            w._level = level
            r = w._last_check + (level + key_cost - w.burst) / rate
            if r > key:
                key = r
        return key

    def headroom(self, now: float) -> float:
        """Units it could take at ``now``: the least room left in any window."""
        return min(w.burst - w.level_at(now) for w in self.windows)

    def __repr__(self) -> str:
        cap = self.cap if self.cap < _UNCAPPED else "∞"
        flags = (" disabled" if self.disabled else "") + (" removed" if self.removed else "")
        return (
            f"<Slot {self.name} in_flight={self.in_flight}/{cap}"
            f" key={self.ready(self.key_cost):.6f}{flags}>"
        )


_NO_LANE = Lane()  # a slot's lane until the scheduler files it


class Waiter:
    """One lease request waiting in the queue."""

    __slots__ = (
        "cost",
        "deadline",
        "enqueued_at",
        "epoch",
        "granted_at",
        "live",
        "order",
        "slot",
        "undo",
    )

    def __init__(self, cost: float, deadline: float, enqueued_at: float) -> None:
        self.cost = cost
        self.deadline = deadline
        self.enqueued_at = enqueued_at
        self.live = True  # still waiting: neither granted, expired, failed nor cancelled
        self.slot: Slot | None = None
        self.granted_at = 0.0
        self.order = 0  # its place in arrival order (set when queued)
        self.epoch = -1  # the token's epoch right after this grant (see Scheduler.refund)
        self.undo: tuple[float, ...] = ()  # its windows' state right before it


class Scheduler:
    """Token slots, the waiter queue and the decisions between them."""

    def __init__(self, *, trial_in_flight: int | None = 1) -> None:
        self.trial_in_flight = trial_in_flight
        self.slots: dict[str, Slot] = {}  # by token value, in insertion order
        self._retired: dict[str, Slot] = {}  # removed and idle, buckets not yet drained
        self.waiting = 0  # live waiters in the queue
        self._lanes: dict[tuple[tuple[float, float], ...], Lane] = {}
        self._lane_list: list[Lane] = []
        self._next_seq = count().__next__
        self._queue: deque[Waiter] = deque()
        self._deadlines: list[tuple[float, int, Waiter]] = []
        self._costs: dict[float, int] = {}  # cost -> live waiters asking it
        #: The queue split by cost (kept once costs differ: backfilling needs it).
        self._by_cost: dict[float, deque[Waiter]] | None = None
        self._usable_costs: dict[float, int] = {}  # max_cost -> usable slots with it
        self._all_costs: dict[float, int] = {}  # max_cost -> slots (any state but removed)
        self._min_rate = INF
        self.max_cost = 0.0  # the largest cost some usable token can take

    # -- token set ---------------------------------------------------------------

    def add(
        self,
        token: Token,
        name: str,
        limits: tuple[Limit, ...],
        max_in_flight: int | None,
        now: float,
        *,
        full: bool = False,
    ) -> Slot:
        """A new token. Its buckets start empty (a full burst available), or ``full``
        (as if just used to the brim: it fires at its steady rate from the start)."""
        slot = Slot(token, name, limits, max_in_flight, self.trial_in_flight, now)
        if full:
            for w in slot.windows:
                w.take(w.burst, now)
        self._file(slot)
        self.slots[token.value] = slot
        _inc(self._all_costs, slot.max_cost)
        self._became_usable(slot)
        return slot

    def shift(self, offset: float) -> None:
        """Move every time the scheduler holds by ``offset`` seconds (the pool was built
        before its event loop ran, on a clock starting at 0) and re-index everything."""
        for slot in [*self.slots.values(), *self._retired.values()]:
            for w in slot.windows:
                w._last_check += offset
            if slot.cool_until > -INF:
                slot.cool_until += offset
            slot.epoch += 1
            if slot.indexed:
                self._place(slot)
        for lane in self._lane_list:
            lane.reindex_cooled()

    def _file(self, slot: Slot) -> None:
        """Put ``slot`` in the lane of its tier (tokens with the same windows)."""
        tier = tuple((w.burst, w.rate) for w in slot.windows)
        lane = self._lanes.get(tier)
        if lane is None:
            single = len(slot.windows) == 1
            lane = Lane(
                single=single,
                rate=slot.windows[0].rate,
                key_cost=slot.key_cost,
                max_cost=slot.max_cost,
            )
            self._lanes[tier] = lane
            self._lane_list.append(lane)
        slot.lane.cooled.discard(slot)
        slot.lane = lane
        if slot.cool_until > -INF:
            lane.add_cooled(slot)
        for w in slot.windows:
            self._min_rate = min(self._min_rate, w.rate)

    def relimit(self, slot: Slot, limits: tuple[Limit, ...], now: float) -> None:
        """Give ``slot`` new limit windows. They start full (as if just used to the
        brim), since nothing is known of how the new limits were spent; everything else
        (name, counters, cooldown, disabled, in-flight leases) stays."""
        usable = slot.usable
        if usable:
            self._became_unusable(slot)
        if not slot.removed:
            _dec(self._all_costs, slot.max_cost)
        slot.epoch += 1
        slot.windows = tuple(Window(limit, now) for limit in limits)
        for w in slot.windows:
            w.take(w.burst, now)
        slot.max_cost = min(w.burst for w in slot.windows)
        slot.key_cost = min(1.0, slot.max_cost)
        self._file(slot)
        if not slot.removed:
            _inc(self._all_costs, slot.max_cost)
        if usable:
            self._became_usable(slot)

    def remove(self, slot: Slot) -> None:
        """Take no new leases on ``slot``; it stays visible until its calls finish."""
        if slot.removed:
            return
        was_usable = slot.usable
        slot.removed = True
        _dec(self._all_costs, slot.max_cost)
        if was_usable:
            self._became_unusable(slot)
        self.forget_if_idle(slot)

    def restore(self, slot: Slot) -> None:
        """Bring a removed slot back (its token reappeared before its calls ended)."""
        if not slot.removed:
            return
        slot.removed = False
        _inc(self._all_costs, slot.max_cost)
        if not slot.disabled:
            self._became_usable(slot)

    def forget_if_idle(self, slot: Slot) -> bool:
        """Drop a removed slot once its last lease ended. Its limiter state is kept
        aside until its buckets have drained, so a token that comes back (a reload that
        briefly left it out) does not start with a fresh bucket."""
        value = slot.token.value
        if slot.removed and slot.in_flight == 0 and self.slots.get(value) is slot:
            del self.slots[value]
            self._retired[value] = slot
            return True
        return False

    def revive(self, value: str, now: float) -> Slot | None:
        """The retired slot of the token ``value``, back among the slots (still marked
        removed: ``restore`` it), or ``None``."""
        self.prune_retired(now)
        slot = self._retired.pop(value, None)
        if slot is not None:
            self.slots[value] = slot
        return slot

    def prune_retired(self, now: float) -> None:
        """Forget retired slots that have drained, and the oldest beyond a bound (as many
        as there are tokens, at least 1,000), so a pool whose tokens rotate keeps no more
        than that in memory."""
        retired = self._retired
        for old in [v for v, s in retired.items() if _drained(s, now)]:
            del retired[old]
        excess = len(retired) - max(1000, len(self.slots))
        for old in list(retired)[: max(0, excess)]:
            del retired[old]

    def disable(self, slot: Slot, reason: str) -> bool:
        """Disable ``slot``; returns whether it was usable before."""
        slot.reason = reason
        if slot.disabled:
            return False
        slot.disabled = True
        if slot.removed:
            return False
        self._became_unusable(slot)
        return True

    def enable(self, slot: Slot) -> bool:
        if not slot.disabled:
            return False
        slot.disabled = False
        slot.reason = None
        slot.backoff = 0.0
        if not slot.removed:
            self._became_usable(slot)
        return True

    def cool(self, slot: Slot, until: float, now: float | None = None) -> None:
        """Keep ``slot`` from firing before ``until``.

        With ``now`` (the server said the token's quota is spent), its windows are also
        filled as of ``until`` -- those whose period is no longer than the cooldown, or
        the shortest one -- to all but one unit: one call may go when the cooldown ends
        (as Retry-After says), and then the token fires at its steady rate instead of a
        fresh burst the server would refuse again."""
        if now is not None:
            longest = max(until - now, min(w.limit.per for w in slot.windows))
            for w in slot.windows:
                if w.limit.per <= longest:
                    spent = w.burst - slot.key_cost + (until - now) * w.rate
                    if w.level_at(now) < spent:
                        w._level = spent
                        w._last_check = now
                        slot.epoch += 1
        if until > slot.cool_until or now is not None:
            if until > slot.cool_until:
                slot.cool_until = until
                slot.lane.add_cooled(slot)
            slot.epoch += 1  # a refund must not undo this
            if slot.indexed:
                self._place(slot)

    def charge(self, slot: Slot, cost: float, now: float) -> None:
        """Take ``cost`` from ``slot``'s windows outside any lease (a health probe)."""
        slot.take(cost, now)  # bumps the epoch
        if slot.indexed:
            self._place(slot)  # its key moved later

    def touched(self, slot: Slot) -> None:
        """``slot``'s windows were changed from outside (a restored state file): note it,
        so no refund restores what they were before, and re-index it."""
        slot.epoch += 1
        if slot.indexed:
            self._place(slot)

    def set_cap(self, slot: Slot, max_in_flight: int | None) -> None:
        """Change how many leases ``slot`` may carry at once."""
        slot.full_cap = max_in_flight if max_in_flight is not None else _UNCAPPED
        trial = self.trial_in_flight or 1
        slot.cap = slot.full_cap if slot.proven else min(slot.full_cap, trial)
        if slot.indexed and slot.in_flight >= slot.cap:
            self._place(slot)  # takes it out
        else:
            self._reinstate(slot)

    def mark_proven(self, slot: Slot) -> bool:
        """The token answered well once: lift the trial cap. Returns whether it can now
        take more leases than before."""
        if slot.proven:
            return False
        slot.proven = True
        slot.cap = slot.full_cap
        return self._reinstate(slot)

    def _became_usable(self, slot: Slot) -> None:
        _inc(self._usable_costs, slot.max_cost)
        self.max_cost = max(self._usable_costs)
        self._reinstate(slot)

    def _became_unusable(self, slot: Slot) -> None:
        _dec(self._usable_costs, slot.max_cost)
        self.max_cost = max(self._usable_costs) if self._usable_costs else 0.0
        if slot.indexed:
            slot.lane.retire(slot.seq)
        slot.seq = -1
        slot.indexed = False

    @property
    def usable(self) -> int:
        return sum(self._usable_costs.values())

    # -- choosing a token --------------------------------------------------------

    def _place(self, slot: Slot, key: float | None = None) -> None:
        """(Re)index ``slot`` at its current key, or take it out if it may not take
        another lease."""
        lane = slot.lane
        if slot.indexed:
            lane.retire(slot.seq)
        if slot.in_flight >= slot.cap or slot.disabled or slot.removed:
            slot.seq = -1
            slot.indexed = False
            return
        if key is None:
            key = slot.ready(slot.key_cost)
        seq = slot.seq = self._next_seq()
        slot.indexed = True
        lane.push((key, seq, slot))

    def _reinstate(self, slot: Slot) -> bool:
        if slot.indexed or slot.in_flight >= slot.cap or not slot.usable:
            return False
        self._place(slot)
        return True

    def best(
        self, cost: float, now: float, exclude: Slot | None = None
    ) -> tuple[Slot | None, float]:
        """The token that can fire ``cost`` soonest, and when.

        Among tokens that can fire now, the one with the most headroom (the lowest key).
        ``(None, inf)`` when no token may take the lease at all.
        """
        lanes = self._lane_list
        top = lanes[0].top() if len(lanes) == 1 else top_of(lanes)
        if top is None:
            return None, INF
        limit = now + EPS
        key, _, slot = top
        slack = (1.0 - cost) / self._min_rate if cost < 1.0 else 0.0
        best_slot: Slot | None = None
        best_t = INF
        if slot is not exclude:
            t = slot.ready(cost)
            if t <= limit:
                return slot, t  # ready now, and the lowest key of all
            if t <= key and not slack:
                return slot, t  # every other key bounds its token at or after t
            if t < INF:
                best_slot, best_t = slot, t
        # Lane by lane. In a lane of one-window tokens, every token that no cooldown
        # holds fires ``cost`` a fixed time after its key, so its first such entry is
        # the lane's best, and only the (few) cooled tokens need a look of their own.
        # Other lanes: a best-first walk in key order; a key (less the slack for costs
        # under one unit) bounds its token's ready time, so the walk stops once past.
        self._end_cooldowns(now)
        best_key = INF
        for lane in lanes:
            found = (
                self._lane_best(lane, cost, exclude)
                if lane.single and cost >= lane.key_cost
                else self._lane_walk(lane, cost, limit, slack, exclude)
            )
            for s, t, k in found:
                if t <= limit:
                    if best_t > limit or k < best_key:  # ready now: the lowest key wins
                        best_slot, best_t, best_key = s, t, k
                elif t < best_t or (t == best_t and k < best_key):
                    best_slot, best_t, best_key = s, t, k
        return best_slot, best_t

    def _end_cooldowns(self, now: float) -> None:
        """Cooldowns that are over hold nothing back any more: forget them (the time
        they ended is in the past, so every ready time stays as it was)."""
        for lane in self._lane_list:
            if lane.cool_heap and lane.cool_heap[0][0] <= now:
                for slot in lane.end_cooldowns(now):
                    slot.cool_until = -INF
                    if slot.indexed:
                        self._place(slot)

    @staticmethod
    def _lane_best(
        lane: Lane, cost: float, exclude: Slot | None
    ) -> list[tuple[Slot, float, float]]:
        if cost > lane.max_cost:
            return []  # no token here can ever take it
        delta = (cost - lane.key_cost) / lane.rate
        cooled = lane.cooled
        found: list[tuple[Slot, float, float]] = []
        first = lane.first(exclude, cooled)
        soonest = INF
        if first is not None:
            soonest = first[0] + delta
            found.append((first[2], soonest, first[0]))
        if cooled:
            # A cooled token fires no sooner than its cooldown ends: in that order, the
            # walk stops at the first cooldown that ends after the best time so far.
            for s in lane.cooled_in_order():
                if s.cool_until > soonest:
                    break
                if s.indexed and s is not exclude:
                    t = s.ready(cost)
                    found.append((s, t, s.ready(s.key_cost)))
                    soonest = min(soonest, t)
        return found

    @staticmethod
    def _lane_walk(
        lane: Lane, cost: float, limit: float, slack: float, exclude: Slot | None
    ) -> list[tuple[Slot, float, float]]:
        best: tuple[Slot, float, float] | None = None
        for key, seq, s in in_key_order((lane,)):
            if best is not None and key - slack >= best[1]:
                break
            if s.seq != seq or s is exclude:
                continue
            t = s.ready(cost)
            if t <= limit:
                return [(s, t, key)]  # ready now, and the lowest key in this lane
            if best is None or t < best[1]:
                best = (s, t, key)
        return [] if best is None or best[1] == INF else [best]

    def _consume(self, slot: Slot, cost: float, now: float) -> None:
        key = slot.take(cost, now)
        slot.in_flight += 1
        slot.leases += 1
        slot.units += cost
        self._place(slot, key)

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
                if (
                    slot.seq == top[1]
                    and cost == slot.key_cost
                    and top[0] <= now + EPS
                    and len(windows) == 1
                    and slot.in_flight + 1 < slot.cap
                ):
                    # The commonest lease of all, inlined end to end (Lane.top, Slot.take,
                    # Lane.retire and Lane.push): one lane, its front can fire now.
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
                    seq = slot.seq = self._next_seq()
                    if not fifo or key >= fifo[-1][0]:
                        fifo.append((key, seq, slot))
                    else:
                        lane.push((key, seq, slot))
                    return slot
            found = lane.top()
        else:
            found = top_of(lanes)
        if found is not None:
            key, seq, slot = found
            # A current entry's key is exactly when its slot can fire its key cost, so
            # for that cost (the usual one) the top answers without recomputing anything.
            if cost == slot.key_cost and key <= now + EPS:
                # _consume and _place, inlined: this is the hot path of every lease.
                key = slot.take(cost, now)
                slot.in_flight += 1
                slot.leases += 1
                slot.units += cost
                lane = slot.lane
                lane.retire(seq)
                if slot.in_flight < slot.cap:
                    seq = slot.seq = self._next_seq()
                    lane.push((key, seq, slot))
                else:
                    slot.seq = -1
                    slot.indexed = False
                return slot
        try:
            if not 0 < cost <= self.max_cost:
                return None
        except TypeError:
            return None
        chosen, t = self.best(cost, now)
        if chosen is None or t > now + EPS:
            return None
        self._consume(chosen, cost, now)
        return chosen

    def take_other(self, cost: float, now: float, avoid: Slot) -> Slot | None:
        """Like :meth:`try_take`, but a token other than ``avoid`` if one can fire
        ``cost`` now (a retry after ``avoid`` failed); ``avoid`` itself only if none can."""
        if self.waiting:
            return None
        try:
            if not 0 < cost <= self.max_cost:
                return None
        except TypeError:
            return None
        chosen, t = self.best(cost, now, exclude=avoid)
        if chosen is None or t > now + EPS:
            return self.try_take(cost, now)
        self._consume(chosen, cost, now)
        return chosen

    def release(self, slot: Slot) -> bool:
        """A lease of ``slot`` ended. Returns whether waiters may now be served."""
        slot.in_flight -= 1
        if slot.removed:
            self.forget_if_idle(slot)
            return False
        return self._reinstate(slot)

    def refund(
        self, slot: Slot, cost: float, granted_at: float, now: float, waiter: Waiter | None = None
    ) -> bool:
        """A granted lease was never used (its waiter was cancelled before it resumed):
        give its capacity back. Returns whether waiters may now be served.

        When nothing touched the token's windows since this grant (the usual case: the
        waiter is cancelled in the same loop turn), their state before the grant comes
        back exactly, down to how long each bucket had been empty; otherwise only the part
        of the cost that cannot have drained since comes back (``Window.give_back``)."""
        if waiter is not None and waiter.epoch == slot.epoch:
            undo = waiter.undo
            for i, w in enumerate(slot.windows):
                w._level, w._last_check = undo[2 * i], undo[2 * i + 1]
        else:
            for w in slot.windows:
                w.give_back(cost, granted_at, now)
        slot.epoch += 1
        slot.in_flight -= 1
        slot.leases -= 1
        slot.units -= cost
        if slot.removed:
            self.forget_if_idle(slot)
            return False
        self._place(slot)
        return True

    # -- waiters -----------------------------------------------------------------

    def check_cost(self, cost: float) -> None:
        """Raise at once for a lease that can never be granted."""
        if isinstance(cost, bool) or not isinstance(cost, int | float):
            raise TypeError(f"cost must be a number, not {type(cost).__name__}")
        if not cost > 0 or not math.isfinite(cost):
            raise ValueError(f"cost must be a positive finite number, got {cost!r}")
        if cost <= self.max_cost:
            return
        largest = max(self._all_costs) if self._all_costs else 0.0
        if cost > largest:
            if not self._all_costs:
                raise NoTokensAvailable("the pool has no tokens")
            raise ValueError(
                f"cost {cost:g} exceeds the burst of every token (largest: {largest:g}); "
                "no lease of that cost can ever be granted. "
                "Lower the cost or raise a Limit's burst."
            )
        if not self._usable_costs:
            raise NoTokensAvailable(
                "every token is disabled or removed; see pool.stats() for the reasons"
            )
        raise NoTokensAvailable(
            f"no usable token can take cost {cost:g}: those whose burst allows it "
            "are disabled or removed; see pool.stats()"
        )

    def enqueue(self, waiter: Waiter) -> bool:
        """Queue ``waiter``. Returns whether the shell must dispatch now (the waiter is
        the new head, or may be served out of turn)."""
        queue = self._queue
        cost = waiter.cost
        if self.waiting:
            head = queue[0]
            if not head.live:
                head_cost = self._head_cost()
                dispatch = head_cost is None or cost < head_cost
            else:
                dispatch = cost < head.cost
        else:
            dispatch = True
        queue.append(waiter)
        self.waiting += 1
        costs = self._costs
        known = costs.get(cost)
        costs[cost] = (known or 0) + 1
        by_cost = self._by_cost
        if by_cost is not None:
            waiter.order = self._next_seq()
            same = by_cost.get(cost)
            if same is None:
                same = by_cost[cost] = deque()
            same.append(waiter)
        elif known is None and len(costs) > 1:
            self._split_by_cost()  # the first time costs differ: backfilling needs it
        if waiter.deadline < INF:
            heappush(self._deadlines, (waiter.deadline, self._next_seq(), waiter))
        return dispatch

    def _split_by_cost(self) -> None:
        by_cost: dict[float, deque[Waiter]] = {}
        for waiter in self._queue:
            if waiter.live:
                waiter.order = self._next_seq()
                by_cost.setdefault(waiter.cost, deque()).append(waiter)
        self._by_cost = by_cost

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
        waiter.live = False
        self.waiting -= 1
        _dec(self._costs, waiter.cost)
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

    def _give(self, slot: Slot, waiter: Waiter, now: float) -> None:
        self._drop(waiter)
        waiter.slot = slot
        waiter.granted_at = now
        waiter.undo = _state_of(slot)
        self._consume(slot, waiter.cost, now)
        waiter.epoch = slot.epoch

    def dispatch(self, now: float) -> tuple[list[Waiter], list[Waiter], float]:
        """Serve every waiter that is due at ``now``.

        Returns the waiters granted (``waiter.slot`` set), those whose deadline passed,
        and the time of the next decision (``inf``: nothing to wait for but an event).
        """
        granted: list[Waiter] = []
        expired: list[Waiter] = []
        limit = now + EPS
        queue = self._queue
        costs = self._costs
        lanes = self._lane_list
        single = lanes[0] if len(lanes) == 1 else None
        wake = INF
        while queue:
            head = queue[0]
            if not head.live:
                queue.popleft()
                continue
            cost = head.cost
            top: Entry | None
            if single is not None:
                fifo = single.fifo
                if fifo and not single.heap and fifo[0][2].seq == fifo[0][1]:
                    top = fifo[0]  # Lane.top(), inlined for its usual case
                else:
                    top = single.top()
            else:
                top = top_of(lanes)
            if top is not None and top[0] <= limit and cost == top[2].key_cost:
                # The usual grant, inlined: the top of the index fires the head's cost
                # now (its key is exactly when it can fire its key cost).
                slot = top[2]
                queue.popleft()
                head.live = False
                self.waiting -= 1
                left = costs[cost] - 1
                if left:
                    costs[cost] = left
                else:
                    del costs[cost]
                if self._by_cost is not None:
                    self._unqueue_by_cost(cost)
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
                    head.undo = _state_of(slot)
                    key = slot.take(cost, now)
                head.epoch = slot.epoch
                slot.in_flight += 1
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
                continue
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
            if costs and min(costs) < cost:
                wake = min(wake, self._backfill(head, found, now, granted))
            break
        deadlines = self._deadlines
        while deadlines and (deadlines[0][0] <= now or not deadlines[0][2].live):
            _, _, waiter = heappop(deadlines)
            if waiter.live:
                self._drop(waiter)
                expired.append(waiter)
        if deadlines:
            wake = min(wake, deadlines[0][0])
        return granted, expired, wake

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
            self._split_by_cost()
            by_cost = self._by_cost
            assert by_cost is not None
        for cost in [c for c in by_cost if c not in self._costs]:
            del by_cost[cost]  # only dead waiters left in it
        smaller = [c for c in self._costs if c < head.cost]
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
        failed = [w for w in self._queue if w.live and w.cost > self.max_cost]
        for waiter in failed:
            self._drop(waiter)
        return failed

    def waiters(self) -> Iterable[Waiter]:
        return (w for w in self._queue if w.live)


def check_timeout(timeout: object) -> None:
    """Raise for a lease ``timeout`` that is neither ``None`` nor seconds >= 0."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if not timeout >= 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout!r}")


def _state_of(slot: Slot) -> tuple[float, ...]:
    """Every window's (level, last check), flat: what a refund may restore."""
    state: list[float] = []
    for w in slot.windows:
        state += (w._level, w._last_check)
    return tuple(state)


def _drained(slot: Slot, now: float) -> bool:
    """Nothing left of the slot's past: empty buckets, no cooldown, not disabled."""
    return (
        not slot.disabled
        and slot.cool_until <= now
        and all(w.level_at(now) == 0.0 for w in slot.windows)
    )


def _inc(counter: dict[float, int], key: float) -> None:
    counter[key] = counter.get(key, 0) + 1


def _dec(counter: dict[float, int], key: float) -> None:
    left = counter[key] - 1
    if left:
        counter[key] = left
    else:
        del counter[key]
