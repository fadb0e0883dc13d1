"""Guarantees 1-5 of DESIGN.md, property-based: on the pure scheduler (through the
discrete-event driver of tests/core/simulation.py), and 1 and 2 on a real ``TokenPool`` on
virtual time, so its inlined fast paths are covered too.

Times, rates and costs are binary fractions, so float arithmetic is exact and the
assertions can be exact too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import looptime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_async import LeaseTimeout, Limit, Token, TokenPool
from tests.core.simulation import (
    TOKEN_EVENTS,
    Outcome,
    Request,
    TokenEvent,
    TokenSpec,
    simulate,
    window_violations,
)

TICK = 1 / 16

limits = st.builds(
    Limit,
    rate=st.sampled_from([1, 2, 4, 8]),
    per=st.sampled_from([0.5, 1, 2]),
    burst=st.sampled_from([1, 2, 3, 4]),
)
specs = st.lists(
    st.builds(
        TokenSpec,
        limits=st.lists(limits, min_size=1, max_size=2).map(tuple),
        max_in_flight=st.none() | st.integers(1, 3),
    ),
    min_size=1,
    max_size=5,
)


@st.composite
def workloads(
    draw: st.DrawFn, *, costs: list[float], cancels: bool, timeouts: bool, cools: bool = True
) -> list[Request]:
    n = draw(st.integers(1, 40))
    requests = []
    for _ in range(n):
        requests.append(
            Request(
                at=draw(st.integers(0, 64)) * TICK,
                cost=draw(st.sampled_from(costs)),
                hold=draw(st.integers(1, 32)) * TICK,
                timeout=draw(st.none() | st.integers(0, 48).map(lambda k: k * TICK))
                if timeouts
                else None,
                cancel_after=draw(st.none() | st.integers(0, 48).map(lambda k: k * TICK))
                if cancels
                else None,
                abandon=draw(st.booleans()) if cancels else False,
                cool=draw(st.none() | st.integers(0, 24).map(lambda k: k * TICK))
                if cancels and cools
                else None,
            )
        )
    return requests


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(specs, workloads(costs=[1, 2, 3, 0.5], cancels=True, timeouts=True))
def test_never_over_the_limit_in_any_interval(specs: list[TokenSpec], reqs: list[Request]) -> None:
    run = simulate(specs, reqs)
    assert window_violations(specs, run) == []


@SETTINGS
@given(specs, workloads(costs=[1, 2, 3], cancels=True, timeouts=True))
def test_no_idle_capacity_while_someone_waits(specs: list[TokenSpec], reqs: list[Request]) -> None:
    run = simulate(specs, reqs, check_idle=True)
    assert run.violations == []


@SETTINGS
@given(specs, workloads(costs=[1, 2, 3], cancels=True, timeouts=True, cools=False))
def test_served_in_order_overtaken_only_by_cheaper(
    specs: list[TokenSpec], reqs: list[Request]
) -> None:
    """FIFO: a later request is never granted before an earlier, still waiting one,
    unless it is cheaper (backfilling), and the head of the queue is never delayed."""
    run = simulate(specs, reqs)
    granted = {r: o for r, o in run.outcomes.items() if o.kind == "granted"}
    # Arrival order is (time, index): the simulation enqueues in that order.
    order = sorted(range(len(reqs)), key=lambda r: (reqs[r].at, r))
    position = {r: i for i, r in enumerate(order)}
    for late, g_late in granted.items():
        for early, o_early in run.outcomes.items():
            if position[early] >= position[late] or o_early.kind == "rejected":
                continue
            waiting_at_grant = reqs[early].at <= g_late.at and (
                o_early.at > g_late.at or (o_early.kind == "granted" and o_early.seq > g_late.seq)
            )
            if waiting_at_grant and reqs[early].at < reqs[late].at + 1e-12:
                assert reqs[late].cost < reqs[early].cost, (early, late)
    for rid, first_t in run.head_reservations.items():
        outcome = run.outcomes[rid]
        if outcome.kind == "granted":
            assert outcome.at <= first_t + 1e-9, (rid, outcome.at, first_t)


# Identical tokens without in-flight caps: which of two equal tokens serves a waiter then
# changes nothing later. (With caps it can: a lease cancelled in the very loop turn it is
# granted gives its token back at once, but the other waiters granted in that same turn
# already took the other tokens, so which token each holds -- and so when each cap frees
# -- may differ from a run without the cancelled lease. Nobody is served later at that
# instant; the property below is only exact without caps.)
same_tier = st.tuples(limits, st.integers(1, 5)).map(
    lambda t: [TokenSpec(limits=(t[0],)) for _ in range(t[1])]
)


@SETTINGS
@given(same_tier, workloads(costs=[1], cancels=False, timeouts=False), st.data())
def test_cancelled_waiters_consume_nothing_and_delay_no_one(
    specs: list[TokenSpec], reqs: list[Request], data: st.DataObject
) -> None:
    """Adding waiters that are cancelled before their grant (or the instant they are
    granted, before they resume) changes nothing for the others: the same times. (Which
    of several identical tokens serves them may differ: a token given back re-enters the
    index behind its equals.)"""
    baseline = simulate(specs, reqs)
    extra = data.draw(
        st.lists(
            st.builds(
                Request,
                at=st.integers(0, 64).map(lambda k: k * TICK),
                cost=st.just(1),
                hold=st.just(TICK),
                cancel_after=st.integers(0, 16).map(lambda k: k * TICK),
                abandon=st.just(True),
            ),
            max_size=20,
        )
    )
    # Extra arrivals are interleaved after the originals at equal times (higher index).
    mixed = simulate(specs, reqs + extra)
    for rid in range(len(reqs)):
        a, b = baseline.outcomes[rid], mixed.outcomes[rid]
        if any(o.kind == "granted" for r, o in mixed.outcomes.items() if r >= len(reqs)):
            continue  # an extra one took the fast path before anyone waited: real load
        assert (a.kind, a.at) == (b.kind, b.at), rid


@SETTINGS
@given(specs, workloads(costs=[1, 2, 3, 5], cancels=True, timeouts=True))
def test_everyone_is_answered(specs: list[TokenSpec], reqs: list[Request]) -> None:
    """No hang: every request ends granted, expired, cancelled or rejected at once,
    and a rejection happens exactly when no token's burst fits the cost."""
    run = simulate(specs, reqs)
    largest = max(min(lim.burst for lim in s.limits) for s in specs)
    for rid, req in enumerate(reqs):
        outcome = run.outcomes[rid]
        if req.cost > largest:
            assert outcome.kind == "rejected"
            assert outcome.at == req.at
        else:
            assert outcome.kind in {"granted", "expired", "cancelled"}
            if req.timeout is not None and outcome.kind == "expired":
                assert outcome.at == req.at + req.timeout


