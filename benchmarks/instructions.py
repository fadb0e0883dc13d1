"""Fixed workloads to count CPU instructions with valgrind, which does not drift on a
shared machine the way time does (not a ``bench_*`` script: ``dev.py bench`` skips it).

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/instructions.py WORKLOAD N

Count a workload at two sizes and divide the difference by the difference in leases:
start-up, imports and warm-up cancel out. Workloads:

- ``lease N``: N leases (``async with pool.lease(): pass``) on a pool of 10 tokens with
  room, after 1,000 to warm up; ``lease-timeout N``: the same with ``timeout=30``;
  ``acquire N``: N bare ``AsyncLimiter.acquire()`` (the baseline). Leases per run: N.
- ``resources N``: N leases of two resources with their settle, as ``bench_resources.py``
  makes them (``cost={"tokens": 500}``, then ``lease.settle(tokens=400)``), on 10 tokens
  each limited in requests and in tokens; ``resources-nosettle N``: without the settle;
  ``resources-plain N``: the one-resource lease of the same script (10 tokens limited in requests,
  each its own ``Limit``); ``resources-costs N``: the two-resource lease of a ``Costs``
  made once (``Costs(1, {"tokens": 500})``), without the settle. Leases per run: N.
- ``saturated MS``, ``saturated-timeout MS``: ``bench_saturated.py``'s pool (1,000 tokens
  at ``Limit(20, burst=2)``, 4,000 coroutines; with ``timeout=stop - now``) for MS
  milliseconds of virtual time (looptime), closed 25 ms after the last whole tick;
  ``floor MS``, ``floor-timeout MS``: its floors; ``floor-with MS``,
  ``floor-with-timeout MS``: the floors in a lease's coroutine shape (each hand-off
  inside ``async with`` an object made per lease, holding its timeout). Grants per
  run: ``2,000 + 20 * MS`` (printed), so 500 and 1,500 differ by 20,000 grants. The
  virtual clock advances by a varying few hundred nanoseconds at every reading, as a
  real one does (so the leases' deadlines differ, as they do in real time).
  ``saturated-timeout-ns MS``, ``floor-timeout-ns MS`` and ``floor-with-timeout-ns MS``:
  the same on a clock read in whole nanoseconds, as ``time.monotonic()`` is, so that
  leases share deadlines as often as they do on the real clock (where ``stop - now``
  read a few hundred nanoseconds apart gives a few hundred distinct deadlines among
  4,000 waiting leases).
- ``request N``: ``bench_http.py``'s unlimited-server shape: N ``pool.get`` (the body
  read) by 64 coroutines through one session, against its aiohttp server in its own
  process (which callgrind does not follow), after 500 to warm up; ``plain N``: the
  same with plain aiohttp (``await resp.read()``), the baseline. Add ``-uvloop``
  (``request-uvloop``, ``plain-uvloop``) to run the client on uvloop. Requests per run: N.

The counts used in ``README.md``: ``lease`` 1,000 and 21,000, ``saturated`` 500 and
1,500, ``request`` and ``plain`` 500 and 2,500, with ``PYTHONHASHSEED=0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from _common import secrets
from aiolimiter import AsyncLimiter

from aurora_async import Costs, LeaseTimeout, Limit, PoolClosed, Token, TokenPool

HUGE = Limit(1e12, per=1.0, burst=1e12)  # capacity never runs out during the run
TOKENS, RATE, COROUTINES = 1000, 20.0, 4000
_new = object.__new__
_INF = float("inf")  # a constant, as the pool's: not float("inf") a grant


async def leases(pool: TokenPool, n: int, timeout: float | None) -> None:
    for _ in range(n):
        async with pool.lease(timeout=timeout):
            pass


async def acquires(limiter: AsyncLimiter, n: int) -> None:
    for _ in range(n):
        await limiter.acquire()


def run_leases(n: int, timeout: float | None) -> None:
    loop = asyncio.new_event_loop()
    pool = TokenPool(secrets(10), limits=HUGE)
    gc.collect()
    gc.freeze()
    loop.run_until_complete(leases(pool, 1000, timeout))
    loop.run_until_complete(leases(pool, n, timeout))


async def vectors(pool: TokenPool, n: int, settle: bool, made: bool = False) -> None:
    cost: dict[str, float] | Costs = Costs(1, {"tokens": 500}) if made else {"tokens": 500}
    for _ in range(n):
        async with pool.lease(cost=cost) as lease:
            if settle:
                lease.settle(tokens=400)


def run_resources(n: int, workload: str) -> None:
    loop = asyncio.new_event_loop()
    limits = [HUGE]
    if workload != "resources-plain":
        limits.append(Limit(1e12, burst=1e12, unit="tokens"))
    pool = TokenPool([Token(s, limits=limits) for s in secrets(10)], trial_in_flight=None)
    gc.collect()
    gc.freeze()
    if workload == "resources-plain":
        loop.run_until_complete(leases(pool, 1000, None))
        loop.run_until_complete(leases(pool, n, None))
        return
    settle, made = workload == "resources", workload == "resources-costs"
    loop.run_until_complete(vectors(pool, 1000, settle, made))
    loop.run_until_complete(vectors(pool, n, settle, made))


def run_acquires(n: int) -> None:
    loop = asyncio.new_event_loop()
    limiter = AsyncLimiter(1e12, 1)
    loop.run_until_complete(acquires(limiter, 1000))
    loop.run_until_complete(acquires(limiter, n))


def virtual_loop(ns: bool = False) -> asyncio.AbstractEventLoop:
    """A looptime loop whose clock moves on by 0.1-500 ns at every reading (``ns``: read
    in whole nanoseconds, some days from its origin, as ``time.monotonic()`` is)."""
    import looptime

    loop = looptime.new_event_loop(start=300_000.0 if ns else 0.0)
    base = loop.time
    state = [0, 0.0]

    def time() -> float:
        state[0] += 1
        state[1] += (state[0] * 7919 % 4999 + 1) * 1e-10
        return base() + state[1]

    def time_ns() -> float:
        state[0] += 1
        state[1] += (state[0] * 7919 % 4999 + 1) * 1e-10
        return round((base() + state[1]) * 1e9) / 1e9

    loop.time = time_ns if ns else time  # type: ignore[method-assign]
    return loop


async def saturated(seconds: float, timeouts: bool) -> int:
    loop = asyncio.get_running_loop()
    limit = Limit(RATE, per=1.0, burst=2)
    pool = TokenPool(secrets(TOKENS), limits=limit, trial_in_flight=None)
    granted = 0
    stop = loop.time() + 1000.0

    async def worker() -> None:
        nonlocal granted
        with contextlib.suppress(PoolClosed, LeaseTimeout):
            while True:
                async with pool.lease(timeout=stop - loop.time() if timeouts else None):
                    granted += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    await asyncio.sleep(seconds)
    await pool.aclose()
    await asyncio.gather(*tasks)
    return granted


async def floor(seconds: float, timeouts: bool, shaped: bool = False) -> int:
    """``bench_saturated.py``'s floors: a bare future hand-off from one timer; ``shaped``:
    each hand-off inside ``async with`` an object made per lease."""
    loop = asyncio.get_running_loop()
    waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
    granted = 0
    stop = False
    start = loop.time()
    end = start + 1000.0

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
        nonlocal granted
        while not stop:
            fut = loop.create_future()
            if timeouts:
                now = loop.time()
                waiters.append((now + (end - now), fut))
            else:
                waiters.append((_INF, fut))
            await fut
            granted += 1

    class Handoff:
        """A lease's coroutine shape without its scheduling (``shaped``)."""

        __slots__ = ("timeout",)
        timeout: float | None

        async def __aenter__(self) -> Handoff:
            fut = loop.create_future()
            timeout = self.timeout
            waiters.append((_INF if timeout is None else loop.time() + timeout, fut))
            await fut
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            return None

    async def shaped_worker() -> None:
        nonlocal granted
        while not stop:
            made: Handoff = _new(Handoff)  # as pool.lease() makes a lease: no __init__
            made.timeout = end - loop.time() if timeouts else None
            async with made:
                granted += 1

    if shaped:
        worker = shaped_worker

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    loop.call_soon(tick, 0, TOKENS * 2)
    await asyncio.sleep(seconds)
    stop = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return granted


