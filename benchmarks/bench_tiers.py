"""Mixed token tiers on virtual time: soonest-fire against strict round robin.

    python benchmarks/bench_tiers.py [--quick]

8 tokens at 5/s, 8 at 20/s and 8 at 50/s (600 requests a second in all) and 200
coroutines, each holding its lease for a 50 ms "request". Time is the event loop's
virtual time (looptime), so a minute runs in about a second and the figures are exact.

- ``pool``: ``async with pool.lease()`` on a ``TokenPool`` of the 24 tokens.
- ``round robin``: each coroutine takes the next token in strict turn and waits on that
  token's own limiter (same limits): the naive client. Each per-token limiter is a
  one-token ``TokenPool`` rather than a bare ``aiolimiter.AsyncLimiter``: on virtual time
  a bare AsyncLimiter can spin forever once loop times grow past a few seconds (its
  timer fires within the clock's resolution before the bucket has quite drained, and it
  re-arms the same instant); the pool compares times with a 1 ns tolerance.

Both run with ``calibrate=False``: this measures the scheduler on limits declared exactly
(``bench_calibrate.py`` measures limits declared wrong against a real enforcer).

Target: the pool reaches at least 97% of the summed rate (measured after the opening
burst); round robin is printed beside it. Each strategy's grants per second over the
whole run (warm-up included, 1-second buckets, finer for a short run) go into the
result's ``series`` for the chart of ``aurora-async bench``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

from _common import (
    Figure,
    Points,
    Report,
    Throughput,
    bucket_for,
    finish,
    on_virtual_time,
    quick,
    secrets,
)

from aurora_async import Limit, Token, TokenPool

TIERS = ((8, 5.0), (8, 20.0), (8, 50.0))
COROUTINES = 200
HOLD = 0.05  # seconds each lease is held: the request's round trip
WARMUP = 5.0  # seconds: the opening burst is over by then
POOL = "pool (soonest-fire)"
ROUND_ROBIN = "strict round robin"


def tokens() -> list[Token]:
    values = iter(secrets(sum(n for n, _ in TIERS)))
    return [Token(next(values), Limit(rate, per=1.0)) for n, rate in TIERS for _ in range(n)]


async def measure(run_one: object, seconds: float, warmup: float) -> tuple[float, Points]:
    """Grants per second between ``warmup`` and ``warmup + seconds`` of virtual time, and
    grants per second over time from the start (the series)."""
    loop = asyncio.get_running_loop()
    done = 0
    over_time = Throughput(loop.time, bucket_for(warmup + seconds))

    async def worker() -> None:
        nonlocal done
        while True:
            await run_one()  # type: ignore[operator]
            done += 1
            over_time.tick()

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    await asyncio.sleep(warmup)
    start, before = loop.time(), done
    await asyncio.sleep(seconds)
    rate = (done - before) / (loop.time() - start)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return rate, over_time.points(warmup + seconds)


async def pool_rate(seconds: float, warmup: float = WARMUP) -> tuple[float, Points]:
    pool = TokenPool(tokens(), trial_in_flight=None, calibrate=False)

    async def one() -> None:
        async with pool.lease():
            await asyncio.sleep(HOLD)

    return await measure(one, seconds, warmup)


async def round_robin_rate(seconds: float, warmup: float = WARMUP) -> tuple[float, Points]:
    limiters = [TokenPool([t], trial_in_flight=None, calibrate=False) for t in tokens()]
    turn = itertools.count()

    async def one() -> None:
        async with limiters[next(turn) % len(limiters)].lease():
            await asyncio.sleep(HOLD)

    return await measure(one, seconds, warmup)


def run(seconds: float, warmup: float = WARMUP) -> Report:
    """Both strategies, ``seconds`` measured after ``warmup``: figures and series."""
    capacity = sum(n * rate for n, rate in TIERS)
    pool, pool_series = on_virtual_time(pool_rate(seconds, warmup))
    rr, rr_series = on_virtual_time(round_robin_rate(seconds, warmup))
    report = Report("tiers")
    share = pool / capacity
    report.add(
        Figure("pool / summed rate", share * 100, "%", ">= 97%", share >= 0.97, f"{pool:.1f}/s")
    )
    report.add(Figure("round robin / summed rate", rr / capacity * 100, "%", detail=f"{rr:.1f}/s"))
    report.add(Figure("pool / round robin", pool / rr, "x"))
    title = "tiers: grants per second on virtual time (8 x 5/s + 8 x 20/s + 8 x 50/s)"
    marks = {"end of warm-up": warmup}
    levels = {f"summed rate ({capacity:g}/s)": capacity}
    for name, points in ((POOL, pool_series), (ROUND_ROBIN, rr_series)):
        report.add_series(name, points, unit="grants/s", title=title, marks=marks, levels=levels)
    report.notes.append(
        f"{' + '.join(f'{n} x {r:g}/s' for n, r in TIERS)} = {capacity:g}/s, "
        f"{COROUTINES} coroutines holding each lease {HOLD * 1000:g} ms, "
        f"{seconds:g} virtual seconds after {warmup:g} s of warm-up."
    )
    return report


def main() -> int:
    return finish(run(20.0 if quick() else 60.0))


if __name__ == "__main__":
    sys.exit(main())
