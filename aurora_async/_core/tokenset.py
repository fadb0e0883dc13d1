"""The scheduler's token set: slots joining, leaving, changing limits, cooling, being
disabled; and the costs that set allows (the one cost check).

Every change to a slot's windows, state or cap is made here or in the scheduler, which
re-index the slot in the same step (see ``index.py``); other modules read slots and call
these methods.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator, Sequence

from .._errors import NoTokensAvailable
from .buckets import AnyWindow, fill, spent_levels
from .costs import Costs, KeyCost
from .index import TokenIndex
from .limits import REQUESTS, Limit
from .slot import INF, UNCAPPED, MixedSlot, Slot, drained, drains_at
from .tokens import Token


class TokenSet(TokenIndex):
    """Token slots by token value, with the index over them. A base of the scheduler."""

    def __init__(self, *, trial_in_flight: int | None = 1) -> None:
        TokenIndex.__init__(self)
        self.trial_in_flight = trial_in_flight
        self.slots: dict[str, Slot] = {}  # by token value, in insertion order
        self._retired: dict[str, Slot] = {}  # removed and idle, state not yet drained
        # The retired slots that will drain, by when: (drains_at, tie-break, slot). Entries
        # of slots revived or changed since are stale; prune_retired skips or re-files them.
        self._drains: list[tuple[float, int, Slot]] = []
        self._drain_seq = itertools.count()
        self._usable_costs: dict[float, int] = {}  # max_cost -> usable slots with it
        self._all_costs: dict[float, int] = {}  # max_cost -> slots (any state but removed)
        self.max_cost = 0.0  # the largest cost some usable token can take
        #: Unix time less loop time: where calendar quotas find the wall clock (the pool
        #: sets it when it binds to its loop; ``shift`` keeps it in step).
        self.wall_offset = 0.0
        # The windows of resources other than requests of the slots not removed, by
        # (resource, burst): how many (check_parts reads the largest burst of each).
        self._bursts: dict[tuple[str, float], int] = {}
        # The largest burst of each resource (check_parts), as of the tiers mark it was
        # counted at (the mark moves when a tier is made or a burst comes or goes).
        self._largest: dict[str, float] = {}
        self._largest_mark: object = None
        #: The largest part of each resource a lease has asked (check_parts): what a
        #: restated window's burst never goes below (``Calibration.stated``).
        self.largest_parts: dict[str, float] = {}
        #: Counts changes of membership (tokens added, removed, restored, revived), so a
        #: change planned from a copy of the set can tell whether the set moved since.
        self.membership = 0
        #: The slots (of ``slots``) that may be removed, disabled or cooling: every one
        #: that is is here, so ``stats()`` copies and counts those states for these only
        #: (the others are as a new token's). Pruned by :meth:`marked_states`.
        self.marked: dict[Slot, None] = {}

    # -- joining and leaving -------------------------------------------------------

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
        slot = Slot(token, name, limits, max_in_flight, self.trial_in_flight, now, self.wall_offset)
        if full:
            for w in slot.windows:
                fill(w, now)
        self._file(slot)
        self.slots[token.value] = slot
        self._count(slot, 1)
        self._became_usable(slot)
        self.membership += 1
        return slot

    def shift(self, offset: float) -> None:
        """Move every time the scheduler holds by ``offset`` seconds (the pool was built
        before its event loop ran, on a clock starting at 0) and re-index everything."""
        for slot in [*self.slots.values(), *self._retired.values()]:
            for w in slot.all_windows():
                w.shift(offset)
            if slot.cool_until > -INF:
                slot.cool_until += offset
            slot.epoch += 1
            if slot.indexed:
                self.reindex(slot)
        self.wall_offset -= offset
        self._drains = [(t + offset, seq, slot) for t, seq, slot in self._drains]
        heapq.heapify(self._drains)
        for lane in self._lane_list:
            lane.reindex_cooled()

    def relimit(
        self, slot: Slot, limits: tuple[Limit, ...], now: float, *, keep_same: bool = False
    ) -> None:
        """Give ``slot`` new limit windows. They start full (as if just used to the
        brim), since nothing is known of how the new limits were spent; everything else
        (name, counters, cooldown, disabled, in-flight leases) stays. ``keep_same``: a
        window whose limit is one of ``limits`` stays as it is (calibration moved another
        window: an hourly window's level says what the hour has spent, and filling it
        would hold the token to its hourly pace for up to the hour)."""

        def rewindow() -> None:
            if keep_same:
                was = slot.windows
                slot.set_limits(limits, now, self.wall_offset, keep=was)
                for w in slot.windows:
                    if all(w is not old for old in was):
                        fill(w, now)
                return
            made = list(slot.scoped or ())  # scopes that had windows from a template
            slot.set_limits(limits, now, self.wall_offset)
            for w in slot.windows:
                fill(w, now)
            for scope in made:  # theirs start full too, if a template still makes them
                for w in slot.lease_windows(scope, now):
                    if w.scope == scope:
                        fill(w, now)

        self._rewindow(slot, rewindow)

    def restate(self, slot: Slot, limits: tuple[Limit, ...], now: float) -> None:
        """Give ``slot`` new limits of which only some differ, in place (the server
        stated their size): the windows whose limit stays keep their state (and those
        made for scopes); a new one takes over what the one it replaces held (leases in
        flight settle against it), and the caller raises it to the server's count."""

        def rewindow() -> None:
            was = slot.windows
            slot.set_limits(limits, now, self.wall_offset, keep=was)
            if len(was) == len(slot.windows):
                for old, new in zip(was, slot.windows, strict=True):
                    if new is not old and new.unit == old.unit:
                        new.put(old.level_at(now), now)  # may exceed the new burst: debt

        self._rewindow(slot, rewindow)

    def _count(self, slot: Slot, sign: int) -> None:
        """Count ``slot`` (``sign`` 1) in the costs and bursts of the slots not removed,
        or (-1) no more. A burst of a resource that comes or goes moves the tiers mark,
        so every cost is checked against the bursts there are at its next lease."""
        costs = self._all_costs
        if sign > 0:
            _inc(costs, slot.max_cost)
        else:
            _dec(costs, slot.max_cost)
        if slot.mixed:
            bursts = self._bursts
            for w in slot.windows:
                if w.unit != REQUESTS:
                    key = (w.unit, w.burst)
                    left = bursts.get(key, 0) + sign
                    if left:
                        bursts[key] = left
                    else:
                        del bursts[key]
                    if left == 0 or (sign > 0 and left == 1):
                        self.tiers_mark = object()

    def _rewindow(self, slot: Slot, rewindow: Callable[[], None]) -> None:
        """Change ``slot``'s windows (``rewindow``) with its index, counts and tier in
        step: out of the usable counts, windows changed, filed in its new tier, back."""
        usable = slot.usable
        if usable:
            self._became_unusable(slot)
        if not slot.removed:
            self._count(slot, -1)
        slot.epoch += 1
        rewindow()
        self._file(slot)
        if not slot.removed:
            self._count(slot, 1)
        if usable:
            self._became_usable(slot)

    def remove(self, slot: Slot) -> None:
        """Take no new leases on ``slot``; it stays visible until its calls finish."""
        if slot.removed:
            return
        was_usable = slot.usable
        slot.removed = True
        self.marked[slot] = None
        self.membership += 1
        self._count(slot, -1)
        if was_usable:
            self._became_unusable(slot)
        self.forget_if_idle(slot)

    def restore(self, slot: Slot) -> None:
        """Bring a removed slot back (its token reappeared before its calls ended)."""
        if not slot.removed:
            return
        slot.removed = False
        self.membership += 1
        self._count(slot, 1)
        if not slot.disabled:
            self._became_usable(slot)

    def forget_if_idle(self, slot: Slot) -> bool:
        """Drop a removed slot once its last lease ended. Its state is kept aside
        (retired) until it has drained (see :meth:`prune_retired`), so a token that comes
        back (a reload that briefly left it out) does not start with a fresh bucket, a
        cooldown forgotten or its disabled state lifted."""
        value = slot.token.value
        if slot.removed and slot.in_flight == 0 and self.slots.get(value) is slot:
            del self.slots[value]
            self.marked.pop(slot, None)
            self._retired[value] = slot
            self._file_drain(slot)
            return True
        return False

    def revive(self, value: str) -> Slot | None:
        """The retired slot of the token ``value``, back among the slots (still marked
        removed: ``restore`` it), or ``None``. Call :meth:`prune_retired` first, so a
        drained state is not revived (nothing is lost either way: it carries nothing)."""
        slot = self._retired.pop(value, None)
        if slot is not None:
            self.slots[value] = slot
            self.marked[slot] = None
            self.membership += 1
        return slot

    def known_values(self) -> list[str]:
        """Every token value the set knows: its slots' and the retired ones' (a copy)."""
        return [*self.slots, *self._retired]

    def known_name(self, value: str) -> str | None:
        """The name of the token ``value`` if the set knows it (a slot or retired)."""
        slot = self.slots.get(value) or self._retired.get(value)
        return None if slot is None else slot.name

    def prune_retired(self, now: float) -> list[Slot]:
        """Forget the retired slots that have drained by ``now`` (see
        :func:`~.slot.drained`), and return them. Every other one is kept: its windows
        still hold units, or it is cooling, or disabled.

        What bounds memory: a retired state is kept at most until its cooldown ends and
        its fullest window drains (``level / rate`` after its last lease: for a used
        ``Limit(rate, per)`` at most ``per`` seconds, longer after a 429 that filled it
        past its burst), so a pool rotating tokens keeps those retired within that horizon;
        disabled ones are kept until their token comes back (then they serve disabled,
        until enabled). Each kept state costs what an idle token does (its slot with
        one window and its token: about 0.9 KiB, measured with tracemalloc) plus about
        40 bytes here. A call costs the states it forgets, times a log: the retired are
        on a heap by drain time, never scanned."""
        heap = self._drains
        retired = self._retired
        dropped: list[Slot] = []
        later: dict[int, Slot] = {}
        while heap and heap[0][0] <= now:
            slot = heapq.heappop(heap)[2]
            value = slot.token.value
            if retired.get(value) is not slot:
                continue  # revived since (or forgotten by an earlier entry): stale
            if drained(slot, now):
                del retired[value]
                dropped.append(slot)
            else:  # changed since it was filed (a later cooldown), or float crumbs
                later[id(slot)] = slot
        for slot in later.values():
            self._file_drain(slot)
        return dropped

    def _file_drain(self, slot: Slot) -> None:
        """Put the retired ``slot`` on the heap by when it drains (a disabled one, which
        never drains, is kept off it). A heap grown stale (tokens leaving and coming back
        often) is rebuilt from the retired slots: amortized, a constant per entry."""
        at = drains_at(slot)
        if at < INF:
            heapq.heappush(self._drains, (at, next(self._drain_seq), slot))
        if len(self._drains) > 2 * len(self._retired) + 64:
            self._drains = [
                (t, next(self._drain_seq), s)
                for s in self._retired.values()
                if (t := drains_at(s)) < INF
            ]
            heapq.heapify(self._drains)

    def marked_states(self, now: float) -> dict[Slot, tuple[bool, bool, float, str | None]]:
        """``(removed, disabled, cool_until, reason)`` of every slot that may differ from a
        new token in these (a copy, as they stand); the rest are ``(False, False, -inf,
        None)`` or as good as (a cooldown over by ``now``), and are forgotten here."""
        states = {}
        slots = self.slots
        for slot in self.marked:
            if slots.get(slot.token.value) is not slot:
                continue  # retired (a cooldown set on it after it left)
            if slot.removed or slot.disabled or slot.cool_until > now:
                states[slot] = (slot.removed, slot.disabled, slot.cool_until, slot.reason)
        if len(states) < len(self.marked):
            self.marked = dict.fromkeys(states)
        return states

    def count_states(self, now: float) -> tuple[int, int, float]:
        """``(tokens, active, earliest cooldown end)`` at ``now``: the tokens not
        removed, those of them neither disabled nor cooling, and when the first cooling
        one is back (``inf`` if none is). Counts the marked slots only."""
        removed = disabled = cooling = 0
        ends = INF
        for gone, off, until, _ in self.marked_states(now).values():
            if gone:
                removed += 1
            elif off:
                disabled += 1
            elif until > now:
                cooling += 1
                ends = min(ends, until)
        total = len(self.slots) - removed
        return total, total - disabled - cooling, ends

    def retired_items(self) -> Iterator[tuple[str, Slot]]:
        """``(token value, slot)`` of the retired slots: removed, idle, remembered until
        they drain (read only: :meth:`revive` brings one back)."""
        return iter(list(self._retired.items()))

    # -- state -----------------------------------------------------------------------

    def disable(self, slot: Slot, reason: str) -> bool:
        """Disable ``slot``; returns whether it was usable before."""
        slot.reason = reason
        self.marked[slot] = None
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
        elif self._retired.get(slot.token.value) is slot:
            self._file_drain(slot)  # it can drain now
        return True

    def cool(self, slot: Slot, until: float, now: float | None = None) -> None:
        """Keep ``slot`` from firing before ``until``.

        With ``now`` (the server said the token's quota is spent), its windows are also
        filled as of ``until`` by the one rule of :func:`~.buckets.spent_levels`: one call
        may go when the cooldown ends, then the token fires at its steady rate."""
        if now is not None and _fill_spent(slot.windows, slot.key_cost, until, now):
            slot.epoch += 1
        if until > slot.cool_until or now is not None:
            if until > slot.cool_until:
                slot.cool_until = until
                self.marked[slot] = None
                slot.lane.add_cooled(slot)
            slot.epoch += 1  # a refund must not undo this
            if slot.indexed:
                self.reindex(slot)

    def cool_scope(
        self, slot: Slot, scope: str, until: float, now: float, *, spent: bool = True
    ) -> None:
        """Keep ``slot`` from firing leases of ``scope`` before ``until`` (a 429 in that
        scope: the token still serves the others). ``spent`` (the scope's quota is used
        up): the scope's own windows are also filled by the rule of
        :func:`~.buckets.spent_levels`, as :meth:`cool` fills the token's. Cooldowns over
        by ``now`` are forgotten here, so a token holds only the scopes cooling now."""
        cooling = slot.scope_cool
        if cooling is None:
            cooling = slot.scope_cool = {}
        for name in [name for name, end in cooling.items() if end <= now]:
            del cooling[name]
        if until > cooling.get(scope, -INF):
            cooling[scope] = until
        if spent:
            own = [w for w in slot.lease_windows(scope, now) if w.scope == scope]
            _fill_spent(own, 1.0, until, now)
        slot.epoch += 1  # a refund must not undo this
        if not slot.mixed:  # a plain slot now has a scope's state: the general path
            was = slot.indexed
            self.unindex(slot)
            slot.__class__ = MixedSlot
            slot.key_cost = KeyCost(slot.key_cost)
            self._file(slot)
            if was:
                self.reindex(slot)

    def charge(self, slot: Slot, cost: float, now: float) -> None:
        """Take ``cost`` from ``slot``'s windows outside any lease (a health probe)."""
        slot.take(cost, now)  # bumps the epoch
        if slot.indexed:
            self.reindex(slot)  # its key moved later

    def touched(self, slot: Slot) -> None:
        """``slot``'s windows were changed from outside (a restored state file): note it,
        so no refund restores what they were before, and re-index it."""
        slot.epoch += 1
        if slot.indexed:
            self.reindex(slot)

    def set_cap(self, slot: Slot, max_in_flight: int | None) -> None:
        """Change how many leases ``slot`` may carry at once."""
        slot.full_cap = max_in_flight if max_in_flight is not None else UNCAPPED
        trial = self.trial_in_flight or 1
        slot.cap = slot.full_cap if slot.proven else min(slot.full_cap, trial)
        if slot.indexed and slot.in_flight >= slot.cap:
            self.reindex(slot)  # takes it out
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
        self.unindex(slot)

    @property
    def usable(self) -> int:
        return sum(self._usable_costs.values())

    # -- the cost check ----------------------------------------------------------------

    def fits(self, cost: object) -> bool:
        """Whether some usable token can ever take ``cost``: a number in ``(0, max_cost]``
        (never raises). The cheap guard in front of every grant; :meth:`check_cost`
        says what is wrong when it fails. (``Lease.__aenter__`` inlines it.)"""
        try:
            return 0 < cost <= self.max_cost  # type: ignore[operator]
        except TypeError:
            return False

    def check_cost(self, cost: float) -> None:
        """Raise at once for a lease that can never be granted: the one cost check."""
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

    def check_parts(self, cost: Costs) -> None:
        """Raise at once for a lease whose part in some resource exceeds the burst of
        every token's window of that resource (no lease of it could ever fit). A part in
        a resource no token counts is allowed: it takes nothing. A cost that passes is
        marked (``Costs.checked``) and not checked again until a tier is made."""
        if cost.checked is self.tiers_mark:
            return
        largest = self._largest
        if self._largest_mark is not self.tiers_mark:  # bursts changed since: count again
            largest.clear()
            for unit, burst in self._bursts:
                largest[unit] = max(largest.get(unit, 0.0), burst)
            self._largest_mark = self.tiers_mark
        seen = self.largest_parts
        for unit, units in cost.parts.items():
            most = largest.get(unit)
            if most is not None and units > most:
                raise ValueError(
                    f"cost of {units:g} {unit} exceeds the burst of every token's {unit} "
                    f"limit (largest: {most:g}); no lease of that cost can ever be "
                    "granted. Lower the cost or raise that Limit's burst."
                )
            if units > seen.get(unit, 0.0):
                seen[unit] = units
        cost.checked = self.tiers_mark


def _fill_spent(windows: Sequence[AnyWindow], key_cost: float, until: float, now: float) -> bool:
    """Fill ``windows`` as of ``until`` by the one rule of :func:`~.buckets.spent_levels`
    (one call may go when the cooldown ends, then the steady rate). Returns whether any
    window changed."""
    if not windows:
        return False
    changed = False
    levels = spent_levels([w.limit for w in windows], key_cost, until - now)
    for w, level in zip(windows, levels, strict=True):
        if level is not None:
            spent = level + (until - now) * w.rate  # as of now
            if w.level_at(now) < spent:
                w.put(spent, now)
                changed = True
    return changed


def _inc(counter: dict[float, int], key: float) -> None:
    counter[key] = counter.get(key, 0) + 1


def _dec(counter: dict[float, int], key: float) -> None:
    left = counter[key] - 1
    if left:
        counter[key] = left
    else:
        del counter[key]
