"""Reserve, then settle, through the pool: leases that cost several resources
(``pool.lease(cost={...})``) and ``Lease.settle`` with the true cost, on virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest

from aurora_async import Costs, Limit, Token, TokenPool

TPM = Limit(1000, per=1, unit="tokens")  # 1000 tokens a second: easy arithmetic


def pool_of(*names: str, tokens: Limit = TPM) -> TokenPool:
    return TokenPool(
        [Token(f"{name}-secret-value-0001", limits=[Limit(100), tokens]) for name in names],
        trial_in_flight=None,
    )


@pytest.mark.looptime
async def test_a_settle_below_the_estimate_lets_a_waiter_in_at_once(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of("a")
    async with pool:
        now = clock()
        first = await pool.acquire(cost={"tokens": 1000})
        waiter = asyncio.create_task(pool.acquire(cost={"tokens": 800}))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        first.settle(tokens=200)  # 800 back: 100 drained + 200 used -> 100 in the bucket
        second = await waiter
        assert now() == 0.1
        assert second.name == first.name
        first.release()
        second.release()
        assert pool.stats().tokens[0].usage == {"tokens": 1000.0}


@pytest.mark.looptime
async def test_a_settle_above_the_estimate_is_debt_that_delays_the_next_lease(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of("a")
    async with pool:
        now = clock()
        async with pool.lease(cost={"tokens": 500}) as lease:
            lease.settle(tokens=1750)  # 750 past the burst
        assert lease.cost == Costs(1, {"tokens": 1750})
        # Even a plain request waits for the debt to drain: 0.75 s.
        async with pool.lease():
            assert now() == 0.75
        async with pool.lease(cost={"tokens": 250}):
            assert now() == 1.0  # 250 more must drain: the bucket held exactly 1000


@pytest.mark.looptime
async def test_an_unsettled_lease_keeps_its_reservation(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of("a")
    async with pool:
        now = clock()
        async with pool.lease(cost={"tokens": 900}):
            pass
        async with pool.lease(cost={"tokens": 400}):
            assert now() == 0.3


@pytest.mark.looptime
async def test_settle_after_the_lease_ended_and_again(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """A streamed answer's usage is known when the stream ends: after the lease."""
    pool = pool_of("a")
    async with pool:
        now = clock()
        async with pool.lease(cost={"tokens": 1000}) as lease:
            pass
        lease.settle(tokens=600)
        lease.settle({"tokens": 100})  # relative to the last settle: 500 more back
        async with pool.lease(cost={"tokens": 900}):
            assert now() == 0.0
        stats = pool.stats().tokens[0]
        assert stats.usage == {"tokens": 1000.0}
        assert stats.units == 2.0


@pytest.mark.looptime
async def test_vector_leases_spread_over_tokens_by_their_tokens_bucket() -> None:
    pool = pool_of("a", "b", "c")
    async with pool:
        names = []
        for _ in range(3):
            async with pool.lease(cost={"tokens": 700}) as lease:
                names.append(lease.name)
        assert len(set(names)) == 3  # no token had room for two


@pytest.mark.looptime
async def test_bad_costs_and_settles_fail_at_once_without_the_secret() -> None:
    pool = pool_of("a")
    async with pool:
        with pytest.raises(ValueError, match="cost of 1001 tokens exceeds the burst of every"):
            pool.lease(cost={"tokens": 1001})
        with pytest.raises(ValueError, match="requests must be above 0"):
            pool.lease(cost={"requests": 0})
        lease = pool.lease(cost={"tokens": 10})
        with pytest.raises(RuntimeError, match="not been granted yet"):
            lease.settle(tokens=5)
        async with lease:
            with pytest.raises(TypeError, match="needs the true cost of at least one"):
                lease.settle()
            with pytest.raises(ValueError, match="tokens must be a finite number >= 0") as info:
                lease.settle(tokens=float("inf"))
            assert "secret" not in str(info.value)
            assert "secret" not in repr(lease)
        assert "secret" not in repr(pool.stats())


@pytest.mark.looptime
async def test_a_mixed_token_is_not_calibrated_but_still_cools_on_a_429(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of("a")  # calibrate=True by default
    async with pool:
        now = clock()
        async with pool.lease(cost={"tokens": 10}) as lease:
            lease.rate_limited(retry_after=2)
        stats = pool.stats().tokens[0]
        assert stats.limits == ("100/1s", "1000 tokens/1s") == stats.declared_limits
        async with pool.lease():
            assert now() == 2.0


@pytest.mark.looptime
async def test_a_cost_mapping_asked_again_is_the_same_cost_and_bad_ones_still_fail() -> None:
    pool = TokenPool(
        [Token("sk-secret-costs-0001", limits=[Limit(100), Limit(1000, unit="tokens")])],
        trial_in_flight=None,
    )
    async with pool:
        cost = {"tokens": 10}
        first, again = pool.lease(cost=cost), pool.lease(cost=cost)
        assert first.cost == again.cost == Costs(1, {"tokens": 10.0})
        cost["tokens"] = 20  # changed in place: its new items are a new cost
        assert pool.lease(cost=cost).cost == Costs(1, {"tokens": 20.0})
        with pytest.raises(ValueError, match="tokens"):
            pool.lease(cost={"tokens": -1})
        with pytest.raises(ValueError, match="tokens"):
            pool.lease(cost={"tokens": -1})  # not remembered as good
        with pytest.raises(TypeError):
            pool.lease(cost={"tokens": [1]})  # not hashable: as_costs says what is wrong
        with pytest.raises(ValueError, match="exceeds the burst"):
            pool.lease(cost={"tokens": 5000})
        pool.lease(cost={"tokens": 1})
        for odd in (True, Decimal(1)):  # equal to 1 as a key, but not a count of units
            with pytest.raises(TypeError):
                pool.lease(cost={"tokens": odd})
