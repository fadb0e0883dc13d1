"""Scopes: limits and cooldowns per token x scope (an endpoint group or a model), so a
429 on one scope does not bench the token for the others. Virtual time, exact times."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aurora_async import Costs, Limit, Token, TokenPool
from aurora_async._core.scheduler import Scheduler
from aurora_async._core.slot import MixedSlot, Slot

GITHUB = [Limit(5000, per=3600, scope="core"), Limit(2, per=60, scope="search")]


@pytest.mark.looptime
async def test_a_scope_has_its_own_window_and_others_are_not_charged(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = TokenPool([Token("ghp-secret-value-0001", limits=GITHUB)], trial_in_flight=None)
    async with pool:
        now = clock()
        for _ in range(2):
            async with pool.lease(scope="search"):
                assert now() == 0.0
        for _ in range(5):  # core is not held back by the spent search window
            async with pool.lease(scope="core"):
                assert now() == 0.0
        async with pool.lease(scope="search") as lease:
            assert now() == 30.0  # search drains 2 a minute
            assert lease.scope == "search"
            assert lease.cost == Costs(1, {}, "search")


@pytest.mark.looptime
async def test_a_429_cools_only_its_scope(clock: Callable[[], Callable[[], float]]) -> None:
    """Two models on one key: a 429 for gpt-4o rests the key for gpt-4o alone."""
    key = Token("sk-secret-value-0001", limits=Limit(100, burst=100))
    pool = TokenPool([key], trial_in_flight=None)
    async with pool:
        now = clock()
        before = pool.stats().tokens[0].limits
        async with pool.lease(scope="gpt-4o") as lease:
            lease.rate_limited(retry_after=20)
        stats = pool.stats().tokens[0]
        assert stats.scope_cooldowns == {"gpt-4o": 20.0}
        assert stats.state.value == "active"
        assert stats.limits == before  # a scope's 429 teaches the token's limits nothing
        async with pool.lease(scope="gpt-4o-mini"):
            assert now() == 0.0
        async with pool.lease():  # no scope: not held either
            assert now() == 0.0
        async with pool.lease(scope="gpt-4o"):
            assert now() == 20.0
        assert pool.stats().tokens[0].scope_cooldowns == {}


@pytest.mark.looptime
async def test_a_cooling_scope_goes_to_another_token(
    clock: Callable[[], Callable[[], float]],
) -> None:
    a = Token("sk-secret-aaaa-0001", limits=Limit(100, burst=100))
    b = Token("sk-secret-bbbb-0002", limits=Limit(100, burst=100))
    pool = TokenPool([a, b], trial_in_flight=None)
    async with pool:
        now = clock()
        async with pool.lease(scope="search") as first:
            first.rate_limited(retry_after=60)
        names = []
        for _ in range(4):
            async with pool.lease(scope="search") as lease:
                names.append(lease.name)
        assert now() == 0.0
        assert first.name not in names


@pytest.mark.looptime
async def test_scope_names_are_checked_and_secrets_stay_out() -> None:
    pool = TokenPool([Token("sk-secret-value-0001", limits=GITHUB)], trial_in_flight=None)
    async with pool:
        with pytest.raises(ValueError, match="must name an endpoint group or a model"):
            pool.lease(scope="bad scope")
        with pytest.raises(TypeError, match="must be a str naming a scope"):
            pool.lease(scope=3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="must name an endpoint group"):
            Limit(1, scope="-x")
        async with pool.lease(scope="search") as lease:
            lease.rate_limited(retry_after=5)
        assert "secret" not in repr(pool.stats())
    assert str(Limit(2, per=60, scope="search")) == "2/60s [search]"


def test_a_plain_slot_becomes_mixed_when_a_scope_cools_and_leaves_its_lane() -> None:
    sched = Scheduler(trial_in_flight=None)
    a = sched.add(Token("a-secret-value"), "a", (Limit(10),), None, 0.0)
    b = sched.add(Token("b-secret-value"), "b", (Limit(10),), None, 0.0)
    assert type(a) is Slot
    assert a.lane is b.lane
    assert a.lane.single
    sched.cool_scope(a, "search", 5.0, 0.0)
    assert type(a) is MixedSlot
    assert a.lane is not b.lane
    assert not a.lane.single
    search = Costs(1, {}, "search")
    assert sched.best(search, 0.0)[0] is b
    assert a.ready(search) == 5.0
    assert a.ready(1.0) <= 0.0
    sched.cool_scope(b, "search", 7.0, 0.0)
    assert sched.best(search, 0.0) == (a, 5.0)
    assert sched.try_take(search, 5.0) is a
    assert a.scope_cool == {"search": 5.0}  # forgotten on the next cooldown only
    sched.cool_scope(a, "other", 9.0, 6.0)
    assert a.scope_cool == {"other": 9.0}