# -- no hang when tokens go: disabled, enabled, dropped by a reload and put back -------------


def token_events(n_tokens: int) -> st.SearchStrategy[list[TokenEvent]]:
    return st.lists(
        st.builds(
            TokenEvent,
            at=st.integers(0, 64).map(lambda k: k * TICK),
            kind=st.sampled_from(TOKEN_EVENTS),
            token=st.integers(0, n_tokens - 1),
        ),
        max_size=12,
    )


@dataclass
class Capacity:
    """What the tokens can take, right after a token event (or at the start)."""

    at: float
    usable: float  # the largest cost some usable token can take (0: none)
    known: float | None  # the largest burst of any token in service; None: no token


def capacities(specs: list[TokenSpec], events: list[TokenEvent]) -> list[Capacity]:
    """Replays the token events in the order the simulation applies them (by time, then
    as listed): a token is usable when it is in the file and not disabled; disable and
    enable act on tokens in the file only, and a token keeps its disabled state across a
    reload that drops it and one that brings it back."""
    burst = [min(lim.burst for lim in spec.limits) for spec in specs]
    present = [True] * len(specs)
    disabled = [False] * len(specs)

    def snapshot(at: float) -> Capacity:
        usable = [burst[i] for i in range(len(specs)) if present[i] and not disabled[i]]
        known = [burst[i] for i in range(len(specs)) if present[i]]
        return Capacity(at, max(usable, default=0.0), max(known) if known else None)

    timeline = [snapshot(-1.0)]
    for e in sorted(events, key=lambda e: e.at):  # sorted() is stable: as listed on ties
        if e.kind == "remove":
            present[e.token] = False
        elif e.kind == "restore":
            present[e.token] = True
        elif present[e.token]:
            disabled[e.token] = e.kind == "disable"
        timeline.append(snapshot(e.at))
    return timeline


