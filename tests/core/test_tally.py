"""A token's usage of other resources (``Slot.usage``), counted as runs of one cost
(``aurora_async._core.tally``): on random histories of grants, take-backs and reads, it
must equal, float for float, a dict to which every grant added its parts one at a time
(what the scheduler did before runs). A settle corrects the dict and leaves the run."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from aurora_async import Costs, Limit, Token, TokenPool
from aurora_async._core import tally
from aurora_async._core.slot import Slot
from aurora_async._pool.core import core_of

TOKENS, INPUT = "tokens", "input_tokens"
LIMITS = (Limit(100, per=1), Limit(100_000, per=1, unit=TOKENS))

#: Whole and fractional parts (0.1 sums differ from 0.1 times n: only repeated adding
#: gives the reference's floats), a part of 0, a cost of no part, a huge whole part.
COSTS = (
    Costs(1, {TOKENS: 500}),
    Costs(1, {TOKENS: 0.1}),
    Costs(1, {TOKENS: 3, INPUT: 0.3}),
    Costs(2, {INPUT: 0}),
    Costs(1, {}),
    Costs(1, {TOKENS: 2.0**52}),
    Costs(1, {TOKENS: 1 / 3}),
)


def a_slot() -> Slot:
    return Slot(Token("secret-value"), "tok", (Limit(1e9),), None, None, 0.0)


def add(reference: dict[str, float], cost: Costs, sign: float) -> None:
    for unit, units in cost.parts.items():
        reference[unit] = reference.get(unit, 0.0) + sign * units


steps = st.lists(
    st.tuples(st.sampled_from(("grant", "grant", "grant", "take back", "read")), st.integers(0, 6)),
    max_size=80,
)


@given(steps)
def test_usage_is_the_grant_by_grant_sum(history: list[tuple[str, int]]) -> None:
    slot = a_slot()
    reference: dict[str, float] = {}
    for step, which in history:
        cost = COSTS[which]
        if step == "grant":
            slot.count_usage(cost)
            add(reference, cost, 1.0)
        elif step == "take back":
            slot.count_usage(cost, -1.0)
            add(reference, cost, -1.0)
        else:
            assert (slot.usage or {}) == reference
    usage = slot.usage or {}
    assert usage == reference
    assert {unit: n.hex() for unit, n in usage.items()} == {
        unit: float(n).hex() for unit, n in reference.items()
    }


def test_a_run_of_one_cost_counts_without_touching_the_dict() -> None:
    slot = a_slot()
    cost = Costs(1, {TOKENS: 500})
    for _ in range(3):
        slot.count_usage(cost)
    assert slot.tally is None  # nothing folded yet
    assert slot.run is not None
    assert (slot.run.cost, slot.run.times) == (cost, 3)
    assert slot.usage == {TOKENS: 1500.0}
    assert slot.run.times == 0  # folded by the read, kept for the next grant
    slot.count_usage(cost)
    assert slot.usage == {TOKENS: 2000.0}


def test_another_cost_folds_the_run_first() -> None:
    slot = a_slot()
    first, second = Costs(1, {TOKENS: 10}), Costs(1, {INPUT: 7})
    slot.count_usage(first)
    slot.count_usage(first)
    slot.count_usage(second)
    assert slot.tally == {TOKENS: 20.0}
    assert slot.run is not None
    assert (slot.run.cost, slot.run.times) == (second, 1)
    assert slot.usage == {TOKENS: 20.0, INPUT: 7.0}


def test_fold_adds_fractions_one_at_a_time() -> None:
    run = tally.Run(Costs(1, {TOKENS: 0.1}))
    run.times = 10
    total = 0.0
    for _ in range(10):
        total += 0.1
    assert total != 0.1 * 10  # the case that needs the loop
    assert tally.fold(None, run) == {TOKENS: total}
    assert run.times == 0


def test_fold_of_whole_units_beyond_exact_floats_adds_one_at_a_time() -> None:
    run = tally.Run(Costs(1, {TOKENS: 3}))
    run.times = 4
    start = 2.0**53 - 2  # past 2**53 a float holds only even numbers: sums round
    expected = start
    for _ in range(4):
        expected += 3
    assert expected != start + 12
    assert tally.fold({TOKENS: start}, run) == {TOKENS: expected}


def test_a_run_of_a_cost_without_parts_makes_no_dict() -> None:
    slot = a_slot()
    run = tally.Run(Costs(1, {}))
    run.times = 5
    assert tally.fold(None, run) is None
    slot.count_run(Costs(1, {}))
    assert slot.usage is None
    assert slot.usage_dict() == {}


def test_whole_units_on_a_fractional_total_are_added_one_at_a_time() -> None:
    run = tally.Run(Costs(1, {TOKENS: 500}))
    run.times = 2
    expected = 123.456 + 500 + 500
    assert expected != 123.456 + 1000  # the case that needs the loop
    assert tally.fold({TOKENS: 123.456}, run) == {TOKENS: expected}


def test_a_settle_corrects_the_usage_and_leaves_the_run_running() -> None:
    pool = TokenPool([Token("secret-value", limits=LIMITS)], trial_in_flight=None)
    estimate = Costs(1, {TOKENS: 500})
    core = core_of(pool)

    async def main() -> None:
        for actual in (400, 700, 500):
            async with pool.lease(cost=estimate) as lease:
                lease.settle(tokens=actual)
        (slot,) = core.sched.slots.values()
        run = slot.run
        assert run is not None
        assert (run.cost, run.times) == (estimate, 3)  # never folded by the settles
        assert slot.tally == {TOKENS: -100.0 + 200.0 + 0.0}  # the settles' corrections
        assert slot.usage == {TOKENS: 1600.0}

    asyncio.run(main())
