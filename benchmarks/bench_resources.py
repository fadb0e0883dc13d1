"""The cost of the vector: a lease of two resources against a lease of one.

    python benchmarks/bench_resources.py [--quick]

Figures (medians of interleaved runs, same process, free capacity on every token):
- ``one resource``: ``async with pool.lease(): pass`` on 10 tokens limited in requests;
- ``two resources``: ``async with pool.lease(cost={"tokens": 500}) as lease:
  lease.settle(tokens=400)`` on 10 tokens limited in requests *and* tokens (a
  ``MixedSlot`` each: the general path, every window read through its own part), with the
  settle an LLM call makes;
- ``two resources, no settle``: the same lease without the settle (the lease alone);
- ``two resources, a Costs made once``: ``cost = Costs(1, {"tokens": 500})`` built
  before the loop and leased as it is (no mapping to read at each lease).

Target (the issue's words: "a lease with two resources at most 1.3x a one-resource
lease"): the lease alone, with the mapping and with a ``Costs`` made once. The settle is
a second call (after the answer), shown beside it.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time

from _common import Figure, Report, finish, interleaved, quick, secrets

from aurora_async import Costs, Limit, Token, TokenPool

HUGE = 1e12  # capacity never runs out during the run


def pool_of(limits: list[Limit]) -> TokenPool:
    return TokenPool([Token(s, limits=limits) for s in secrets(10)], trial_in_flight=None)


async def plain(pool: TokenPool, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        async with pool.lease():
            pass
    return (time.perf_counter() - start) / n


async def vector(pool: TokenPool, n: int, settle: bool, made: bool = False) -> float:
    cost: dict[str, float] | Costs = Costs(1, {"tokens": 500}) if made else {"tokens": 500}
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
    run(vector(two, 1000, False, made=True))
    single, double, unsettled, made = interleaved(
        repeats,
        [
            lambda: run(plain(one, n)),
            lambda: run(vector(two, n, True)),
            lambda: run(vector(two, n, False)),
            lambda: run(vector(two, n, False, made=True)),
        ],
    )
    loop.close()
    report = Report("resources")
    report.add(Figure("one resource", single * 1e6, "µs"))
    report.add(Figure("two resources (a mapping)", unsettled * 1e6, "µs"))
    report.add(Figure("two resources (a Costs made once)", made * 1e6, "µs"))
    report.add(Figure("two resources and the settle", double * 1e6, "µs"))
    ratio = unsettled / single
    report.add(Figure("two resources / one (a mapping)", ratio, "x", "<= 1.3x", ratio <= 1.3))
    ratio = made / single
    report.add(Figure("two resources / one (a Costs)", ratio, "x", "<= 1.3x", ratio <= 1.3))
    report.add(Figure("two resources and the settle / one", double / single, "x"))
    report.notes.append(f"{n:,} leases per run, {repeats} interleaved runs, 10 tokens.")
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
