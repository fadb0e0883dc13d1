"""The scheduler's index of tokens, and the choice of the token that can fire soonest.

Every token that may take a lease has one entry in the lane of its tier (tokens with the
same windows, see ``lanes.py``), keyed by a lower bound on the time it can fire: the
moment its bucket fits its key cost (one unit, or its burst if smaller) or its cooldown
ends, whichever is later. For a lease of the key cost the lowest entry *is* the token
that can fire soonest; ties between tokens that can all fire now go to the lowest key as
well, which is the one whose bucket has had room the longest (the most headroom, in
time). For other costs :meth:`TokenIndex.best` finds the exact soonest token lane by
lane, pruning every entry whose key is already later than the best time found.
"""

from __future__ import annotations

from itertools import count

from .lanes import Lane, in_key_order, top_of
from .slot import EPS, INF, Slot

Found = list[tuple[Slot, float, float]]  # (slot, when it fires the cost, its key)


class TokenIndex:
    """Lanes of schedulable slots, and the search over them. A base of the scheduler:
    it keeps each slot's entry in step with the slot, through :meth:`reindex`."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[object, ...], Lane[Slot]] = {}
        self._lane_list: list[Lane[Slot]] = []
        self._next_seq = count().__next__
        self._min_rate = INF
        #: A new object each time a tier is made (lanes are never unmade): a cost checked
        #: against this scheduler's limits while it was the same needs no new check
        #: (``Costs.checked``; an object, not a count: costs are shared between pools).
        self.tiers_mark = object()

    def _file(self, slot: Slot) -> None:
        """Put ``slot`` in the lane of its tier (tokens with the same windows)."""
        # Mixed slots never share a lane with plain ones: a lane of one-window plain
        # slots answers by arithmetic on keys, which a mixed slot's windows defy.
        tier = (*((w.burst, w.rate, w.unit) for w in slot.windows), slot.mixed)
        lane = self._lanes.get(tier)
        if lane is None:
            single = len(slot.windows) == 1 and not slot.mixed
            lane = Lane(
                single=single,
                rate=slot.windows[0].rate,
                key_cost=slot.key_cost,
                max_cost=slot.max_cost,
            )
            self._lanes[tier] = lane
            self.tiers_mark = object()
            self._lane_list.append(lane)
        slot.lane.cooled.discard(slot)
        slot.lane = lane
        if slot.cool_until > -INF:
            lane.add_cooled(slot)
        for w in slot.windows:
            self._min_rate = min(self._min_rate, w.rate)

    def reindex(self, slot: Slot, key: float | None = None) -> None:
        """(Re)index ``slot`` at its current key (or ``key``, just computed by the caller),
        or take it out if it may not take another lease (capped, disabled, removed).
        Call it after anything changed the slot's windows, cooldown or cap."""
        lane = slot.lane
        old = lane.retire(slot.seq) if slot.indexed else None
        if slot.in_flight >= slot.cap or slot.disabled or slot.removed:
            slot.seq = -1
            slot.indexed = False
            return
        if key is None:
            key = slot.ready(slot.key_cost)
        # A dropped entry's number is free: the slot keeps it for a later key (see
        # lanes.py), else takes a new one (its old entry may have gone stale).
        seq = slot.seq if old is not None and key > old else self._next_seq()
        slot.seq = seq
        slot.indexed = True
        lane.push((key, seq, slot))

    def unindex(self, slot: Slot) -> None:
        """Take ``slot`` out of the index: no lease goes to it until :meth:`reindex`. (A
        shared-state backend keeps every slot out: it chooses tokens itself.)"""
        if slot.indexed:
            slot.lane.retire(slot.seq)
        slot.seq = -1
        slot.indexed = False

    def _reinstate(self, slot: Slot) -> bool:
        """Index ``slot`` if it is out but may take a lease; returns whether it went in."""
        if slot.indexed or slot.in_flight >= slot.cap or not slot.usable:
            return False
        self.reindex(slot)
        return True

    def lanes(self) -> tuple[Lane[Slot], ...]:
        """The lanes, one per tier, in the order they were made."""
        return tuple(self._lane_list)

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
                        self.reindex(slot)

    @staticmethod
    def _lane_best(lane: Lane[Slot], cost: float, exclude: Slot | None) -> Found:
        if cost > lane.max_cost:
            return []  # no token here can ever take it
        # ``Slot.ready(cost)`` of an uncooled one-window token, from its key: inlined
        # bucket arithmetic (``tests/core/test_inlined.py`` checks it).
        delta = (cost - lane.key_cost) / lane.rate
        cooled = lane.cooled
        found: Found = []
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
        lane: Lane[Slot], cost: float, limit: float, slack: float, exclude: Slot | None
    ) -> Found:
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
