"""Lease with free capacity: cost of one lease, against a bare aiolimiter acquire, and
how it grows from 10 to 100,000 tokens.

    python benchmarks/bench_lease.py [--quick]

Figures (medians of interleaved runs, same process):
- ``lease / acquire``: one ``async with pool.lease(): pass`` against one
  ``await AsyncLimiter.acquire()`` on a limiter with room. Target: at most 2x.
- ``100k / 10 tokens``: the same lease in a pool of 100,000 tokens against a pool of 10.
  Target: at most 1.5x. Every token has room, so each lease goes to a different token
  (most headroom first) and the whole pool is cycled through, as it would be in use.
  The big pool is warmed up by one full turn first; the heap behind the scheduler makes
  the remaining growth logarithmic (17 levels at 100,000 tokens against 4 at 10).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

from _common import Figure, Report, finish, interleaved, quick, secrets
from aiolimiter import AsyncLimiter

from aurora_async import Limit, TokenPool

HUGE = Limit(1e12, per=1.0, burst=1e12)  # capacity never runs out during the run


async def bare_acquire(n: int) -> float:
    limiter = AsyncLimiter(1e12, 1)
    start = time.perf_counter()
    for _ in range(n):
        await limiter.acquire()
    return (time.perf_counter() - start) / n


def make_pool(tokens: int) -> TokenPool:
    return TokenPool(secrets(tokens), limits=HUGE)


async def lease_loop(pool: TokenPool, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with pool.lease():
            pass
    return (time.perf_counter() - start) / n


def main() -> int:
    n = 50_000 if quick() else 200_000
    repeats = 3 if quick() else 7
    loop = asyncio.new_event_loop()
    small, big = make_pool(10), make_pool(100_000)
    gc.collect()
    gc.freeze()  # the pools are long-lived: keep the collector from rescanning them
    run = loop.run_until_complete
    # Bind both pools to the loop and warm up: one full turn through the big pool, so every
    # token has been leased once (a first lease of a never-used token touches cold memory;
    # a long-running crawler pays that once, not per lease).
    run(lease_loop(small, 1000))
    run(lease_loop(big, 100_000))
    bare, lease10, lease100k = interleaved(
        repeats,
        [
            lambda: run(bare_acquire(n)),
            lambda: run(lease_loop(small, n)),
            lambda: run(lease_loop(big, n)),
        ],
    )
    loop.close()
    report = Report("lease")
    report.add(Figure("bare AsyncLimiter.acquire()", bare * 1e6, "µs"))
    report.add(Figure("lease, 10 tokens", lease10 * 1e6, "µs"))
    report.add(Figure("lease, 100,000 tokens", lease100k * 1e6, "µs"))
    ratio = lease10 / bare
    report.add(Figure("lease / acquire", ratio, "x", "<= 2x", ratio <= 2))
    growth = lease100k / lease10
    report.add(Figure("100k / 10 tokens", growth, "x", "<= 1.5x", growth <= 1.5))
    report.notes.append(f"{n:,} leases per measurement, median of {repeats} interleaved runs.")
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
