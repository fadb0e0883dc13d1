"""Every inlined copy of the bucket arithmetic and of the grant bookkeeping, checked
against the reference on random histories.

The scheduler inlines ``Window.take`` and ``Window.ready_at`` on its hot paths:
``Slot.ready``, ``Slot.take`` (one window and several), the two fast paths of
``Scheduler.try_take``, the usual grant of ``Scheduler._serve_usual`` and its batch for
a pool of one lane of one-window tokens, ``Scheduler._serve_lane`` (each with its own
undo record), and ``TokenIndex._lane_best`` (a token's ready time from its key). It also
inlines ``count_grant`` and ``reindex`` there (and the queue's counts, in a batch).
Histories of one lane (``same``) take the batch whenever the queue holds one cost. A
state machine drives a scheduler through takes, queued grants, refunds, releases,
cooldowns, relimits, probes and disables on a monotonic clock, and beside it a shadow:
one reference :class:`Window` per real window, changed only by ``Window.take``,
``Window.give_back`` and the spent-window rule, and counters kept by hand. After every
step each window must equal its shadow bit for bit, ``Slot.ready`` must equal the
reference ``ready_at``, each index key must be the time its token can fire its key cost,
and the counters, epochs and index flags must agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from aurora_async import Limit, Token
from aurora_async._core.buckets import Window, spent_levels
from aurora_async._core.scheduler import EPS, INF, Scheduler, Slot, Waiter

#: Tiers of limits: one window, several windows, a burst below one unit (key cost 0.5),
#: a burst above it.
TIERS: tuple[tuple[Limit, ...], ...] = (
    (Limit(4, per=1, burst=2),),
    (Limit(3, per=1, burst=2), Limit(10, per=8)),
    (Limit(2, per=1, burst=0.5),),
    (Limit(1, per=2, burst=3),),
)
COSTS = (1.0, 0.5, 0.25, 1.5, 2.0, 3.0)
#: Lane keys and ready times from different formulas (``_lane_best``) agree this closely.
CLOSE = 1e-9


@dataclass
class Held:
    """A granted lease, as the shadow saw it."""

    slot: Slot
    cost: float
    granted_at: float
    waiter: Waiter | None  # granted from the queue (refunds may undo it exactly)
    before: list[tuple[float, float]]  # the shadow windows right before the grant
    epoch: int  # the shadow epoch right after the grant


def state(windows: tuple[Window, ...] | list[Window]) -> list[tuple[float, float]]:
    return [(w._level, w._last_check) for w in windows]


class InlinedCopies(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.sched = Scheduler(trial_in_flight=None)
        self.shadow: dict[Slot, list[Window]] = {}
        self.epoch: dict[Slot, int] = {}  # the shadow's count of window changes
        self.leases: dict[Slot, int] = {}
        self.units: dict[Slot, float] = {}
        self.held: list[Held] = []
        self.queued: list[Waiter] = []
        #: Index entries (slot: seq) made by the queue's usual grant on one window with a
        #: cooldown already over: their key may leave that cooldown out.
        self.left_out: dict[Slot, int] = {}

    @initialize(
        tiers=st.lists(st.sampled_from(range(len(TIERS))), min_size=1, max_size=4),
        same=st.booleans(),
        caps=st.lists(st.sampled_from([None, 1, 2, 3]), min_size=4, max_size=4),
        full=st.booleans(),
    )
    def tokens(self, tiers: list[int], same: bool, caps: list[int | None], full: bool) -> None:
        for i, tier in enumerate(tiers):
            limits = TIERS[tiers[0] if same else tier]  # one lane: the fully inlined paths
            token = Token(f"secret-token-value-{i:02d}")
            slot = self.sched.add(token, f"t{i}", limits, caps[i], self.now, full=full)
            self.shadow[slot] = [Window(limit, self.now) for limit in limits]
            if full:
                for w in self.shadow[slot]:
                    w.take(w.burst, self.now)
            self.epoch[slot] = 0
            self.leases[slot] = 0
            self.units[slot] = 0.0

    # -- the reference -------------------------------------------------------------------

    def ready(self, slot: Slot, cost: float) -> float:
        """When ``slot`` can fire ``cost``, from the reference windows."""
        return max([slot.cool_until, *(w.ready_at(cost) for w in self.shadow[slot])])

    def eligible(self) -> list[Slot]:
        return [s for s in self.sched.slots.values() if s.usable and s.in_flight < s.cap]

    def took(self, slot: Slot, cost: float, waiter: Waiter | None) -> None:
        before = state(self.shadow[slot])
        for w in self.shadow[slot]:
            w.take(cost, self.now)
        self.epoch[slot] += 1
        self.leases[slot] += 1
        self.units[slot] += cost
        self.held.append(Held(slot, cost, self.now, waiter, before, self.epoch[slot]))
        if waiter is not None and len(slot.windows) == 1 and slot.cool_until < self.now:
            self.left_out[slot] = slot.seq
        else:
            self.left_out.pop(slot, None)

    def key(self, slot: Slot) -> float:
        """``slot``'s key in the index."""
        entries = [e for e in (*slot.lane.fifo, *slot.lane.heap) if e[2] is slot]
        (key,) = [key for key, seq, _ in entries if seq == slot.seq]
        return key

    def check(self) -> None:
        self.windows_equal_the_reference()
        self.keys_are_when_each_token_fires_its_key_cost()
        self.counters_and_epochs_agree()

    def slot_at(self, index: int) -> Slot:
        slots = list(self.sched.slots.values())
        return slots[index % len(slots)]

    # -- rules ---------------------------------------------------------------------------

    @rule(dt=st.sampled_from([0.0, 0.001, 0.125, 0.25, 0.5, 1.0, 3.0]) | st.floats(0, 4))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(cost=st.sampled_from(COSTS))
    def try_take(self, cost: float) -> None:
        sched = self.sched
        readies = {s: self.ready(s, cost) for s in self.eligible()}
        slot = sched.try_take(cost, self.now)
        if slot is None:
            if not sched.waiting:
                soonest = min(readies.values(), default=INF)
                assert soonest > self.now + EPS - CLOSE, "a token could fire, none was leased"
            return
        assert slot in readies, "leased a token that may not take a lease"
        assert readies[slot] <= self.now + EPS + CLOSE
        self.took(slot, cost, None)

    @rule(
        steps=st.lists(
            st.tuples(
                st.sampled_from([0.0, 0.0, 0.001, 0.1, 0.25, 0.5]),
                st.sampled_from([1.0, 1.0, 1.0, 0.5, 2.0]),
                st.booleans(),
            ),
            min_size=1,
            max_size=12,
        )
    )
    def lease_after_lease(self, steps: list[tuple[float, float, bool]]) -> None:
        """Leases in a row, most of the key cost, each ended at once or kept: the fast
        paths' usual traffic."""
        for dt, cost, end in steps:
            self.advance(dt)
            self.try_take(cost)
            if end and self.held and self.held[-1].granted_at == self.now:
                self.release(len(self.held) - 1)

    @rule(cost=st.sampled_from(COSTS), index=st.integers(0, 7))
    def take_other(self, cost: float, index: int) -> None:
        avoid = self.slot_at(index)
        slot = self.sched.take_other(cost, self.now, avoid)
        if slot is not None:
            self.took(slot, cost, None)

    @rule(
        costs=st.lists(st.sampled_from(COSTS), min_size=1, max_size=4),
        wait=st.sampled_from([INF, INF, 0.0, 0.5, 2.0]),
    )
    def enqueue(self, costs: list[float], wait: float) -> None:
        """Waiters join the queue; the shell dispatches when ``enqueue`` says so."""
        for cost in costs:
            if not self.sched.fits(cost):
                continue  # the shell raises at once (check_cost)
            waiter = Waiter(cost, self.now + wait, self.now)
            self.queued.append(waiter)
            if self.sched.enqueue(waiter):
                self.dispatch()

    @rule()
    def timer(self) -> None:
        """The shell's timer fired."""
        self.dispatch()

    def dispatch(self) -> list[Waiter]:
        granted, expired, wake = self.sched.dispatch(self.now)
        for waiter in granted:
            assert waiter.slot is not None
            assert waiter.granted_at == self.now
            undo = [x for pair in state(self.shadow[waiter.slot]) for x in pair]
            assert list(waiter.undo) == undo
            self.took(waiter.slot, waiter.cost, waiter)
        for waiter in expired:
            assert waiter.deadline <= self.now
        assert wake > self.now or not self.sched.waiting
        return granted

    @rule(
        steps=st.lists(
            st.tuples(
                st.sampled_from([0.0, 0.001, 0.1, 0.25, 0.5]),
                st.lists(st.sampled_from([1.0, 1.0, 1.0, 0.5, 2.0]), max_size=3),
                st.booleans(),
            ),
            min_size=1,
            max_size=12,
        )
    )
    def saturated(self, steps: list[tuple[float, list[float], bool]]) -> None:
        """More waiters than tokens: the timer serves them as tokens can fire, and the
        leases end at once or are kept: the queue's usual traffic."""
        for dt, costs, end in steps:
            self.advance(dt)
            self.enqueue(costs, INF)
            for lease in self.dispatch():
                if end:
                    self.release(next(i for i, h in enumerate(self.held) if h.waiter is lease))

    @rule(cost=st.sampled_from(COSTS))
    def granted_then_cancelled(self, cost: float) -> None:
        """A waiter cancelled in the loop turn of its grant: refunded exactly."""
        if not self.sched.fits(cost):
            return
        waiter = Waiter(cost, INF, self.now)
        self.queued.append(waiter)
        self.sched.enqueue(waiter)
        for lease in self.dispatch():
            if lease is waiter:
                self.refund(len(self.held) - 1)

    @rule(index=st.integers(0, 99))
    def cancel_waiting(self, index: int) -> None:
        live = [w for w in self.queued if w.live]
        if live:
            self.sched.cancel(live[index % len(live)])

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 99))
    def cancelled_after_grant(self, index: int) -> None:
        self.refund(index)

    def refund(self, index: int) -> None:
        lease = self.held.pop(index % len(self.held))
        slot = lease.slot
        exact = lease.waiter is not None and lease.epoch == self.epoch[slot]
        if exact:
            for w, (level, last) in zip(self.shadow[slot], lease.before, strict=True):
                w._level, w._last_check = level, last
        else:
            for w in self.shadow[slot]:
                w.give_back(lease.cost, lease.granted_at, self.now)
        self.epoch[slot] += 1
        self.leases[slot] -= 1
        self.units[slot] -= lease.cost
        self.sched.refund(slot, lease.cost, lease.granted_at, self.now, lease.waiter)

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 99))
    def release(self, index: int) -> None:
        self.sched.release(self.held.pop(index % len(self.held)).slot)

    @rule(index=st.integers(0, 7), seconds=st.sampled_from([0.25, 1.0, 9.0]), spent=st.booleans())
    def cool(self, index: int, seconds: float, spent: bool) -> None:
        slot = self.slot_at(index)
        until = self.now + seconds
        if spent:
            windows = self.shadow[slot]
            levels = spent_levels([w.limit for w in windows], slot.key_cost, until - self.now)
            for w, level in zip(windows, levels, strict=True):
                if level is not None:
                    full = level + (until - self.now) * w.rate
                    if w.level_at(self.now) < full:
                        w._level, w._last_check = full, self.now
        if spent or until > slot.cool_until:
            self.epoch[slot] += 1
        self.sched.cool(slot, until, self.now if spent else None)

    @rule(index=st.integers(0, 7), tier=st.sampled_from(range(len(TIERS))))
    def relimit(self, index: int, tier: int) -> None:
        slot = self.slot_at(index)
        self.sched.relimit(slot, TIERS[tier], self.now)
        self.shadow[slot] = [Window(limit, self.now) for limit in TIERS[tier]]
        for w in self.shadow[slot]:
            w.take(w.burst, self.now)
        self.epoch[slot] += 1

    @rule(index=st.integers(0, 7))
    def charge(self, index: int) -> None:
        slot = self.slot_at(index)
        self.sched.charge(slot, slot.key_cost, self.now)
        for w in self.shadow[slot]:
            w.take(slot.key_cost, self.now)
        self.epoch[slot] += 1

    @rule(index=st.integers(0, 7), disable=st.booleans())
    def disable_or_enable(self, index: int, disable: bool) -> None:
        slot = self.slot_at(index)
        if disable:
            self.sched.disable(slot, "by hand")
        else:
            self.sched.enable(slot)

    @rule(cost=st.sampled_from(COSTS))
    def best(self, cost: float) -> None:
        """``best`` (with ``_lane_best``'s ready time from a key) finds a token that can
        fire now if one can (the one with most headroom, not the soonest), else the
        soonest."""
        now = self.now  # any time before it means "ready now" (best forgets cooldowns over)
        readies = {s: max(now, self.ready(s, cost)) for s in self.eligible()}
        slot, t = self.sched.best(cost, now)
        soonest = min(readies.values(), default=INF)
        if slot is not None:
            assert math.isclose(readies[slot], max(now, t), rel_tol=CLOSE, abs_tol=CLOSE)
        if soonest <= now + EPS:
            assert t <= now + EPS + CLOSE
        else:
            assert math.isclose(max(now, t), soonest, rel_tol=CLOSE, abs_tol=CLOSE)

    # -- what must hold after every step -----------------------------------------------

    @invariant()
    def windows_equal_the_reference(self) -> None:
        for slot, shadow in self.shadow.items():
            assert state(slot.windows) == state(shadow), slot.name
            for cost in COSTS:
                assert slot.ready(cost) == self.ready(slot, cost), (slot.name, cost)

    @invariant()
    def keys_are_when_each_token_fires_its_key_cost(self) -> None:
        for slot in self.shadow:
            entries = [e for e in (*slot.lane.fifo, *slot.lane.heap) if e[2] is slot]
            current = [key for key, seq, _ in entries if seq == slot.seq]
            assert slot.indexed == (slot.usable and slot.in_flight < slot.cap)
            assert len(current) == (1 if slot.indexed else 0)
            if current:
                windows = max(w.ready_at(slot.key_cost) for w in self.shadow[slot])
                key = current[0]
                # The queue's usual grant leaves out a cooldown already over (any key at
                # or before now means "ready now" alike); every other path includes it.
                assert key == max(slot.cool_until, windows) or (
                    self.left_out.get(slot) == slot.seq
                    and slot.cool_until < self.now
                    and key == windows
                ), slot.name

    @invariant()
    def counters_and_epochs_agree(self) -> None:
        for slot in self.shadow:
            assert slot.in_flight == sum(1 for h in self.held if h.slot is slot)
            assert slot.leases == self.leases[slot]
            assert slot.units == self.units[slot]
        for lease in self.held:
            if lease.waiter is not None:
                same = lease.waiter.epoch == lease.slot.epoch
                assert same == (lease.epoch == self.epoch[lease.slot])
        assert self.sched.waiting == sum(1 for w in self.queued if w.live)


