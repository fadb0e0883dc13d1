"""Resources: limits that count something other than requests (``Limit.unit``), leases
that cost several resources at once (``Costs``), on the pure scheduler.

Guarantees 1-5 hold per resource: the same property tests as ``test_guarantees.py``, on
tokens with a requests window and a tokens window, with leases of plain and vector costs.
Times, rates and costs are binary fractions, so the arithmetic and assertions are exact.
"""

from __future__ import annotations

import operator
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_async import Costs, Limit, Token
from aurora_async._core.costs import KeyCost, as_costs, cheaper, part_of, settled
from aurora_async._core.scheduler import INF, Scheduler, Waiter
from aurora_async._core.slot import MixedSlot, Slot
from tests.core.simulation import Request, TokenSpec, simulate, window_violations

TICK = 1 / 16
TOKENS = "tokens"


def vec(requests: float, tokens: float) -> Costs:
    return Costs(requests, {TOKENS: tokens})


# -- Costs --------------------------------------------------------------------------


def test_a_vector_equals_only_the_same_vector() -> None:
    a, b = vec(1, 400), vec(1, 400)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != 1.0
    assert operator.ne(1.0, a)  # the reflected comparison too
    assert a != vec(1, 401)
    assert a != vec(2, 400)
    assert float(a) == 1.0
    assert a + 1 == 2.0
    assert {1.0: "plain", a: "vector"}[1.0] == "plain"


def test_a_key_cost_equals_nothing_not_even_itself() -> None:
    key = KeyCost(1.0)
    assert key != key
    assert key != 1.0
    assert operator.ne(1.0, key)
    assert key != vec(1, 0.5)
    assert float(key) == 1.0
    assert part_of(key, TOKENS) == 0.0
    assert pickle.loads(pickle.dumps(key)) != key  # still equal to nothing


def test_costs_read_as_text_and_survive_pickling() -> None:
    a = vec(1, 1200)
    assert str(a) == "1 requests + 1200 tokens" == f"{a:g}"
    assert repr(a) == "Costs(requests=1, tokens=1200)"
    assert pickle.loads(pickle.dumps(a)) == a
    assert a.as_dict() == {"requests": 1.0, TOKENS: 1200.0}
    assert a.part("points") == 0.0


