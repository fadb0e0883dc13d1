"""The fast paths of a lease of several resources (``aurora_async._core.vector``): on
random histories, a scheduler whose tokens take them must grant, settle and index exactly
as a twin whose tokens take the general path (``MixedSlot``'s own methods), bit for bit.

Both schedulers hold the same tokens; the twin's have no vector shape (``slot.vector`` is
``None``), which is all that sends a token down the general path. Times, rates and costs
are binary fractions, so equal arithmetic gives equal floats, and any difference (a
window taking the wrong part, a key computed for the wrong cost, a counter forgotten) is
caught at the step that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_async import Costs, Limit, Token, TokenPool
from aurora_async._core import vector
from aurora_async._core.buckets import shape_of
from aurora_async._core.costs import check_costs, settled
from aurora_async._core.scheduler import Scheduler
from aurora_async._core.slot import Slot
from aurora_async._pool.core import core_of

TICK = 1 / 16
TOKENS, INPUT = "tokens", "input_tokens"

#: Token shapes: the usual two windows (both orders), three (the generic loop), and a
#: plain one-window token leased with vectors (its other parts count nowhere).
SHAPES: tuple[tuple[Limit, ...], ...] = (
    (Limit(4, per=1, burst=2), Limit(64, per=1, burst=96, unit=TOKENS)),
    (Limit(32, per=1, burst=64, unit=TOKENS), Limit(2, per=1, burst=3)),
    (Limit(4, per=1, burst=2), Limit(64, per=1, burst=96, unit=TOKENS), Limit(16, unit=INPUT)),
    (Limit(2, per=1, burst=2),),
)
COSTS = (
    Costs(1, {TOKENS: 8}),
    Costs(1, {TOKENS: 40}),
    Costs(2, {TOKENS: 4}),
    Costs(1, {TOKENS: 96}),
    Costs(1, {TOKENS: 8, INPUT: 8}),
    Costs(1, {INPUT: 4}),
    Costs(0.5, {TOKENS: 1}),
    Costs(4, {TOKENS: 1}),  # more requests than some bursts hold
    1.0,
)


@dataclass
class Held:
    name: str
    cost: float
    granted_at: float


def twins(shapes: list[int], caps: list[int | None]) -> tuple[Scheduler, Scheduler]:
    fast, slow = Scheduler(trial_in_flight=None), Scheduler(trial_in_flight=None)
    for i, (shape, cap) in enumerate(zip(shapes, caps, strict=True)):
        for sched in (fast, slow):
            sched.add(Token(f"secret-value-{i:04d}"), f"t{i}", SHAPES[shape], cap, 0.0)
    for slot in slow.slots.values():
        slot.vector = None  # the general path, for every lease
    assert all(slot.vector is not None for slot in fast.slots.values())
    return fast, slow


def lease_now(sched: Scheduler, cost: float, now: float) -> Slot | None:
    """What ``Lease.__aenter__`` asks the scheduler for a lease at ``now``."""
    if type(cost) is Costs:
        return sched.try_take_vector(cost, now)
    return sched.try_take(cost, now)


def by_name(sched: Scheduler) -> dict[str, Slot]:
    return {slot.name: slot for slot in sched.slots.values()}


def assert_same(fast: Scheduler, slow: Scheduler) -> None:
    mine, theirs = by_name(fast), by_name(slow)
    for name, a in mine.items():
        b = theirs[name]
        assert [(w._level, w._last_check) for w in a.windows] == [
            (w._level, w._last_check) for w in b.windows
        ], name
        assert (a.in_flight, a.leases, a.units, a.usage, a.indexed) == (
            b.in_flight,
            b.leases,
            b.units,
            b.usage,
            b.indexed,
        ), name
        assert a.ready(a.key_cost) == b.ready(b.key_cost), name
        for slot in (a, b):  # an index key is exactly when its token fires its key cost
            lane = slot.lane
            keys = [k for k, seq, s in (*lane.fifo, *lane.heap) if s is slot and seq == slot.seq]
            assert keys == ([slot.ready(slot.key_cost)] if slot.indexed else []), name
    for lane in (*fast.lanes(), *slow.lanes()):  # a lane's FIFO stays in key order
        keys = [entry[0] for entry in lane.fifo]
        assert keys == sorted(keys)
    for cost in COSTS:
        found_a, t_a = fast.best(cost, 0.0)
        found_b, t_b = slow.best(cost, 0.0)
        assert t_a == t_b
        assert (found_a and found_a.name) == (found_b and found_b.name)


takes = st.tuples(st.just("take"), st.sampled_from(COSTS))
direct = st.tuples(st.just("take-direct"), st.sampled_from(COSTS))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("wait"), st.integers(0, 24)),
        takes,
        takes,  # leases come thrice as often as each other step
        direct,
        st.tuples(st.just("settle"), st.integers(0, 9), st.integers(0, 128), st.integers(0, 2)),
        st.tuples(st.just("release"), st.integers(0, 9)),
        st.tuples(st.just("cool"), st.integers(0, 3), st.integers(1, 16)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(0, len(SHAPES) - 1), min_size=1, max_size=3),
    st.lists(st.none() | st.integers(1, 3), min_size=4, max_size=4),
    steps,
)
def test_the_vector_paths_grant_settle_and_index_as_the_general_path(
    shapes: list[int], caps: list[int | None], history: list[tuple[object, ...]]
) -> None:
    fast, slow = twins(shapes, caps[: len(shapes)])
    now = 0.0
    held: list[Held] = []

    def took(a: Slot | None, b: Slot | None, cost: float) -> None:
        assert (a and a.name) == (b and b.name)
        if a is not None:
            held.append(Held(a.name, cost, now))

    for step in history:
        match step:
            case ("wait", int(ticks)):
                now += ticks * TICK
            case ("take", cost):  # as Lease.__aenter__ takes it
                a, b = (lease_now(sched, cost, now) for sched in (fast, slow))  # type: ignore[arg-type]
                took(a, b, cost)  # type: ignore[arg-type]
            case ("take-direct", cost):  # try_take itself (take_other, a retry, comes here)
                a = fast.try_take(cost, now)  # type: ignore[arg-type]
                b = slow.try_take(cost, now)  # type: ignore[arg-type]
                took(a, b, cost)  # type: ignore[arg-type]
            case ("settle", int(i), int(tokens), int(requests)) if held:
                lease = held[i % len(held)]
                actual = {TOKENS: tokens} if requests == 0 else {"requests": requests}
                cost = settled(lease.cost, actual)
                results = [
                    sched.settle(
                        by_name(sched)[lease.name], lease.cost, cost, now, lease.granted_at
                    )
                    for sched in (fast, slow)
                ]
                assert results[0] == results[1]
                lease.cost = cost
            case ("release", int(i)) if held:
                lease = held.pop(i % len(held))
                assert fast.release(by_name(fast)[lease.name]) == slow.release(
                    by_name(slow)[lease.name]
                )
            case ("cool", int(i), int(ticks)):
                names = sorted(by_name(fast))
                name = names[i % len(names)]
                for sched in (fast, slow):
                    sched.cool(by_name(sched)[name], now + ticks * TICK)
            case _:
                pass
        assert_same(fast, slow)


def test_the_fast_path_is_the_one_taken_for_a_vector_on_plain_buckets() -> None:
    # A loop of vector leases on two-window tokens takes the vector path at every lease
    # (its twin without a shape never does), and a cost remembers its parts per shape.
    fast, _ = twins([0, 0], [None, None])
    cost = Costs(1, {TOKENS: 8})
    taken = [lease_now(fast, cost, i * TICK) for i in range(6)]
    assert [slot.name for slot in taken if slot] == ["t0", "t1"] * 3
    shape = shape_of(taken[0].windows)  # type: ignore[union-attr]
    assert shape == ("requests", TOKENS)
    assert cost.plan == (shape, (1.0, 8.0))
    assert cost.plan[0] is shape  # one object per shape: checked by identity


def test_a_vector_needs_room_for_every_part_not_only_the_key_cost() -> None:
    # The token is due (its key: it fires one request now), but two requests do not fit
    # its burst of 2 after one: no lease, though tokens have room.
    fast, _ = twins([0], [None])
    assert lease_now(fast, Costs(1, {TOKENS: 8}), 0.0) is not None
    assert lease_now(fast, Costs(2, {TOKENS: 4}), 0.0) is None
    assert lease_now(fast, Costs(1, {TOKENS: 89}), 0.0) is None  # 8 + 89 > 96
    assert lease_now(fast, Costs(1, {TOKENS: 88}), 0.0) is not None


def test_a_cooldown_just_over_still_bounds_the_new_key() -> None:
    # Cooled until 1.0, leased at 1.25: its windows alone would fire the key cost at
    # 0.75 (requests) and before (tokens), so the key is the cooldown's end (as the
    # general path says).
    fast, slow = twins([1], [None])
    for sched in (fast, slow):
        sched.cool(by_name(sched)["t0"], 1.0)
        assert lease_now(sched, Costs(1, {TOKENS: 8}), 1.25) is not None
    assert_same(fast, slow)
    assert by_name(fast)["t0"].ready(Costs(1, {TOKENS: 8})) == 1.0


def test_a_settle_that_moves_a_key_earlier_keeps_the_index_in_order() -> None:
    # t1, the last leased, settles one request back: its key (0.25 -> 0) goes before
    # t0's, so it cannot stay at the back of the lane's FIFO; the next lease goes to it.
    fast, slow = twins([0, 0], [None, None])
    two = Costs(2, {TOKENS: 4})
    for sched in (fast, slow):
        a, b = lease_now(sched, two, 0.0), lease_now(sched, two, 0.0)
        assert (a and a.name, b and b.name) == ("t0", "t1")
        assert sched.settle(b, two, Costs(1, {TOKENS: 4}), 0.0, 0.0) is True  # type: ignore[arg-type]
    assert_same(fast, slow)
    for sched in (fast, slow):
        taken = lease_now(sched, Costs(1, {TOKENS: 4}), 0.0)
        assert taken is not None
        assert taken.name == "t1"
    assert_same(fast, slow)


def test_a_token_leased_before_one_cooling_longer_keeps_the_index_in_order() -> None:
    # t1 cools until 10 s: its entry, the lane's last, is keyed 10. t0, leased at once,
    # is next keyed at 0.25 s: before t1's, so not at the back of the lane's FIFO.
    fast, slow = twins([0, 0], [None, None])
    for sched in (fast, slow):
        sched.cool(by_name(sched)["t1"], 10.0)
        taken = lease_now(sched, Costs(2, {TOKENS: 4}), 0.0)
        assert taken is not None
        assert taken.name == "t0"
    assert_same(fast, slow)
    for sched in (fast, slow):  # and t0 is the top again when it can fire
        taken = lease_now(sched, Costs(1, {TOKENS: 4}), 0.25)
        assert taken is not None
        assert taken.name == "t0"
    assert_same(fast, slow)


def test_shapes_are_only_plain_buckets_of_no_scope() -> None:
    sched = Scheduler(trial_in_flight=None)
    daily = sched.add(Token("secret-value-d"), "d", (Limit.daily(100, unit=TOKENS),), None, 0.0)
    scoped = sched.add(Token("secret-value-s"), "s", (Limit(1, scope="x"),), None, 0.0)
    plain = sched.add(Token("secret-value-p"), "p", (Limit(1),), None, 0.0)
    assert (daily.vector, scoped.vector, plain.vector) == (None, None, ("requests",))


def test_a_cost_the_fast_path_cannot_take_goes_the_general_way() -> None:
    # A scope, requests of 0, or a part out of range: vector.take changes nothing and
    # leaves the lease to the general path (which grants a scope; the pool refuses the
    # others before they reach the scheduler: see the next test).
    fast, _ = twins([0], [None])
    slot = next(iter(fast.slots.values()))
    before = [(w._level, w._last_check) for w in slot.windows]
    for odd in (
        Costs(1, {TOKENS: 8}, "search"),
        Costs(0.0, {TOKENS: 1}),
        Costs(1, {TOKENS: -1.0}),
        Costs(1, {TOKENS: float("nan")}),
        Costs(1, {TOKENS: 97}),  # above the burst
    ):
        assert vector.take(slot, odd, 0.0) is None
    assert [(w._level, w._last_check) for w in slot.windows] == before
    assert (slot.in_flight, slot.leases, slot.epoch) == (0, 0, 0)
    assert fast.try_take(Costs(1, {TOKENS: 8}, "search"), 0.0) is slot


@pytest.mark.parametrize(
    ("cost", "words"),
    [
        (Costs(0.0, {TOKENS: 5}), "requests must be above 0"),
        (Costs(1, {TOKENS: -5}), "tokens must be a finite number >= 0"),
        (Costs(1, {TOKENS: float("inf")}), "tokens must be a finite number >= 0"),
        (Costs(1, {"": 5}), "resource"),
        (Costs(1, {TOKENS: 5}, "no spaces"), "scope"),
        (Costs(1, {"requests": 5}), "requests are the Costs' number itself"),
    ],
)
def test_a_costs_made_by_hand_is_checked_before_its_first_lease(cost: Costs, words: str) -> None:
    with pytest.raises((ValueError, TypeError), match=words):
        check_costs(cost)
    pool = TokenPool([Token("secret-value-a", limits=SHAPES[0])])
    with pytest.raises((ValueError, TypeError), match=words):
        pool.lease(cost=cost)


def test_a_costs_made_once_is_checked_again_when_a_tier_is_made() -> None:
    # A Costs is checked against the tokens' limits once, then leased without a check,
    # until tokens of new limits join (a check may now pass or fail otherwise).
    small = (Limit(4), Limit(64, unit=TOKENS))
    pool = TokenPool([Token("secret-value-a", limits=small)])
    sched = core_of(pool).sched
    fits = Costs(1, {TOKENS: 64})
    pool.lease(cost=fits)
    assert fits.checked is sched.tiers_mark
    big = Costs(1, {TOKENS: 100})
    with pytest.raises(ValueError, match="exceeds the burst"):
        pool.lease(cost=big)
    assert big.checked is None
    sched.add(Token("secret-value-b"), "b", (Limit(4), Limit(128, unit=TOKENS)), None, 0.0)
    assert fits.checked is not sched.tiers_mark  # a new tier: checked again at its lease
    pool.lease(cost=big)  # a tier that holds it now
    assert big.checked is sched.tiers_mark
    pool.lease(cost=fits)
    assert fits.checked is sched.tiers_mark


def test_a_cost_checked_by_one_pool_is_checked_again_by_another() -> None:
    # Costs (and the conversion of a mapping) are shared between pools: what fits one
    # pool's limits may not fit another's, whatever their number of tiers.
    roomy = TokenPool([Token("secret-value-a", limits=(Limit(4), Limit(1000, unit=TOKENS)))])
    tight = TokenPool([Token("secret-value-b", limits=(Limit(4), Limit(100, unit=TOKENS)))])
    cost = Costs(1, {TOKENS: 500})
    roomy.lease(cost=cost)
    with pytest.raises(ValueError, match="exceeds the burst"):
        tight.lease(cost=cost)
    roomy.lease(cost={TOKENS: 500})
    with pytest.raises(ValueError, match="exceeds the burst"):
        tight.lease(cost={TOKENS: 500})


def test_a_costs_made_by_hand_keeps_what_was_checked_when_its_dict_changes() -> None:
    # The parts a Costs was made with are copied at its first lease: a caller changing
    # its own dict afterwards changes neither the windows' part nor what was checked.
    pool = TokenPool([Token("secret-value-a", limits=SHAPES[0])], trial_in_flight=None)
    parts = {TOKENS: 8.0}
    cost = Costs(1, parts)

    async def main() -> tuple[float, ...]:
        async with pool:
            async with pool.lease(cost=cost):
                pass
            parts[TOKENS] = 60.0
            async with pool.lease(cost=cost):
                pass
        slot = next(iter(core_of(pool).sched.slots.values()))
        return (cost.parts[TOKENS], slot.usage[TOKENS])  # type: ignore[index]

    import asyncio

    assert asyncio.run(main()) == (8.0, 16.0)


def test_a_mapping_with_a_value_of_no_number_says_so() -> None:
    pool = TokenPool([Token("secret-value-a", limits=SHAPES[0])])
    pool.lease(cost={TOKENS: 8})  # seen before: the fast lookup holds it
    with pytest.raises(TypeError, match="cost: tokens must be a number, not list"):
        pool.lease(cost={TOKENS: [8]})  # type: ignore[dict-item]


def test_a_lease_of_several_resources_takes_the_vector_path_and_a_number_does_not() -> None:
    # The class of a lease picks the scheduler's fast path (no test of the cost's type
    # at each lease): a Costs or a mapping of several resources, the vector path.
    from aurora_async._pool.lease import VectorLease

    pool = TokenPool([Token("secret-value-a", limits=SHAPES[0])])
    assert VectorLease.__dict__["_try"].__func__ is Scheduler.try_take_vector
    for cost in (Costs(1, {TOKENS: 8}), {TOKENS: 8}, {"requests": 1, TOKENS: 8}):
        assert type(pool.lease(cost=cost)) is VectorLease
        assert type(pool.lease(cost=cost, scope="search")) is VectorLease
    for number in (1, 2.0, {"requests": 2}):
        assert type(pool.lease(cost=number)) is not VectorLease
