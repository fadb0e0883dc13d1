"""The cost of the vector: a lease of two resources against a lease of one.

    python benchmarks/bench_resources.py [--quick]

Figures (medians of interleaved runs, same process, free capacity on every token):
- ``one resource``: ``async with pool.lease(): pass`` on 10 tokens limited in requests;
- ``two resources``: ``async with pool.lease(cost={"tokens": 500}) as lease:
  lease.settle(tokens=400)`` on 10 tokens limited in requests *and* tokens (a
  ``MixedSlot`` each: the general path, every window read through its own part), with the
  settle an LLM call makes;
- ``two resources, no settle``: the same lease without the settle.

Target: two resources at most 1.3x one resource (with the settle).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

from _common import Figure, Report, finish, interleaved, quick, secrets

from aurora_async import Limit, Token, TokenPool

HUGE = 1e12  # capacity never runs out during the run


def pool_of(limits: list[Limit]) -> TokenPool:
    return TokenPool([Token(s, limits=limits) for s in secrets(10)], trial_in_flight=None)


async def plain(pool: TokenPool, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with pool.lease():
            pass
    return (time.perf_counter() - start) / n


async def vector(pool: TokenPool, n: int, settle: bool) -> float:
    cost = {"tokens": 500}
    start = time.perf_counter()
    for _ in range(n):
        async with pool.lease(cost=cost) as lease:
            if settle:
                lease.settle(tokens=400)
    return (time.perf_counter() - start) / n


def main() -> int:
    n = 30_000 if quick() else 100_000
    repeats = 3 if quick() else 7
    loop = asyncio.new_event_loop()
    one = pool_of([Limit(HUGE, burst=HUGE)])
    two = pool_of([Limit(HUGE, burst=HUGE), Limit(HUGE, burst=HUGE, unit="tokens")])
    gc.collect()
    gc.freeze()
    run = loop.run_until_complete
    run(plain(one, 1000))
    run(vector(two, 1000, True))
    single, double, unsettled = interleaved(
        repeats,
        [
            lambda: run(plain(one, n)),
            lambda: run(vector(two, n, True)),
            lambda: run(vector(two, n, False)),
        ],
    )
    loop.close()
    report = Report("resources")
    report.add(Figure("one resource", single * 1e6, "µs"))
    report.add(Figure("two resources, with settle", double * 1e6, "µs"))
    report.add(Figure("two resources, no settle", unsettled * 1e6, "µs"))
    ratio = double / single
    report.add(Figure("two resources / one", ratio, "x", "<= 1.3x", ratio <= 1.3))
    report.add(Figure("two resources, no settle / one", unsettled / single, "x"))
    report.notes.append(f"{n:,} leases per run, {repeats} interleaved runs, 10 tokens.")
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