def test_as_costs_defaults_requests_to_one_and_drops_zero_parts() -> None:
    assert as_costs({TOKENS: 900}) == vec(1, 900)
    assert as_costs({"requests": 2, TOKENS: 0}) == 2.0
    assert type(as_costs({"requests": 2})) is float


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ({TOKENS: -1}, ValueError, "tokens must be a finite number >= 0"),
        ({TOKENS: float("nan")}, ValueError, "tokens must be a finite number >= 0"),
        ({TOKENS: "9"}, TypeError, "tokens must be a number, not str"),
        ({TOKENS: True}, TypeError, "tokens must be a number, not bool"),
        ({"Tokens": 1}, ValueError, "lowercase letters"),
        ({"requests": 0, TOKENS: 1}, ValueError, "requests must be above 0"),
        ([("tokens", 1)], TypeError, "a number or a mapping, not list"),
    ],
)
def test_as_costs_says_what_is_wrong(value: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        as_costs(value)  # type: ignore[arg-type]


def test_settled_replaces_only_the_resources_named() -> None:
    assert settled(vec(1, 1200), {TOKENS: 300}) == vec(1, 300)
    assert settled(vec(1, 1200), {"input_tokens": 50}) == Costs(
        1, {TOKENS: 1200, "input_tokens": 50}
    )
    assert settled(1.0, {TOKENS: 0}) == 1.0
    with pytest.raises(ValueError, match="tokens must be a finite number >= 0"):
        settled(vec(1, 1), {TOKENS: -3})


def test_cheaper_means_less_of_some_resource() -> None:
    assert cheaper(1.0, 2.0)
    assert not cheaper(2.0, 1.0)
    assert not cheaper(1.0, 1.0)
    assert cheaper(vec(1, 10), vec(1, 20))
    assert not cheaper(vec(1, 20), vec(1, 10))
    assert cheaper(1.0, vec(1, 10))  # no tokens at all
    assert not cheaper(vec(1, 10), 1.0)


def test_limit_units_are_checked_and_shown() -> None:
    assert Limit(5).unit == "requests"
    assert Limit(5) != Limit(5, unit=TOKENS)
    assert str(Limit(40_000, per=60, unit=TOKENS)) == "40000 tokens/60s"
    assert repr(Limit(2, unit=TOKENS)) == "Limit(rate=2.0, per=1.0, burst=2.0, unit='tokens')"
    assert Limit.sliding_window(10, unit="points").unit == "points"
    with pytest.raises(ValueError, match="lowercase letters"):
        Limit(1, unit="input-tokens")
    with pytest.raises(TypeError, match="must be a str"):
        Limit(1, unit=3)  # type: ignore[arg-type]


# -- the scheduler ---------------------------------------------------------------------


def mixed(sched: Scheduler, name: str, tokens: Limit, now: float = 0.0) -> Slot:
    return sched.add(Token(f"{name}-secret-value"), name, (Limit(100), tokens), None, now)


def test_a_slot_with_another_resource_is_mixed_and_back_when_relimited() -> None:
    sched = Scheduler(trial_in_flight=None)
    slot = mixed(sched, "a", Limit(1000, unit=TOKENS))
    assert type(slot) is MixedSlot
    assert slot.mixed
    assert slot.max_cost == 100
    assert isinstance(slot.key_cost, KeyCost)
    assert float(slot.key_cost) == 1.0
    sched.relimit(slot, (Limit(4),), 0.0)
    assert type(slot) is Slot
    assert not slot.mixed
    assert slot.key_cost == 1.0
    only = sched.add(Token("b-secret-value"), "b", (Limit(9, unit=TOKENS),), None, 0.0)
    assert only.max_cost == INF
    assert not only.lane.single


def test_the_soonest_token_over_the_whole_vector() -> None:
    """A can fire a request now but its tokens bucket is nearly full; B must wait 10 ms
    for a request but has every token: a lease of 500 tokens goes to B, a plain request
    to A."""
    sched = Scheduler(trial_in_flight=None)
    a = mixed(sched, "a", Limit(1000, unit=TOKENS))
    b = mixed(sched, "b", Limit(1000, unit=TOKENS))
    assert sched.try_take(vec(1, 900), 0.0) is a
    assert sched.try_take(100.0, 0.0) is b  # b's whole requests burst
    assert sched.best(vec(1, 500), 0.0) == (b, 0.01)
    assert a.ready(vec(1, 500)) == 0.4
    assert sched.best(1.0, 0.0)[0] is a  # ready now (a time in the past: room to spare)
    assert sched.try_take(vec(1, 500), 0.0) is None  # nobody can fire it now


def test_settling_less_refunds_now_and_more_is_debt() -> None:
    sched = Scheduler(trial_in_flight=None)
    a = mixed(sched, "a", Limit(1000, unit=TOKENS))
    assert sched.try_take(vec(1, 1000), 0.0) is a
    assert sched.try_take(vec(1, 1), 0.0) is None  # full
    assert sched.settle(a, vec(1, 1000), vec(1, 250), 0.0) is True  # 750 back, now
    assert sched.try_take(vec(1, 750), 0.0) is a
    # 1000 in the bucket again; the answer used 1500 of the 750 reserved: 750 of debt.
    assert sched.settle(a, vec(1, 750), vec(1, 1500), 0.0) is False
    assert a.windows[1].level_at(0.0) == 1750.0
    # Even a plain request (no tokens) waits until the debt is gone: 0.75 s.
    assert sched.try_take(1.0, 0.5) is None
    assert sched.best(1.0, 0.5) == (a, 0.75)
    assert sched.try_take(1.0, 0.75) is a
    assert a.units == 3.0
    assert a.usage == {TOKENS: 250 + 1500 + 0.0}


def test_a_waiter_is_served_the_moment_a_settle_refunds() -> None:
    sched = Scheduler(trial_in_flight=None)
    a = mixed(sched, "a", Limit(1000, unit=TOKENS))
    assert sched.try_take(vec(1, 1000), 0.0) is a
    waiter = Waiter(vec(1, 600), INF, 0.0)
    sched.enqueue(waiter)
    granted, _, wake = sched.dispatch(0.0)
    assert granted == []
    assert wake == 0.6
    sched.settle(a, vec(1, 1000), vec(1, 100), 0.25)  # 750 left -> 750 - 900 -> 0
    granted, _, _ = sched.dispatch(0.25)
    assert granted == [waiter]
    assert waiter.slot is a


def test_a_refund_of_a_vector_grant_gives_back_every_part() -> None:
    sched = Scheduler(trial_in_flight=None)
    a = mixed(sched, "a", Limit(1000, unit=TOKENS))
    waiter = Waiter(vec(2, 800), INF, 0.0)
    sched.enqueue(waiter)
    sched.dispatch(0.0)
    assert waiter.slot is a
    assert a.usage == {TOKENS: 800.0}
    a.epoch += 1  # something else touched it: the conservative give-back
    sched.refund(a, waiter.cost, 0.0, 0.0, waiter)
    assert [w.level_at(0.0) for w in a.windows] == [0.0, 0.0]
    assert a.units == 0.0
    assert a.usage == {TOKENS: 0.0}


def test_a_waiter_behind_a_vector_head_backfills_another_token() -> None:
    """The head needs 900 tokens, which only A will have (soonest); B has room for a
    small lease now, though its requests cost is the same as the head's."""
    sched = Scheduler(trial_in_flight=None)
    mixed(sched, "a", Limit(1000, unit=TOKENS))
    b = mixed(sched, "b", Limit(1000, unit=TOKENS))
    sched.try_take(vec(1, 500), 0.0)  # a
    sched.try_take(vec(1, 800), 0.0)  # b
    head, small = Waiter(vec(1, 900), INF, 0.0), Waiter(vec(1, 100), INF, 0.0)
    sched.enqueue(head)
    sched.enqueue(small)
    granted, _, _ = sched.dispatch(0.0)
    assert granted == [small]
    assert small.slot is b
    assert head.live


def test_check_parts_refuses_a_part_no_window_can_hold() -> None:
    sched = Scheduler(trial_in_flight=None)
    mixed(sched, "a", Limit(1000, unit=TOKENS))
    sched.check_parts(vec(1, 1000))
    sched.check_parts(Costs(1, {"points": 10**9}))  # no token counts points: free
    with pytest.raises(ValueError, match="cost of 1001 tokens exceeds the burst of every"):
        sched.check_parts(vec(1, 1001))


# -- guarantees 1-5, per resource (the simulation of test_guarantees.py) ---------------

requests_limits = st.builds(
    Limit,
    rate=st.sampled_from([1, 2, 4]),
    per=st.sampled_from([0.5, 1]),
    burst=st.sampled_from([2, 3, 4]),
)
tokens_limits = st.builds(
    Limit,
    rate=st.sampled_from([4, 8, 16]),
    per=st.sampled_from([0.5, 1, 2]),
    burst=st.sampled_from([8, 16]),
    unit=st.just(TOKENS),
)
search_limits = st.builds(
    Limit, rate=st.sampled_from([1, 2]), per=st.sampled_from([1, 2]),
    burst=st.sampled_from([1, 2]), scope=st.just("search"),
)  # fmt: skip
mixed_specs = st.lists(
    st.builds(
        TokenSpec,
        limits=st.tuples(requests_limits, tokens_limits)
        | st.tuples(requests_limits)
        | st.tuples(tokens_limits, requests_limits)
        | st.tuples(requests_limits, search_limits, tokens_limits),
        max_in_flight=st.none() | st.integers(1, 3),
    ),
    min_size=1,
    max_size=4,
)
COSTS = [
    1.0, 2.0, vec(1, 2), vec(1, 8), vec(2, 4), vec(1, 16),
    Costs(1, {}, "search"), Costs(1, {TOKENS: 4}, "search"),
]  # fmt: skip


@st.composite
def vector_workloads(draw: st.DrawFn, *, cancels: bool) -> list[Request]:
    return [
        Request(
            at=draw(st.integers(0, 64)) * TICK,
            cost=draw(st.sampled_from(COSTS)),
            hold=draw(st.integers(1, 32)) * TICK,
            timeout=draw(st.none() | st.integers(0, 48).map(lambda k: k * TICK)),
            cancel_after=draw(st.none() | st.integers(0, 48).map(lambda k: k * TICK))
            if cancels
            else None,
            abandon=draw(st.booleans()) if cancels else False,
        )
        for _ in range(draw(st.integers(1, 40)))
    ]


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(mixed_specs, vector_workloads(cancels=True))
def test_never_over_any_resource_limit_in_any_interval(
    specs: list[TokenSpec], reqs: list[Request]
) -> None:
    run = simulate(specs, reqs)
    assert window_violations(specs, run) == []


@SETTINGS
@given(mixed_specs, vector_workloads(cancels=True))
def test_no_idle_capacity_in_any_resource(specs: list[TokenSpec], reqs: list[Request]) -> None:
    assert simulate(specs, reqs, check_idle=True).violations == []


@SETTINGS
@given(mixed_specs, vector_workloads(cancels=False))
def test_served_in_order_overtaken_only_by_a_cheaper_vector(
    specs: list[TokenSpec], reqs: list[Request]
) -> None:
    run = simulate(specs, reqs)
    granted = {r: o for r, o in run.outcomes.items() if o.kind == "granted"}
    order = sorted(range(len(reqs)), key=lambda r: (reqs[r].at, r))
    position = {r: i for i, r in enumerate(order)}
    for late, g_late in granted.items():
        for early in range(len(reqs)):
            o_early = run.outcomes.get(early)
            if position[early] >= position[late]:
                continue
            waiting_at_grant = reqs[early].at <= g_late.at and (
                o_early is None  # still waiting at the end
                or o_early.at > g_late.at
                or (o_early.kind == "granted" and o_early.seq > g_late.seq)
            )
            if waiting_at_grant and reqs[early].at < reqs[late].at + 1e-12:
                assert cheaper(reqs[late].cost, reqs[early].cost), (early, late)
    for rid, first_t in run.head_reservations.items():
        outcome = run.outcomes.get(rid)  # none: still waiting (16 tokens fit no burst of 8)
        if outcome is not None and outcome.kind == "granted":
            assert outcome.at <= first_t + 1e-9, (rid, outcome.at, first_t)


# -- the vector fast paths, against the reference --------------------------------------

MIXED = (
    Limit(4, per=1, burst=2),
    Limit(64, per=1, burst=96, unit=TOKENS),
    Limit(32, per=1, burst=48, unit=TOKENS, scope="big"),
    Limit.daily(1000, unit=TOKENS),
)


def _reference_take(slot: Slot, cost: float, now: float) -> float:
    """``MixedSlot.take`` as it reads in words: each window takes its part through its
    own method, then the key is ``ready(key_cost)`` through each window's own method."""
    slot.epoch += 1
    for w in slot.windows:
        units = slot.part(w, cost)
        if units:
            w.take(units, now)
    key = slot.cool_until
    for w in slot.windows:
        if w.scope is None:
            units = float(slot.key_cost) if w.unit == "requests" else 0.0
            key = max(key, w.ready_at(units))
    return key


def _reference_ready(slot: Slot, cost: float) -> float:
    t = slot.cool_until
    scope = cost.scope if isinstance(cost, Costs) else None
    if scope is not None and slot.scope_cool:
        t = max(t, slot.scope_cool.get(scope, -INF))
    for w in slot.windows:
        if w.scope is None or w.scope == scope:
            t = max(t, w.ready_at(part_of(cost, w.unit)))
    return t


@given(
    st.lists(
        st.tuples(
            st.integers(0, 8),  # ticks later
            st.integers(1, 3),  # requests
            st.integers(0, 64),  # tokens
            st.sampled_from([None, "big", "small"]),  # scope
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_mixed_slots_inlined_take_and_ready_equal_the_reference(
    steps: list[tuple[int, int, int, str | None]],
) -> None:
    sched = Scheduler(trial_in_flight=None)
    slot = sched.add(Token("secret-value-mixed"), "m", MIXED, None, 0.0)
    shadow = sched.add(Token("secret-value-shadow"), "s", MIXED, None, 0.0)
    assert isinstance(slot, MixedSlot)
    now = 0.0
    for ticks, requests, tokens, scope in steps:
        now += ticks * TICK
        cost = Costs(requests, {TOKENS: tokens} if tokens else {}, scope)
        assert slot.ready(cost) == _reference_ready(shadow, cost)
        assert slot.take(cost, now) == _reference_take(shadow, cost, now)
        for w, v in zip(slot.windows, shadow.windows, strict=True):
            assert (w._level, w._last_check) == (v._level, v._last_check)
        assert slot.epoch == shadow.epoch


def test_a_vector_lease_with_room_takes_the_fast_path_and_books_like_a_grant() -> None:
    # try_take grants the top token when it fires the whole vector now (what best()
    # would choose), with the same bookkeeping as grant(); none when no token fits.
    limits = (Limit(4, per=1, burst=2), Limit(64, per=1, burst=96, unit=TOKENS))
    sched = Scheduler(trial_in_flight=None)
    a, b = (sched.add(Token(f"secret-value-{n}"), n, limits, None, 0.0) for n in "ab")
    assert sched.best(vec(1, 80), 0.0) == (a, -0.25)  # the top: ready since -0.25 s
    assert sched.try_take(vec(1, 80), 0.0) is a
    assert (a.in_flight, a.leases, a.units, a.usage) == (1, 1, 1.0, {TOKENS: 80.0})
    assert (a.windows[0]._level, a.windows[1]._level) == (1.0, 80.0)
    assert sched.best(vec(1, 80), 0.0) == (b, -0.25)  # b is the top now
    assert sched.try_take(vec(1, 80), 0.0) is b
    assert sched.try_take(vec(1, 20), 0.0) is None  # 16 tokens left on each
    assert sched.try_take(vec(1, 16), 0.0) is a  # the top (a's key: 0, before b's)
    assert (a.in_flight, a.leases, a.units, a.usage) == (2, 2, 2.0, {TOKENS: 96.0})
    assert sched.try_take(Costs(0.0, {TOKENS: 1}), 0.0) is None  # no lease is free
