"""The Lua side of the spent-window rule follows the Python one (``spent_levels``).

When the API says a token's quota is spent (a 429 with Retry-After), the pool fills the
windows ``spent_levels`` names, as of the cooldown's end, and the Redis backend asks the
shared script to do the same. Here a second worker's reservations after the cooldown
show which windows the script filled: a filled 2 s window (10/s) spaces them 0.1 s apart,
an untouched one (room for 10) leaves the 20/s window to space them 0.05 s apart.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from aurora_async import Limit, TokenPool
from aurora_async._core.buckets import spent_levels
from aurora_async._pool.core import core_of

from .support import landed

pytestmark = pytest.mark.redis

A = "aaaa-secret-0001"
LIMITS = (Limit(20, per=1, burst=4), Limit(20, per=2, burst=10))


async def spacing_after_cooldown(
    make_pool: Callable[..., TokenPool], retry_after: float
) -> list[float]:
    one = make_pool([A], limits=list(LIMITS), calibrate=False)
    two = make_pool([A], limits=list(LIMITS), calibrate=False)
    async with one, two:
        async with one.lease() as lease:
            lease.rate_limited(retry_after=retry_after)
        await landed(one)  # the cooldown (and the windows it fills) is in Redis
        leases = await asyncio.gather(*(two.acquire() for _ in range(4)))
        for lease in leases:
            lease.release()
        backend = core_of(one).backend
        assert backend is not None
        log = await backend.audit_log()  # type: ignore[attr-defined]
    times = sorted(entry.at_us / 1e6 for entry in log)
    assert times[1] - times[0] >= retry_after  # nothing before the cooldown's end
    return [round(b - a, 6) for a, b in itertools.pairwise(times[1:])]


@pytest.mark.parametrize("retry_after", [0.2, 2.5])
async def test_the_script_fills_the_windows_spent_levels_names(
    make_pool: Callable[..., TokenPool], retry_after: float
) -> None:
    levels = spent_levels(LIMITS, 1.0, retry_after)
    # 0.2 s: only the 1 s window is spent; 2.5 s: both (their periods fit the cooldown)
    assert [level is not None for level in levels] == (
        [True, False] if retry_after < 1 else [True, True]
    )
    expected = 0.1 if levels[1] is not None else 0.05
    assert await spacing_after_cooldown(make_pool, retry_after) == [expected] * 3
