"""HTTP: ``pool.request`` against a server that enforces every token's limit, and against
an unlimited one.

    python benchmarks/bench_http.py [--quick]

1. Mixed tiers against ``MockAPI`` (8 tokens at 5/s, 8 at 20/s, 8 at 50/s, plus 2
   revoked tokens; 400 coroutines; real time). Measured after a warm-up that covers the
   opening burst:
   - ``pool.request``: target at least 97% of the summed rate, at most 0.5% of requests
     answered 429, at most one request per revoked token;
   - strict round robin over one ``aiolimiter.AsyncLimiter`` per token (a 429 or 401 is
     simply retried on the next token in turn);
   - round robin with no limiter at all.
   MockAPI runs in this process with a 20 ms tolerance (GCRA's delay-variation
   tolerance: requests reach a server later than they were sent, by varying amounts).
   The pool starts its tokens full (``start_full=True``, no opening burst): with 400
   coroutines opening fresh connections at once, a burst arrives bunched and late, and
   the paced requests behind it then look early to the server (about 0.7% of a 10 s
   run answered 429, all in the first two seconds, without it; none with it).
   For each of the three, the requests answered 200 per second over the whole run
   (warm-up included, in buckets of 1 s or finer for a short run) go into the result's
   ``series`` for the chart of ``aurora-async bench``.
2. ``pool.request`` against plain ``aiohttp`` on an unlimited local server (in its own
   process), same concurrency, same number of requests: target at least 90% of plain
   aiohttp's throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from _common import Figure, Points, Report, Throughput, bucket_for, finish, quick, secrets
from aiolimiter import AsyncLimiter

from aurora_async import Limit, PoolClosed, Token, TokenPool
from aurora_async.testing import MockAPI

TIERS = ((8, 5.0), (8, 20.0), (8, 50.0))
REVOKED = 2
COROUTINES = 400
TOLERANCE = 0.02
POOL = "pool.request"
ROUND_ROBIN = "round robin + aiolimiter"
BARE = "round robin, no limiter"


def tier_tokens() -> tuple[list[Token], list[str]]:
    values = iter(secrets(sum(n for n, _ in TIERS) + REVOKED, "sk"))
    good = [Token(next(values), Limit(rate, per=1.0)) for n, rate in TIERS for _ in range(n)]
    return good, [next(values) for _ in range(REVOKED)]


async def drive(
    one: Callable[[], Awaitable[int]], warmup: float, seconds: float
) -> tuple[float, int, int, Points]:
    """Run COROUTINES workers; count requests answered 200 and all requests in the
    measured window. Returns (ok per second, ok, all, ok per second over time from
    the start)."""
    ok = total = 0
    counting = False
    over_time = Throughput(time.perf_counter, bucket_for(warmup + seconds))

    async def worker() -> None:
        nonlocal ok, total
        with contextlib.suppress(PoolClosed):
            while True:
                status = await one()
                if status == 200:
                    over_time.tick()
                if counting:
                    total += 1
                    ok += status == 200

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    await asyncio.sleep(warmup)
    counting = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - start
    counting = False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return ok / elapsed, ok, total, over_time.points(warmup + seconds)


def _figures(api: MockAPI, revoked: list[str], rate: float, series: Any) -> dict[str, Any]:
    """What one mixed-tier run achieved, as MockAPI saw it."""
    stats = api.totals
    return {
        "rate": rate,
        "share_429": stats.rate_limited / max(1, stats.requests),
        "per_revoked": max(api.stats(t).requests for t in revoked),
        "series": series,
    }


async def tiers_pool(warmup: float, seconds: float) -> dict[str, Any]:
    good, revoked = tier_tokens()
    async with MockAPI(good, revoked=revoked, tolerance=TOLERANCE) as api:
        pool = TokenPool([*good, *revoked], base_url=api.url, start_full=True)
        async with pool:

            async def one() -> int:
                resp = await pool.get("/items")
                return resp.status

            rate, _, _, series = await drive(one, warmup, seconds)
        return _figures(api, revoked, rate, series)


async def tiers_round_robin(warmup: float, seconds: float, limited: bool) -> dict[str, Any]:
    good, revoked = tier_tokens()
    everyone = [t.value for t in good] + revoked
    limits = [AsyncLimiter(t.limits[0].rate, t.limits[0].per) for t in good]  # type: ignore[index]
    limits += [AsyncLimiter(10, 1.0) for _ in revoked]  # a naive client's default guess
    turn = itertools.count()
    async with MockAPI(good, revoked=revoked, tolerance=TOLERANCE) as api:
        connector = aiohttp.TCPConnector(limit=1000)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> int:
                i = next(turn) % len(everyone)
                if limited:
                    await limits[i].acquire()
                headers = {"Authorization": f"Bearer {everyone[i]}"}
                async with session.get(f"{api.url}/items", headers=headers) as resp:
                    await resp.read()
                    return resp.status

            rate, _, _, series = await drive(one, warmup, seconds)
        return _figures(api, revoked, rate, series)


UNLIMITED_SERVER = """
import sys
from aiohttp import web
async def ok(request):
    return web.json_response({"ok": True})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", ok)