def run_requests(client: str, loop: str, n: int) -> None:
    """``n`` requests of ``bench_http.py``'s unlimited-server part by ``client``
    (``pool`` or ``aiohttp``) on ``loop``, after 500 to warm up (both on one server)."""
    from bench_http import CONCURRENCY, run_on, throughput, unlimited_server

    with unlimited_server() as url:
        run_on(loop, throughput(client, url, 500, CONCURRENCY))
        run_on(loop, throughput(client, url, n, CONCURRENCY))


def main() -> int:
    workload, n = sys.argv[1], int(sys.argv[2])
    side, _, on = workload.partition("-")
    if side in ("request", "plain") and on in ("", "uvloop"):
        run_requests("pool" if side == "request" else "aiohttp", on or "asyncio", n)
        return 0
    if workload in ("lease", "lease-timeout"):
        run_leases(n, 30.0 if workload == "lease-timeout" else None)
        return 0
    if workload == "acquire":
        run_acquires(n)
        return 0
    if workload in ("resources", "resources-nosettle", "resources-plain", "resources-costs"):
        run_resources(n, workload)
        return 0
    kinds: dict[str, Callable[[float, bool], Coroutine[Any, Any, int]]] = {
        "saturated": saturated,
        "floor": floor,
        "floor_with": partial(floor, shaped=True),
    }
    kind, _, timeout = workload.replace("floor-with", "floor_with").partition("-")
    if kind not in kinds or timeout not in ("", "timeout", "timeout-ns"):
        raise SystemExit(f"unknown workload {workload!r}")
    loop = virtual_loop(ns=timeout == "timeout-ns")
    seconds = n / 1000 + 0.025  # between two ticks: the same state at the close
    granted = loop.run_until_complete(kinds[kind](seconds, timeout != ""))
    print(f"{workload} {n}: {granted:,} grants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