def at_arrival(timeline: list[Capacity], t: float) -> Capacity:
    """The state an arrival at ``t`` sees: token events at ``t`` come first."""
    return [c for c in timeline if c.at <= t][-1]


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[TokenSpec], list[Request], list[TokenEvent]]:
    token_specs = draw(specs)
    reqs = draw(workloads(costs=[1, 2, 3, 5], cancels=True, timeouts=True))
    return token_specs, reqs, draw(token_events(len(token_specs)))


@SETTINGS
@given(scenarios())
def test_no_waiter_hangs_when_tokens_are_disabled_or_removed(
    scenario: tuple[list[TokenSpec], list[Request], list[TokenEvent]],
) -> None:
    """Guarantee 5 with tokens coming and going: every request ends granted, expired,
    cancelled, or refused at once -- ``ValueError`` for a cost above every token's burst,
    ``NoTokensAvailable`` when no usable token can take it; a queued waiter fails the
    moment its last usable token goes, and never while one that can serve it is left.
    Guarantees 1 and 3 hold throughout."""
    token_specs, reqs, events = scenario
    run = simulate(token_specs, reqs, token_events=events)
    assert run.still_waiting == 0
    assert sorted(run.outcomes) == list(range(len(reqs)))  # nobody is left without answer
    assert window_violations(token_specs, run) == []
    assert run.violations == []
    timeline = capacities(token_specs, events)
    for rid, req in enumerate(reqs):
        outcome: Outcome = run.outcomes[rid]
        seen = at_arrival(timeline, req.at)
        if seen.known is not None and req.cost > seen.known:
            assert (outcome.kind, outcome.at) == ("rejected", req.at), rid
            continue
        if req.cost > seen.usable:  # no token at all, or none usable that fits
            assert (outcome.kind, outcome.at) == ("failed", req.at), rid
            continue
        assert outcome.kind in {"granted", "expired", "cancelled", "failed"}, rid
        # While it waited (after its arrival, before its outcome) some usable token could
        # always serve it; a failure comes right after the event that took the last one.
        while_waiting = [c for c in timeline if req.at < c.at < outcome.at]
        assert all(c.usable >= req.cost for c in while_waiting), (rid, outcome)
        if outcome.kind == "failed":
            assert outcome.at > req.at, rid
            assert any(c.at == outcome.at and c.usable < req.cost for c in timeline), rid
        elif outcome.kind == "expired" and req.timeout is not None:
            assert outcome.at == req.at + req.timeout, rid


# -- guarantees 1 and 2 on a real TokenPool, on virtual time -------------------------------

T = TypeVar("T")

#: Virtual seconds after which a run counts as hung (a lost wake-up leaves the loop with
#: nothing but this timer, so looptime jumps straight to it).
HUNG = 10_000.0


def on_virtual_time(main: Awaitable[T]) -> T:
    """Run ``main`` on a fresh looptime loop starting at 0 (one per hypothesis example:
    a test function's own loop would carry one example's timers into the next)."""
    loop = looptime.new_event_loop(start=0.0)
    try:
        return loop.run_until_complete(asyncio.wait_for(main, HUNG))
    finally:
        loop.close()


@dataclass
class Worker:
    start: float  # when it asks for its first lease
    leases: list[tuple[float, float, float | None, float]]  # (cost, hold, timeout, pause)


@dataclass
class Grant:
    arrival: int  # global order in which the lease was asked for
    cost: float
    asked_at: float
    name: str | None = None  # None: it timed out
    at: float = -1.0  # grant (or timeout) time


