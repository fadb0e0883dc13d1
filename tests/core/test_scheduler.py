"""The pure scheduler: explicit scenarios with exact times (binary fractions)."""

from __future__ import annotations

import math

import pytest

from aurora_async import Limit, NoTokensAvailable, Token
from aurora_async._core.scheduler import INF, Scheduler, Slot, TokenState, Waiter


def make(*limits: Limit | tuple[Limit, ...], trial: int | None = None, cap: int | None = None):
    sched = Scheduler(trial_in_flight=trial)
    slots = []
    for i, lim in enumerate(limits):
        lims = lim if isinstance(lim, tuple) else (lim,)
        slots.append(sched.add(Token(f"secret-value-number-{i}"), f"t{i}", lims, cap, 0.0))
    return sched, slots


def names(granted: list[Waiter]) -> list[str]:
    return [w.slot.name for w in granted if w.slot is not None]


def test_a_fresh_token_fires_its_burst_then_at_its_rate() -> None:
    sched, (a,) = make(Limit(4, per=1, burst=2))
    assert sched.try_take(1, 0.0) is a
    assert sched.try_take(1, 0.0) is a
    assert sched.try_take(1, 0.0) is None
    assert sched.best(1, 0.0) == (a, 0.25)
    assert sched.try_take(1, 0.25) is a


def test_ties_go_to_the_token_with_most_headroom() -> None:
    sched, (a, b) = make(Limit(4, per=1), Limit(4, per=1))
    assert sched.try_take(1, 0.0) is a  # equal: the first added
    assert sched.try_take(1, 0.0) is b  # a has less room now
    assert sched.try_take(1, 0.0) is a
    assert sched.try_take(1, 0.5) is b  # both drained to 0; b has been empty longer
    assert sched.try_take(1, 0.5) is a


def test_soonest_across_tiers_for_unit_and_larger_costs() -> None:
    slow, fast = Limit(1, per=1, burst=4), Limit(8, per=1, burst=4)
    sched, (s, f) = make(slow, fast)
    for _ in range(4):
        sched.try_take(1, 0.0)
    for _ in range(4):
        sched.try_take(1, 0.0)
    assert (s.ready(1), f.ready(1)) == (1.0, 0.125)
    assert sched.best(1, 0.0) == (f, 0.125)
    assert sched.best(3, 0.0) == (f, 0.375)  # slow would need 3 s
    sched.cool(f, 5.0)  # a 429 on the fast one: now the slow one is sooner for cost 3
    assert sched.best(3, 0.0) == (s, 3.0)
    assert sched.best(1, 0.0) == (s, 1.0)


def test_search_finds_a_ready_token_below_a_top_that_cannot_take_the_cost() -> None:
    # Six one-unit tokens idle for ages sit on top of the heap (lowest unit keys), but
    # none can ever take cost 2; the one token that can is deep below them.
    sched = Scheduler(trial_in_flight=None)
    ones = [
        sched.add(Token(f"secret-one-unit-{i}"), f"u{i}", (Limit(1, burst=1),), None, -10.0 + i)
        for i in range(6)
    ]
    two = sched.add(Token("secret-two-units"), "two", (Limit(4, burst=2),), None, 0.0)
    assert sched.best(1, 0.0) == (ones[0], -10.0)
    assert sched.best(2, 0.0) == (two, 0.0)
    assert sched.try_take(2, 0.0) is two
    assert sched.best(2, 0.0) == (two, 0.5)  # still the soonest, later
    assert sched.best(2, 0.0, exclude=two) == (None, INF)


def test_fractional_costs_below_the_key_cost() -> None:
    sched, (a, b) = make(Limit(2, per=1, burst=1), Limit(2, per=1, burst=1))
    assert sched.try_take(0.5, 0.0) is a
    assert sched.try_take(0.5, 0.0) is b
    assert sched.try_take(0.5, 0.0) is a
    assert sched.try_take(0.5, 0.0) is b
    assert sched.try_take(0.5, 0.0) is None
    assert sched.best(0.5, 0.0) == (a, 0.25)


