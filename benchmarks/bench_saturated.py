"""Saturated: 1,000 tokens, thousands of coroutines, every token busy all the time.

    python benchmarks/bench_saturated.py [--quick]

Figures (same process, same coroutines, real time):
- ``CPU per grant``: process CPU seconds per lease granted, for the pool and for the
  *floor*: a bare asyncio future hand-off in batches from one timer (the cheapest way
  any scheduler could wake the same coroutines at the same moments). Target: pool at
  most 2x the floor.
- ``grant rate / sum of token rates``: leases granted per second against what the
  tokens allow together. Target: the full rate (at least 98%), not capped by the loop's
  timer granularity (one wake grants every token that is due).
- ``with lease timeouts``: the same pool, each lease bounded by the crawl's end
  (``async with pool.lease(timeout=stop - now)``), against the floor of the same shape
  (each waiter carries its deadline, checked when the tick hands it out). Target: pool at
  most 2x that floor.
- For context: the floor again with each hand-off inside an ``async with`` of an object
  made per lease (the coroutine shape a lease has, without any scheduling), with and
  without deadlines, and strict round robin over one ``aiolimiter.AsyncLimiter`` per
  token. The shaped floors split the ratio in two: what ``async with`` costs by itself,
  and what is left for the scheduling.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sys
import time
from collections import deque

from _common import Figure, Report, finish, quick, secrets
from aiolimiter import AsyncLimiter

from aurora_async import LeaseTimeout, Limit, PoolClosed, TokenPool

TOKENS = 1000
RATE = 20.0  # per token per second: 20,000 grants a second in all
COROUTINES = 4000
_new = object.__new__


class Meter:
    """Counts grants; measures wall time and CPU over a window after a warm-up."""

    def __init__(self) -> None:
        self.grants = 0

    async def window(self, warmup: float, seconds: float) -> tuple[float, float, int]:
        await asyncio.sleep(warmup)
        g0, c0, t0 = self.grants, time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        g1, c1, t1 = self.grants, time.process_time(), time.perf_counter()
        return (c1 - c0), (t1 - t0), (g1 - g0)


async def run_pool(seconds: float) -> tuple[float, float, int]:
    # burst=2: given, so the tokens fire at their full rate from the start (a burst left
    # at its default starts at one unit under calibration, where the loop's late timer
    # wake-ups cost about 3% until it grows: bench_timer.py measures that).
    limit = Limit(RATE, per=1.0, burst=2)
    pool = TokenPool(secrets(TOKENS), limits=limit, trial_in_flight=None)
    meter = Meter()

    async def worker() -> None:
        with contextlib.suppress(PoolClosed):
            while True:
                async with pool.lease():
                    meter.grants += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    result = await meter.window(1.5, seconds)
    await pool.aclose()
    await asyncio.gather(*tasks)
    return result


async def run_pool_timeouts(seconds: float) -> tuple[float, float, int]:
    """The pool again, every lease bounded by the end of the crawl (none expires in the
    measured window): the deadline bookkeeping of every waiter, granted or not."""
    loop = asyncio.get_running_loop()
    limit = Limit(RATE, per=1.0, burst=2)
    pool = TokenPool(secrets(TOKENS), limits=limit, trial_in_flight=None)
    meter = Meter()
    stop = loop.time() + 1.5 + seconds + 5.0  # the crawl's end, after the measurement

    async def worker() -> None:
        with contextlib.suppress(PoolClosed, LeaseTimeout):
            while True:
                async with pool.lease(timeout=stop - loop.time()):
                    meter.grants += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    result = await meter.window(1.5, seconds)
    await pool.aclose()
    await asyncio.gather(*tasks)
    return result


async def run_floor(seconds: float) -> tuple[float, float, int]:
    """The same coroutines woken in the same batches by one timer, with nothing else:
    each tick (every 1/RATE s) hands out one grant per token, as the pool does."""
    loop = asyncio.get_running_loop()
    waiters: deque[asyncio.Future[None]] = deque()
    meter = Meter()
    stop = False
    start = loop.time()
    burst = TOKENS * int(RATE)  # a fresh bucket of `rate` units per token, as in the pool

    def tick(k: int, budget: int) -> None:
        while budget and waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                budget -= 1
        if not stop:
            loop.call_at(start + (k + 1) / RATE, tick, k + 1, TOKENS)

    async def worker() -> None:
        while not stop:
            fut = loop.create_future()
            waiters.append(fut)
            await fut
            meter.grants += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    loop.call_soon(tick, 0, burst)
    result = await meter.window(1.5, seconds)
    stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def run_floor_timeouts(seconds: float, shaped: bool = False) -> tuple[float, float, int]:
    """The floor of the same shape as ``run_pool_timeouts``: each waiter carries its
    deadline (read from the loop's clock as a lease does), and the tick fails a waiter
    whose deadline passed instead of waking it (none does in the measured window).
    ``shaped``: each hand-off inside ``async with`` an object made per lease, given its
    timeout, whose ``__aenter__`` files the deadline and awaits the future (``__aexit__``
    does nothing): what is left between this and the pool is the scheduling itself."""
    loop = asyncio.get_running_loop()
    waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
    meter = Meter()
    stop = False
    start = loop.time()
    end = start + 1.5 + seconds + 5.0

    def tick(k: int, budget: int) -> None:
        now = loop.time()
        while budget and waiters:
            deadline, fut = waiters.popleft()
            if not fut.done():
                if deadline <= now:
                    fut.set_exception(TimeoutError())
                else:
                    fut.set_result(None)
                    budget -= 1
        if not stop:
            loop.call_at(start + (k + 1) / RATE, tick, k + 1, TOKENS)

    async def worker() -> None:
        while not stop:
            fut = loop.create_future()
            now = loop.time()
            waiters.append((now + (end - now), fut))
            await fut
            meter.grants += 1

    class Handoff:
        __slots__ = ("timeout",)
        timeout: float

        async def __aenter__(self) -> Handoff:
            fut = loop.create_future()
            waiters.append((loop.time() + self.timeout, fut))
            await fut
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            return None

    async def shaped_worker() -> None:
        while not stop:
            made: Handoff = _new(Handoff)  # no __init__ frame, nor any other call
            made.timeout = end - loop.time()
            async with made:
                meter.grants += 1

    work = shaped_worker if shaped else worker
    tasks = [asyncio.create_task(work()) for _ in range(COROUTINES)]
    loop.call_soon(tick, 0, TOKENS * int(RATE))
    result = await meter.window(1.5, seconds)
    stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def run_floor_with(seconds: float) -> tuple[float, float, int]:
    """The floor again, but each coroutine enters an ``async with`` whose ``__aenter__``
    awaits the future (an object made per lease, as a lease is): the cost of the
    coroutine shape alone, without any scheduling."""
    loop = asyncio.get_running_loop()
    waiters: deque[asyncio.Future[None]] = deque()
    meter = Meter()
    stop = False
    start = loop.time()

    class Handoff:
        __slots__ = ("cost", "timeout")

        def __init__(self) -> None:
            self.cost = 1
            self.timeout = None

        async def __aenter__(self) -> Handoff:
            fut = loop.create_future()
            waiters.append(fut)
            await fut
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            return None

    def tick(k: int, budget: int) -> None:
        while budget and waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                budget -= 1
        if not stop:
            loop.call_at(start + (k + 1) / RATE, tick, k + 1, TOKENS)

    async def worker() -> None:
        while not stop:
            async with Handoff():
                meter.grants += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    loop.call_soon(tick, 0, TOKENS * int(RATE))
    result = await meter.window(1.5, seconds)
    stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def run_floor_with_timeouts(seconds: float) -> tuple[float, float, int]:
    """``run_floor_timeouts`` in the coroutine shape of a lease (``shaped``)."""
    return await run_floor_timeouts(seconds, shaped=True)


async def run_round_robin(seconds: float) -> tuple[float, float, int]:
    limiters = [AsyncLimiter(RATE, 1.0) for _ in range(TOKENS)]
    turn = itertools.count()
    meter = Meter()

    async def worker() -> None:
        while True:
            await limiters[next(turn) % TOKENS].acquire()
            meter.grants += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    result = await meter.window(1.5, seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def main() -> int:
    seconds = 2.0 if quick() else 5.0
    repeats = 1 if quick() else 3
    runs: dict[str, list[tuple[float, float, int]]] = {
        "floor": [],
        "with": [],
        "pool": [],
        "rr": [],
        "floor_t": [],
        "pool_t": [],
        "with_t": [],
    }
    cases = (
        ("floor", run_floor),
        ("with", run_floor_with),
        ("pool", run_pool),
        ("rr", run_round_robin),
        ("floor_t", run_floor_timeouts),
        ("pool_t", run_pool_timeouts),
        ("with_t", run_floor_with_timeouts),
    )
    for _ in range(repeats):  # interleaved, so drift hits all alike
        for name, fn in cases:
            gc.collect()
            runs[name].append(asyncio.run(fn(seconds)))

    def per_grant(name: str) -> float:
        return sorted(cpu / grants for cpu, _, grants in runs[name])[len(runs[name]) // 2]

    def rate(name: str) -> float:
        return sorted(grants / wall for _, wall, grants in runs[name])[len(runs[name]) // 2]

    capacity = TOKENS * RATE
    floor, pool, rr = per_grant("floor"), per_grant("pool"), per_grant("rr")
    report = Report("saturated")
    report.add(Figure("floor: CPU per grant", floor * 1e6, "µs", detail="future hand-off"))
    report.add(Figure("pool: CPU per grant", pool * 1e6, "µs"))
    report.add(Figure("pool / floor", pool / floor, "x", "<= 2x", pool / floor <= 2))
    shaped = per_grant("with")
    report.add(
        Figure(
            "pool / floor with the same async-with shape",
            pool / shaped,
            "x",
            detail=f"that floor: {shaped * 1e6:.2f} µs",
        )
    )
    floor_t, pool_t = per_grant("floor_t"), per_grant("pool_t")
    report.add(
        Figure(
            "with lease timeouts, floor: CPU per grant",
            floor_t * 1e6,
            "µs",
            detail="future hand-off, each waiter with a deadline",
        )
    )
    report.add(Figure("with lease timeouts, pool: CPU per grant", pool_t * 1e6, "µs"))
    report.add(
        Figure(
            "with lease timeouts, pool / floor",
            pool_t / floor_t,
            "x",
            "<= 2x",
            pool_t / floor_t <= 2,
            f"{rate('pool_t') / capacity:.0%} of the rate",
        )
    )
    shaped_t = per_grant("with_t")
    report.add(
        Figure(
            "with lease timeouts, pool / floor with the same async-with shape",
            pool_t / shaped_t,
            "x",
            detail=f"that floor: {shaped_t * 1e6:.2f} µs, {shaped_t / floor_t:.2f}x the floor",
        )
    )
    share = rate("pool") / capacity
    report.add(
        Figure(
            "pool: grant rate / sum of token rates",
            share * 100,
            "%",
            ">= 98%",
            share >= 0.98,
            f"{rate('pool'):,.0f} of {capacity:,.0f} per s",
        )
    )
    report.add(
        Figure(
            "round robin over aiolimiter: CPU per grant",
            rr * 1e6,
            "µs",
            detail=f"{rate('rr') / capacity:.0%} of the rate",
        )
    )
    report.notes.append(
        f"{TOKENS:,} tokens at {RATE:g}/s, {COROUTINES:,} coroutines, {seconds:g} s measured "
        f"after 1.5 s of warm-up, median of {repeats} interleaved runs."
    )
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
