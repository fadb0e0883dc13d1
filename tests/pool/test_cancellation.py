"""Cancellation at scale: half of 10,000 waiters cancelled at random moments leaves the
other half served exactly when they would have been had the cancelled never existed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from aurora_async import Limit, TokenPool

TOKENS = [f"secret-{i:04d}-cancellation-test" for i in range(10)]


async def serve(
    ids: list[int], cancels: dict[int, float], now: Callable[[], float]
) -> tuple[dict[int, float], TokenPool]:
    """Queue one lease per id (in order), cancel some at the given times; return when each
    surviving lease was granted."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    pool = TokenPool(TOKENS, limits=Limit(100, per=1.0, burst=1), trial_in_flight=None)
    granted: dict[int, float] = {}

    async def one(i: int) -> None:
        async with pool.lease():
            granted[i] = now()

    tasks = {i: asyncio.create_task(one(i)) for i in ids}
    for i, at in cancels.items():
        loop.call_at(start + at, tasks[i].cancel)
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    return granted, pool


@pytest.mark.looptime
async def test_half_of_ten_thousand_waiters_cancelled_at_random(clock) -> None:
    rng = random.Random(20261129)
    ids = list(range(10_000))
    doomed = rng.sample(ids, 5_000)
    # Half of the cancels fall exactly on grant instants (every 10 ms): some then land
    # after the lease was handed over but before its task resumed, and must give it back.
    cancels = {i: round(rng.uniform(0.0, 6.0), 2 if k % 2 else 9) for k, i in enumerate(doomed)}

    now = clock()
    mixed, pool = await serve(ids, cancels, now)
    survivors = sorted(mixed)
    # Some cancels came after their lease was granted: those leases count as served.
    assert 5_000 <= len(survivors) < 10_000
    stats = pool.stats()
    assert (stats.waiting, stats.in_flight) == (0, 0)
    assert stats.granted == len(survivors)  # a lease given back is not counted

    now = clock()
    alone, _ = await serve(survivors, {}, now)
    assert [mixed[i] for i in survivors] == [alone[i] for i in survivors]
    # ... and those are the ideal times: ten tokens of one unit each, 100 a second.
    assert [alone[i] for i in survivors] == [
        round((k // 10) * 0.01, 6) for k in range(len(survivors))
    ]