def test_in_flight_cap_takes_a_token_out_until_release() -> None:
    sched, (a, b) = make(Limit(100), Limit(100), cap=1)
    assert sched.try_take(1, 0.0) is a
    assert sched.try_take(1, 0.0) is b
    assert sched.try_take(1, 0.0) is None
    assert sched.best(1, 0.0) == (None, INF)
    assert sched.release(b) is True
    assert sched.try_take(1, 0.0) is b


def test_trial_cap_until_a_token_is_proven() -> None:
    sched, (a,) = make(Limit(100), trial=1)
    assert sched.try_take(1, 0.0) is a
    assert sched.try_take(1, 0.0) is None  # one at a time until proven
    assert sched.mark_proven(a) is True  # the cap lifts: it can take more now
    assert sched.try_take(1, 0.0) is a
    assert a.in_flight == 2
    assert sched.mark_proven(a) is False  # already proven


def test_disable_enable_remove_restore_and_the_largest_cost() -> None:
    sched, (small, big) = make(Limit(2, burst=2), Limit(8, burst=8))
    assert sched.max_cost == 8
    assert sched.disable(big, "HTTP 401") is True
    assert big.state(0.0) is TokenState.DISABLED
    assert big.reason == "HTTP 401"
    assert sched.max_cost == 2
    with pytest.raises(NoTokensAvailable, match="no usable token can take cost 5"):
        sched.check_cost(5)
    with pytest.raises(ValueError, match="exceeds the burst of every token"):
        sched.check_cost(9)
    assert sched.enable(big) is True
    assert big.reason is None
    sched.remove(small)
    assert small.state(0.0) is TokenState.REMOVED
    assert "secret-value-number-0" not in sched.slots  # idle: forgotten at once
    sched.disable(big, "gone")
    with pytest.raises(NoTokensAvailable, match="every token is disabled or removed"):
        sched.check_cost(1)


@pytest.mark.parametrize(
    ("cost", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
    ],
)
def test_invalid_costs(cost: object, error: type[Exception]) -> None:
    sched, _ = make(Limit(2))
    with pytest.raises(error, match="cost must be"):
        sched.check_cost(cost)  # type: ignore[arg-type]


def test_removed_token_finishes_in_flight_then_disappears() -> None:
    sched, (a, b) = make(Limit(4), Limit(4))
    assert sched.try_take(1, 0.0) is a
    sched.remove(a)
    assert a.state(0.0) is TokenState.REMOVED
    assert a.in_flight == 1
    assert sched.try_take(1, 0.0) is b  # a takes no new leases
    assert sched.try_take(1, 0.0) is b
    assert sched.release(a) is False
    assert "secret-value-number-0" not in sched.slots


def test_restore_brings_a_removed_token_back_with_its_state() -> None:
    sched, (a,) = make(Limit(4, burst=2))
    sched.try_take(1, 0.0)
    sched.try_take(1, 0.0)
    sched.remove(a)
    assert sched.best(1, 0.0) == (None, INF)
    sched.restore(a)
    assert sched.best(1, 0.0) == (a, 0.25)  # its bucket is still full


def test_fifo_head_waits_and_cheaper_waiters_backfill_other_tokens() -> None:
    sched, (x, y) = make(Limit(4, per=1, burst=4), Limit(4, per=1, burst=2))
    for _ in range(4):
        sched.try_take(1, 0.0)  # x full
    sched.try_take(1, 0.0)  # y at level 1
    sched.try_take(1, 0.0)  # y at level 2: full
    head = Waiter(3, INF, 0.0)  # only x can ever take 3: at 0.75
    cheap = Waiter(1, INF, 0.0)
    assert sched.enqueue(head) is True
    granted, expired, wake = sched.dispatch(0.0)
    assert (granted, expired, wake) == ([], [], 0.75)
    assert sched.enqueue(cheap) is True  # cheaper than the head: may backfill
    granted, _, wake = sched.dispatch(0.0)
    assert granted == []
    assert wake == 0.25
    granted, _, wake = sched.dispatch(0.25)
    assert granted == [cheap]
    assert cheap.slot is y
    assert wake == 0.75
    granted, _, _ = sched.dispatch(0.75)
    assert granted == [head]
    assert head.slot is x