@st.composite
def pool_setups(draw: st.DrawFn) -> tuple[list[Token], dict[str, object], list[Worker]]:
    n = draw(st.integers(1, 3))
    if draw(st.booleans()):  # one tier: a single lane, the pool's most inlined paths
        tier = draw(st.lists(limits, min_size=1, max_size=2).map(tuple))
        token_limits = [tier] * n
    else:
        token_limits = [draw(st.lists(limits, min_size=1, max_size=2).map(tuple)) for _ in range(n)]
    tokens = [
        Token(f"{chr(ord('a') + i) * 4}-secret-{i:04d}", limits=lim)
        for i, lim in enumerate(token_limits)
    ]
    largest = max(min(lim.burst for lim in lims) for lims in token_limits)
    costs = [c for c in (0.5, 1, 2) if c <= largest]
    options: dict[str, object] = {
        "max_in_flight": draw(st.none() | st.integers(1, 3)),
        "trial_in_flight": draw(st.sampled_from([None, 1])),
    }
    lease = st.tuples(
        st.sampled_from(costs),
        st.integers(0, 16).map(lambda k: k * TICK),  # hold
        st.none() | st.integers(0, 24).map(lambda k: k * TICK),  # timeout
        st.integers(0, 8).map(lambda k: k * TICK),  # pause before the next one
    )
    workers = draw(
        st.lists(
            st.builds(
                Worker,
                start=st.integers(0, 32).map(lambda k: k * TICK),
                leases=st.lists(lease, min_size=1, max_size=4),
            ),
            min_size=1,
            max_size=16,
        )
    )
    return tokens, options, workers


async def drive(
    tokens: list[Token], options: dict[str, object], workers: list[Worker]
) -> list[Grant]:
    loop = asyncio.get_running_loop()
    pool = TokenPool(tokens, **options)  # type: ignore[arg-type]
    grants: list[Grant] = []

    async def work(worker: Worker) -> None:
        await asyncio.sleep(worker.start)
        for cost, hold, timeout, pause in worker.leases:
            grant = Grant(len(grants), cost, loop.time())
            grants.append(grant)  # no await from here to the lease's queue entry
            try:
                async with pool.lease(cost, timeout=timeout) as lease:
                    grant.name, grant.at = lease.name, loop.time()
                    # it runs the instant it is granted, and says so
                    assert lease.waited == grant.at - grant.asked_at
                    await asyncio.sleep(hold)
            except LeaseTimeout:
                grant.at = loop.time()
                assert timeout is not None
                assert grant.at == grant.asked_at + timeout
            await asyncio.sleep(pause)

    async with pool:
        await asyncio.gather(*(work(w) for w in workers))
        stats = pool.stats()
    assert (stats.waiting, stats.in_flight) == (0, 0)
    assert stats.granted == sum(g.name is not None for g in grants)
    return grants


def leaky_bucket_overflow(grants: list[tuple[float, float]], limit: Limit) -> str | None:
    """Replays grants (time, cost) through a bucket of ``limit.burst`` that drains
    ``limit.rate / limit.per`` a second, in exact rational arithmetic from an empty
    bucket; the first grant that overflows it, or ``None``. (Equivalent to: in no
    interval [a, b] do grants exceed ``burst + rate * (b - a) / per``.)"""
    drain = Fraction(limit.rate) / Fraction(limit.per)
    level = Fraction(0)
    last = Fraction(0)
    for t, cost in sorted(grants):
        now = Fraction(t)
        level = max(Fraction(0), level - (now - last) * drain) + Fraction(cost)
        last = now
        if level > Fraction(limit.burst):
            return f"{float(level):g} units in the bucket of {limit} at t={t}"
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_setups())
def test_a_real_pool_keeps_the_limits_and_serves_equal_costs_in_order(
    setup: tuple[list[Token], dict[str, object], list[Worker]],
) -> None:
    """Many tasks lease from a real TokenPool at random times, with random costs, hold
    times and timeouts (the fast paths of ``Lease.__aenter__``/``__aexit__``, the queue and
    the one timer): no token ever goes over any of its limits (guarantee 1), and of two
    leases of the same cost the earlier asked is never granted later (guarantee 2)."""
    tokens, options, workers = setup
    grants = on_virtual_time(drive(tokens, options, workers))
    by_name = {t.name: t for t in tokens}
    assert {g.name for g in grants} - {None} <= set(by_name)
    for name, token in by_name.items():
        taken = [(g.at, g.cost) for g in grants if g.name == name]
        for limit in token.limits or ():
            assert leaky_bucket_overflow(taken, limit) is None, (name, taken)
    for early in grants:
        for late in grants:
            if late.name is None or early.cost != late.cost or early.arrival >= late.arrival:
                continue
            # `early` asked first, for the same cost: it was served (or gave up) no later
            assert early.at <= late.at, (early, late)
