"""Self-calibrating limits, the default, at work: a token served through ``pool.get`` by
many coroutines against :class:`~aurora_async.testing.MockAPI` with an nginx ``limit_req``
profile (429 without ``Retry-After`` or rate-limit headers), on virtual time.

``NginxLimitReq(20, burst=3)`` keeps an ``excess`` per token in milli-requests: each
admitted request adds 1000, each millisecond drains 20, and a request that would take it
above 3000 is refused (a fresh token passes 4 at once, then one every 50 ms).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import MockAPI, MockTokenStats, NginxLimitReq

pytestmark = pytest.mark.looptime

SECRET = "sk-cal-0123456789abcdef"
SERVER = NginxLimitReq(20, burst=3)
SECONDS = 20.0
COROUTINES = 50


def per_second(limit: str) -> float:
    """The rate of a limit as ``stats()`` shows it (``"19.6/1s (burst 1)"``), a second."""
    found = re.match(r"([0-9.]+)/([0-9.]+)s\b", limit)
    assert found is not None, limit
    return float(found[1]) / float(found[2])


async def serve(
    declared: Limit, *, watch: float = 0.0
) -> tuple[MockTokenStats, list[tuple[float, float]]]:
    """``COROUTINES`` coroutines call ``pool.get`` for ``SECONDS`` with one token declared
    ``declared``: what the server saw, and every ``watch`` seconds (0: never) the token's
    effective rate, as (seconds since the start, units a second)."""
    token = Token(SECRET, limits=declared)
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, float]] = []
    async with MockAPI({SECRET: SERVER}) as api, TokenPool([token], base_url=api.url) as pool:

        async def worker() -> None:
            while True:
                resp = await pool.get("/items")
                await resp.read()

        t0 = loop.time()
        tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
        while loop.time() - t0 < SECONDS:
            await asyncio.sleep(watch or SECONDS)
            if watch:
                rate = per_second(pool.stats().token(token.name).limits[0])
                seen.append((round(loop.time() - t0, 6), rate))
        stats = api.stats(SECRET)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats, seen


async def test_right_rate_with_the_burst_left_out_is_served_without_429s() -> None:
    """``Limit(20)`` against a server allowing 20/s with a burst of 3 it does not say.

    The bound on 429s is 0. The burst was not given, so the token starts at one unit: a
    grant every 50 ms, and nginx's excess stays at 0 (+1000 a request, -1000 per 50 ms).
    The rate is the declared one (a trusted ceiling: calibration never goes above it),
    and calibration only grows the burst, one unit per clean saturated period; each raise
    starts the token's windows full, and with 50 coroutines waiting the token never idles
    long enough to refill its bucket and fire a volley. So no request comes sooner than
    50 ms after the last, and none is refused. Each raise costs at most one interval, so
    the 200s stay well above 95% of 20 s x 20/s."""
    stats, _ = await serve(Limit(20))
    assert stats.rate_limited == 0
    assert stats.ok >= 0.95 * SECONDS * SERVER.rate
    assert stats.requests == stats.ok


async def test_a_rate_declared_twice_too_high_comes_down_within_seconds() -> None:
    """``Limit(40)`` against a server allowing 20/s: the 429s bring the effective rate
    down to the server's within a few seconds, and cost at most 2% of the requests."""
    stats, seen = await serve(Limit(40), watch=0.25)
    assert stats.rate_limited <= 0.02 * stats.requests, stats
    # Learned rates sit on a 2% grid (tokens of one tier share lanes) and are lowered to
    # 0.97 of an upper bound of the accepted rate: converged means within one grid step
    # of the server's rate (20.03/s here, a 429 every minute or so at worst).
    converged = next((at for at, rate in seen if rate <= SERVER.rate * 1.02), None)
    assert converged is not None, seen
    assert converged <= 3.0, seen
    assert all(rate <= SERVER.rate * 1.05 for at, rate in seen if at >= converged), seen