InlinedCopies.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_inlined_copies_match_the_reference = InlinedCopies.TestCase


def history(tiers: list[int], *steps: tuple[object, ...]) -> InlinedCopies:
    """Run ``steps`` (a rule's name and arguments) on tokens of ``tiers``, checking
    everything after each: for branches too rare to count on random histories."""
    machine = InlinedCopies()
    machine.tokens(tiers, same=False, caps=[None] * 4, full=False)
    machine.check()
    for name, *args in steps:
        getattr(machine, str(name))(*args)
        machine.check()
    return machine


def test_the_fast_paths_key_keeps_a_cooldown_over_but_not_yet_forgotten() -> None:
    # Burst 3 at 1 unit per 2 s: one unit in the bucket, it could fire its key cost 2 s
    # before now; the cooldown that ended at 0.25 is what bounds its key.
    machine = history([3], ("cool", 0, 0.25, False), ("advance", 0.5), ("try_take", 1.0))
    (slot,) = machine.shadow
    assert machine.key(slot) == slot.cool_until == 0.25


def test_a_cooldown_ending_now_bounds_every_key() -> None:
    for grant in [("try_take", 1.0), ("enqueue", [1.0], INF)]:
        machine = history([3], ("cool", 0, 0.5, False), ("advance", 0.5), grant)
        (slot,) = machine.shadow
        assert slot.in_flight == 1
        assert machine.key(slot) == slot.cool_until == 0.5


def test_the_queues_usual_grant_leaves_out_a_cooldown_over() -> None:
    machine = history([3], ("cool", 0, 0.25, False), ("advance", 0.5), ("enqueue", [1.0], INF))
    (slot,) = machine.shadow
    assert slot.in_flight == 1
    assert machine.key(slot) == -1.5  # not 0.25: a key before now means "ready now" alike