def test_deadlines_expire_waiters_and_wake_the_timer() -> None:
    sched, (_a,) = make(Limit(1, per=1, burst=1))
    sched.try_take(1, 0.0)
    early = Waiter(1, 0.5, 0.0)
    later = Waiter(1, 0.25, 0.0)
    sched.enqueue(early)
    sched.enqueue(later)
    granted, expired, wake = sched.dispatch(0.0)
    assert (granted, expired, wake) == ([], [], 0.25)
    granted, expired, wake = sched.dispatch(0.25)
    assert expired == [later]
    assert wake == 0.5
    granted, expired, wake = sched.dispatch(0.5)
    assert expired == [early]
    assert wake == INF
    assert sched.waiting == 0


def test_a_waiter_due_exactly_at_its_deadline_is_granted() -> None:
    sched, (_a,) = make(Limit(4, per=1, burst=1))
    sched.try_take(1, 0.0)
    w = Waiter(1, 0.25, 0.0)
    sched.enqueue(w)
    granted, expired, _ = sched.dispatch(0.25)
    assert granted == [w]
    assert expired == []


def test_cancelling_the_head_asks_for_a_dispatch_and_others_do_not() -> None:
    sched, (_a,) = make(Limit(1, burst=1))
    sched.try_take(1, 0.0)
    first, second, third = Waiter(1, INF, 0.0), Waiter(1, INF, 0.0), Waiter(1, INF, 0.0)
    for w in (first, second, third):
        sched.enqueue(w)
    assert sched.cancel(second) is False
    assert sched.cancel(first) is True
    assert sched.cancel(first) is False  # already gone
    granted, _, _ = sched.dispatch(1.0)
    assert granted == [third]


def test_refund_gives_capacity_back_to_the_next_waiter_at_once() -> None:
    sched, (a,) = make(Limit(1, burst=1))
    w1, w2 = Waiter(1, INF, 0.0), Waiter(1, INF, 0.0)
    sched.try_take(1, 0.0)
    sched.enqueue(w1)
    sched.enqueue(w2)
    granted, _, wake = sched.dispatch(1.0)
    assert granted == [w1]
    assert wake == 2.0
    assert sched.refund(a, 1, 1.0, 1.0) is True  # w1 was cancelled before it resumed
    granted, _, _ = sched.dispatch(1.0)
    assert granted == [w2]


def test_unservable_waiters_fail_when_their_tokens_go() -> None:
    sched, (_small, big) = make(Limit(2, burst=2), Limit(8, burst=8))
    assert sched.try_take(8, 0.0) is big
    w = Waiter(5, INF, 0.0)
    sched.enqueue(w)
    sched.disable(big, "HTTP 401")
    assert sched.unservable() == [w]
    assert sched.waiting == 0


def test_stale_lane_entries_are_compacted() -> None:
    sched, slots = make(*(Limit(4) for _ in range(3)))
    for i in range(200):
        sched.cool(slots[i % 3], float(i))  # each cooldown leaves a stale entry behind
    (lane,) = sched._lane_list
    assert len(lane) <= 2 * len(sched.slots) + 64
    assert lane.stale == len(lane) - 3  # every entry but the three current ones
    assert sched.best(1, 0.0)[0] is slots[197 % 3]


def test_a_token_keeps_its_entry_number_only_when_its_entry_is_dropped() -> None:
    # Entry numbers mark the current entry: one may serve again only once its entry is
    # out of the index (dropped at a front) and for a later key; an entry left behind
    # makes the next new (an equal key too: the test below).
    sched, (a, b) = make(Limit(4, per=1), Limit(4, per=1))
    (lane,) = sched._lane_list
    first = b.seq
    sched.reindex(b, 5.0)  # b is behind a: its entry stays, stale
    assert b.seq != first
    assert lane.stale == 1
    kept = a.seq
    sched.reindex(a, 6.0)  # a is at the front: its entry goes
    assert a.seq == kept
    assert lane.stale == 1
    assert [e[2].name for e in lane.fifo if e[1] == e[2].seq] == ["t1", "t0"]


def test_slot_repr_and_state_never_show_the_secret() -> None:
    sched, (a,) = make(Limit(4), cap=2)
    text = repr(a) + repr(sched.slots)
    assert "secret-value-number-0" not in repr(a)
    assert "t0" in text
    assert a.state(0.0) is TokenState.ACTIVE
    sched.cool(a, 1.0)
    assert a.state(0.5) is TokenState.COOLING
    assert a.headroom(0.0) == 4


