"""The lease semantics of the memory backend, held by the Redis backend too.

Each test runs twice: on the memory backend (on looptime's virtual clock, so times are
exact) and on Redis (real time, but times are the reservations the server recorded,
in microseconds of its own clock, so they are exact as well when the leases went to
Redis together; ``SLACK`` covers leases sent in separate round trips).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aurora_async import Lease, LeaseTimeout, Limit, NoTokensAvailable, PoolClosed, Token, TokenPool
from aurora_async._pool.core import core_of
from aurora_async._redis import RedisBackend

from .support import backend_of, granted_at, reserved, until

pytestmark = pytest.mark.redis

A, B = "aaaa-secret-0001", "bbbb-secret-0002"
NAME_A, NAME_B = "aaaa…0001", "bbbb…0002"
SLACK = 0.01  # seconds: one loopback round trip, generously


class Harness:
    """Makes pools on one backend kind and reads back when each lease was granted."""

    def __init__(self, kind: str, make_pool: Callable[..., TokenPool] | None) -> None:
        self.kind = kind
        self._make_pool = make_pool
        self.slack = 0.0 if kind == "memory" else SLACK

    def pool(self, tokens: list[str | Token], **kwargs: Any) -> TokenPool:
        kwargs.setdefault("trial_in_flight", None)
        # The arithmetic of declared limits, taken as facts on both kinds (calibration,
        # which moves them with evidence, is tested in test_calibration.py).
        kwargs.setdefault("calibrate", False)
        if self.kind == "memory":
            return TokenPool(tokens, **kwargs)
        assert self._make_pool is not None
        return self._make_pool(tokens, **kwargs)

    async def grants(self, pool: TokenPool, leases: list[Lease]) -> list[tuple[float, str]]:
        """``(seconds since the first grant, masked name)`` of every lease granted,
        in time order: loop times in memory, the server's reservations on Redis (less
        those given back)."""
        if self.kind == "memory":
            t0 = min(granted_at(lease) for lease in leases)
            return sorted((round(granted_at(lease) - t0, 6), lease.name) for lease in leases)
        backend = core_of(pool).backend
        assert isinstance(backend, RedisBackend)
        log = await backend.audit_log()
        taken = [(e.at_us, e.name or e.id) for e in log if e.cost > 0]
        for e in log:
            if e.cost < 0:
                taken.remove((e.at_us, e.name or e.id))
        t0 = min(at for at, _ in taken)
        return sorted((round((at - t0) / 1e6, 6), name) for at, name in taken)

    async def waiting(self, pool: TokenPool) -> None:
        """Until one lease of ``pool`` waits: in the memory backend's queue (virtual
        time), or holding its reservation from Redis, not yet due (checked as the reply
        is applied, so the test acts before it could come due)."""
        if self.kind == "memory":
            await until(lambda: pool.stats().waiting == 1, what="a waiting lease")
        else:
            await reserved(pool)
            assert backend_of(pool).waiting == 1

    def assert_times(self, got: list[float], expected: list[float]) -> None:
        assert len(got) == len(expected), (got, expected)
        for g, e in zip(got, expected, strict=True):
            assert abs(g - e) <= self.slack, (got, expected)


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.looptime), "redis"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        return Harness("memory", None)
    return Harness("redis", request.getfixturevalue("make_pool"))


async def lease_all(pool: TokenPool, n: int, *, cost: float = 1, hold: float = 0.0) -> list[Lease]:
    async def one() -> Lease:
        async with pool.lease(cost=cost) as lease:
            await asyncio.sleep(hold)
            return lease

    return list(await asyncio.gather(*(one() for _ in range(n))))


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (Limit(20, per=1, burst=3), [0.0, 0.0, 0.0, 0.05, 0.1, 0.15]),
        (Limit(10, per=1, burst=1), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        (Limit(4, per=0.4), [0.0, 0.0, 0.0, 0.0, 0.1, 0.2]),
    ],
)
async def test_burst_then_rate(harness: Harness, limit: Limit, expected: list[float]) -> None:
    pool = harness.pool([A], limits=limit)
    async with pool:
        leases = await lease_all(pool, 6)
        grants = await harness.grants(pool, leases)
    harness.assert_times([t for t, _ in grants], expected)
    assert {name for _, name in grants} == {NAME_A}


async def test_every_window_of_a_token_binds(harness: Harness) -> None:
    token = Token(A, limits=[Limit(100, per=1), Limit(2, per=0.4)])  # the second binds
    pool = harness.pool([token], limits=Limit(1000))
    async with pool:
        leases = await lease_all(pool, 4)
        grants = await harness.grants(pool, leases)
    harness.assert_times([t for t, _ in grants], [0.0, 0.0, 0.2, 0.4])


async def test_costly_lease_takes_its_cost_in_units(harness: Harness) -> None:
    pool = harness.pool([A], limits=Limit(40, per=1, burst=4))
    async with pool:
        three, two = await asyncio.gather(lease_all(pool, 1, cost=3), lease_all(pool, 1, cost=2))
        grants = await harness.grants(pool, [*three, *two])
    # After 3 of 4 units at 0, two more fit once one has drained: 1/40 s later.
    harness.assert_times([t for t, _ in grants], [0.0, 0.025])
    stats = pool.stats().token(NAME_A)
    assert (stats.leases, stats.units) == (2, 5.0)


async def test_the_soonest_token_serves_each_lease(harness: Harness) -> None:
    slow = Token(A, limits=Limit(5, per=1, burst=1))  # every 0.2 s
    fast = Token(B, limits=Limit(10, per=1, burst=1))  # every 0.1 s
    pool = harness.pool([slow, fast])
    async with pool:
        leases = await lease_all(pool, 7)
        grants = await harness.grants(pool, leases)
    # Each lease at the earliest moment some token can take it (at 0.4 both can: either
    # may serve it, the memory backend picks the one that waited longer).
    harness.assert_times([t for t, _ in grants], [0.0, 0.0, 0.1, 0.2, 0.2, 0.3, 0.4])
    by_name = {name: [t for t, n in grants if n == name] for name in (NAME_A, NAME_B)}
    harness.assert_times(by_name[NAME_A][:2], [0.0, 0.2])
    harness.assert_times(by_name[NAME_B][:4], [0.0, 0.1, 0.2, 0.3])


async def test_lease_hands_out_the_secret_and_counts(harness: Harness) -> None:
    pool = harness.pool([A])
    async with pool:
        async with pool.lease() as lease:
            assert (lease.token, lease.name) == (A, NAME_A)
            assert pool.stats().token(NAME_A).in_flight == 1
        stats = pool.stats().token(NAME_A)
    assert (stats.leases, stats.ok, stats.in_flight) == (1, 1, 0)


async def test_cost_above_every_burst_is_a_value_error_at_once(harness: Harness) -> None:
    pool = harness.pool([A, B], limits=Limit(10, per=1, burst=2))
    async with pool:
        with pytest.raises(ValueError, match="exceeds the burst of every token"):
            await pool.acquire(cost=3)


async def test_no_usable_token_fails_at_once_also_for_waiters(harness: Harness) -> None:
    pool = harness.pool([A], limits=Limit(10, per=1, burst=1))
    async with pool:
        first = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await harness.waiting(pool)
        assert not waiter.done()
        first.revoked("401 from the API")
        first.release()
        with pytest.raises(NoTokensAvailable):
            await waiter
        with pytest.raises(NoTokensAvailable):
            await pool.acquire()


async def test_timeout_raises_lease_timeout(harness: Harness) -> None:
    pool = harness.pool([A], limits=Limit(1, per=1, burst=1))
    async with pool:
        await pool.acquire()
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0)
        with pytest.raises(LeaseTimeout) as info:
            await pool.acquire(timeout=0.05)
        assert isinstance(info.value, TimeoutError)


async def test_a_cancelled_waiter_consumes_nothing(harness: Harness) -> None:
    pool = harness.pool([A], limits=Limit(10, per=1, burst=1))
    async with pool:
        first = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await harness.waiting(pool)  # holding the reservation at 0.1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        second = await pool.acquire()  # takes the slot the cancelled waiter had
        grants = await harness.grants(pool, [first, second])
    harness.assert_times([t for t, _ in grants], [0.0, 0.1])


async def test_max_in_flight_caps_each_token(harness: Harness) -> None:
    pool = harness.pool([A, B], limits=Limit(1000), max_in_flight=1)
    async with pool:
        peak = 0

        async def one() -> None:
            nonlocal peak
            async with pool.lease():
                peak = max(peak, max(t.in_flight for t in pool.stats().tokens))
                # The call the lease is for, 10 ms (virtual in memory, real on Redis):
                # the six overlap, so only the cap keeps each token at one.
                await asyncio.sleep(0.01)

        await asyncio.gather(*(one() for _ in range(6)))
    assert peak == 1
    assert sorted(t.leases for t in pool.stats().tokens) == [3, 3]


async def test_a_waiter_blocked_by_caps_times_out_at_its_deadline(harness: Harness) -> None:
    pool = harness.pool([A], limits=Limit(1000), max_in_flight=1)
    async with pool:
        held = await pool.acquire()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0.05)
        assert loop.time() - start >= 0.05
        held.release()
        (await pool.acquire(timeout=0.05)).release()


async def test_closing_fails_waiters_with_pool_closed(harness: Harness) -> None:
    pool = harness.pool([A], limits=Limit(1, per=1, burst=1))
    async with pool:
        await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await harness.waiting(pool)
    with pytest.raises(PoolClosed):
        await waiter
    with pytest.raises(PoolClosed):
        await pool.acquire()