web.run_app(
    app,
    host="127.0.0.1",
    port=int(sys.argv[1]),
    print=lambda *a: print("ready", flush=True),
    access_log=None,
)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def throughput(client: str, url: str, requests: int, concurrency: int) -> float:
    done = 0
    start = time.perf_counter()
    if client == "aiohttp":
        connector = aiohttp.TCPConnector(limit=1000)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal done
                while done < requests:
                    done += 1
                    headers = {"Authorization": "Bearer sk-plain-0000000000000000"}
                    async with session.get(url, headers=headers) as resp:
                        await resp.read()

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    else:
        pool = TokenPool(secrets(8, "sk"), limits=Limit(1e9, per=1.0, burst=1e9))
        async with pool:

            async def worker() -> None:
                nonlocal done
                while done < requests:
                    done += 1
                    await pool.get(url)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - start)


def against_unlimited(requests: int, repeats: int) -> tuple[float, float]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", UNLIMITED_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        url = f"http://127.0.0.1:{port}/items"
        plain: list[float] = []
        pooled: list[float] = []
        for _ in range(repeats):  # interleaved
            plain.append(asyncio.run(throughput("aiohttp", url, requests, 64)))
            pooled.append(asyncio.run(throughput("pool", url, requests, 64)))
        return sorted(plain)[repeats // 2], sorted(pooled)[repeats // 2]
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    warmup, seconds = (3.0, 4.0) if quick() else (3.0, 10.0)
    capacity = sum(n * rate for n, rate in TIERS)
    pool = asyncio.run(tiers_pool(warmup, seconds))
    rr = asyncio.run(tiers_round_robin(warmup, seconds, limited=True))
    bare = asyncio.run(tiers_round_robin(warmup, seconds, limited=False))
    report = Report("http")
    share = pool["rate"] / capacity
    report.add(Figure(f"{POOL} / summed rate", share * 100, "%", ">= 97%", share >= 0.97))
    report.add(
        Figure(
            "pool.request: answered 429",
            pool["share_429"] * 100,
            "%",
            "<= 0.5%",
            pool["share_429"] <= 0.005,
        )
    )
    report.add(
        Figure(
            "pool.request: requests per revoked token",
            pool["per_revoked"],
            "",
            "<= 1",
            pool["per_revoked"] <= 1,
        )
    )
    for label, run in ((ROUND_ROBIN, rr), (BARE, bare)):
        report.add(
            Figure(
                f"{label} / summed rate",
                run["rate"] / capacity * 100,
                "%",
                detail=f"429: {run['share_429']:.1%}, per revoked token: {run['per_revoked']:g}",
            )
        )
    title = "http: mixed tiers against MockAPI, requests answered 200 per second"
    marks = {"end of warm-up": warmup}
    levels = {f"summed rate ({capacity:g}/s)": capacity}
    for label, run in ((POOL, pool), (ROUND_ROBIN, rr), (BARE, bare)):
        report.add_series(
            label,
            run["series"],
            unit="requests/s (answered 200)",
            title=title,
            marks=marks,
            levels=levels,
        )
    requests, repeats = (2000, 3) if quick() else (5000, 5)
    plain, pooled = against_unlimited(requests, repeats)
    ratio = pooled / plain
    report.add(Figure("plain aiohttp, unlimited server", plain, "req/s"))
    report.add(Figure("pool.request, unlimited server", pooled, "req/s"))
    report.add(Figure("pool.request / plain aiohttp", ratio * 100, "%", ">= 90%", ratio >= 0.9))
    report.notes.append(
        f"Tiers: {' + '.join(f'{n} x {r:g}/s' for n, r in TIERS)} = {capacity:g}/s and "
        f"{REVOKED} revoked tokens, {COROUTINES} coroutines, {seconds:g} s measured after "
        f"{warmup:g} s; MockAPI tolerance {TOLERANCE * 1000:g} ms. Unlimited server: "
        f"{requests:,} GETs at concurrency 64, median of {repeats} interleaved runs."
    )
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