def test_slots_are_slotted() -> None:
    assert not hasattr(Slot, "__dict__") or "__dict__" not in Slot.__dict__


def test_the_queue_split_by_cost_holds_no_more_than_the_queue() -> None:
    # Waiters of costs 1 and 3 in turn; each second the token serves 4 units, so two
    # waiters (one of each cost) are always left queued and the split stays in use.
    sched, (a,) = make(Limit(4, per=1, burst=4))
    assert sched.try_take(4, 0.0) is a
    for k in range(1, 501):
        sched.enqueue(Waiter(1, INF, 0.0))
        sched.enqueue(Waiter(3, INF, 0.0))
        if k == 1:
            continue  # the first pair waits a second for the token to drain
        granted, _, _ = sched.dispatch(float(k))
        assert [w.cost for w in granted] == [1, 3]
        assert sched._by_cost is not None
        assert sum(len(q) for q in sched._by_cost.values()) == sched.waiting == 2
    granted, _, _ = sched.dispatch(501.0)
    assert [w.cost for w in granted] == [1, 3]
    assert sched.waiting == 0
    assert sched._by_cost is None  # costs are uniform again: the split is dropped


def test_cooling_tokens_cost_best_nothing_until_their_cooldowns_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sched, slots = make(*(Limit(4, per=1, burst=4) for _ in range(1001)))
    busy, cooling = slots[0], slots[1:]
    for i, slot in enumerate(cooling):
        sched.cool(slot, 100.0 + i)
    for _ in range(4):
        assert sched.try_take(1, 0.0) is busy  # the only token not cooling
    calls = 0
    ready = Slot.ready

    def counted(slot: Slot, cost: float) -> float:
        nonlocal calls
        calls += 1
        return ready(slot, cost)

    monkeypatch.setattr(Slot, "ready", counted)
    assert sched.best(2, 0.0) == (busy, 0.5)
    assert calls <= 2  # not one look per cooling token
    sched.cool(busy, 10_000.0)
    calls = 0
    assert sched.best(4, 99.0) == (cooling[0], 100.0)
    assert sched.best(4, 99.0, exclude=cooling[0]) == (cooling[1], 101.0)
    assert calls <= 6
    # Cooldowns that end bring their tokens back (and only those are looked at).
    assert sched.best(2, 100.0) == (cooling[0], 100.0)
    slot, t = sched.best(2, 150.5, exclude=cooling[0])
    assert t <= 150.5
    assert slot in cooling[:51]
    assert sum(len(lane.cooled) for lane in sched._lane_list) == 1000 - 51 + 1


def test_take_other_prefers_any_other_token_that_can_fire_now() -> None:
    sched, (a, b) = make(Limit(100, per=1), Limit(2, per=1))
    assert sched.take_other(1, 0.0, avoid=a) is b  # b has less headroom, but is not a
    assert sched.take_other(1, 0.0, avoid=a) is b
    assert sched.take_other(1, 0.0, avoid=a) is a  # b is spent: a after all
    assert sched.take_other(1, 0.0, avoid=b) is a
    assert sched.take_other(3, 0.0, avoid=a) is a  # only a's burst fits 3
    assert sched.take_other(101, 0.0, avoid=a) is None  # no token can ever take it
    assert sched.take_other("1", 0.0, avoid=a) is None  # type: ignore[arg-type]
    sched.enqueue(Waiter(1, INF, 0.0))
    assert sched.take_other(1, 0.0, avoid=a) is None  # waiters come first


def test_ties_held_by_an_ended_cooldown_alternate_between_lanes() -> None:
    # Both cooled until 5: their keys stay at 5 while their buckets have room, so every
    # lease ties; the token just leased must not keep winning the ties (review).
    sched, (a, b) = make(Limit(10, per=1), Limit(11, per=1))  # two tiers: two lanes
    sched.cool(a, 5.0)
    sched.cool(b, 5.0)
    order = []
    for i in range(12):
        slot = sched.try_take(1.0, 5.001 + i * 1e-6)
        assert slot is not None
        order.append(slot.name)
    assert "".join(n[1] for n in order) == "010101010101"
