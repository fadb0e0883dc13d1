"""HTTP: ``pool.request`` against a server that enforces every token's limit, and against
an unlimited one.

    python benchmarks/bench_http.py [--quick] [--loop asyncio|uvloop|both] [--only tiers|unlimited]
    python benchmarks/bench_http.py --side pool|aiohttp --requests N [--loop ...]  # profiling

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
2. ``pool.request`` against plain ``aiohttp`` on an unlimited local aiohttp server (in
   its own process), 64 coroutines, one session per client, both reading every body
   (``pool.get`` reads it; plain aiohttp calls ``await resp.read()``), the same number of
   requests each, run in turn (plain, pool, pool, plain, ...): target at least 90% of plain
   aiohttp's requests per second, on asyncio's default loop and on uvloop (``--loop``:
   both when uvloop is installed, the ``uvloop`` extra). The ratio is the median of the
   ratios of each pair of runs; the client's CPU time per request (``time.process_time``)
   is reported too, as it is less disturbed by other work on the machine.

``--side pool|aiohttp --requests N`` runs only that client, once, against the unlimited
server (warmed up first) and prints its CPU time per request: the shape to run under
``valgrind --tool=callgrind`` or ``cProfile`` (benchmarks/README.md, "How to profile").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from _common import Figure, Points, Report, Throughput, bucket_for, finish, secrets
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
CONCURRENCY = 64  # against the unlimited server
LOOPS = ("asyncio", "uvloop")
T = TypeVar("T")


def run_on(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on asyncio's default loop or on uvloop (imported only here)."""
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


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


async def throughput(client: str, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """``requests`` GETs by ``concurrency`` coroutines through one session: requests per
    second (wall clock) and the client's CPU seconds per request."""
    done = 0
    start, cpu = time.perf_counter(), time.process_time()
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
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return requests / elapsed, cpu / requests


@contextlib.contextmanager
def unlimited_server() -> Any:
    """The unlimited server in its own process; yields its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", UNLIMITED_SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "ready"
        yield f"http://127.0.0.1:{port}/items"
    finally:
        server.terminate()
        server.wait()


def against_unlimited(url: str, loop: str, requests: int, repeats: int) -> dict[str, float]:
    """Plain aiohttp and ``pool.request`` in turn (the order alternates), ``repeats``
    pairs on ``loop``: median requests per second and CPU per request of each, and the
    median of the pairs' ratios."""
    rates: dict[str, list[float]] = {"aiohttp": [], "pool": []}
    cpus: dict[str, list[float]] = {"aiohttp": [], "pool": []}
    order = ["aiohttp", "pool"]
    for _ in range(repeats):
        for client in order:
            rate, cpu = run_on(loop, throughput(client, url, requests, CONCURRENCY))
            rates[client].append(rate)
            cpus[client].append(cpu)
        order.reverse()
    ratios = [p / a for p, a in zip(rates["pool"], rates["aiohttp"], strict=True)]
    return {
        "plain": statistics.median(rates["aiohttp"]),
        "pooled": statistics.median(rates["pool"]),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "cpu_plain": statistics.median(cpus["aiohttp"]),
        "cpu_pooled": statistics.median(cpus["pool"]),
    }


def one_side(side: str, loop: str, requests: int) -> int:
    """Only ``side``'s client against the unlimited server, for a profiler: a warm-up
    of 200 requests, then ``requests``; prints CPU per request."""
    with unlimited_server() as url:
        run_on(loop, throughput(side, url, 200, CONCURRENCY))
        rate, cpu = run_on(loop, throughput(side, url, requests, CONCURRENCY))
    print(f"{side} on {loop}: {requests} requests, {rate:,.0f} req/s, {cpu * 1e6:.1f} µs CPU each")
    return 0


def tiers(report: Report, warmup: float, seconds: float) -> None:
    capacity = sum(n * rate for n, rate in TIERS)
    pool = asyncio.run(tiers_pool(warmup, seconds))
    rr = asyncio.run(tiers_round_robin(warmup, seconds, limited=True))
    bare = asyncio.run(tiers_round_robin(warmup, seconds, limited=False))
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
    report.notes.append(
        f"Tiers: {' + '.join(f'{n} x {r:g}/s' for n, r in TIERS)} = {capacity:g}/s and "
        f"{REVOKED} revoked tokens, {COROUTINES} coroutines, {seconds:g} s measured after "
        f"{warmup:g} s; MockAPI tolerance {TOLERANCE * 1000:g} ms."
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument(
        "--loop",
        choices=[*LOOPS, "both"],
        help="event loop of the unlimited-server part (default: both if uvloop is installed)",
    )
    parser.add_argument("--only", choices=["tiers", "unlimited"], help="run one part only")
    parser.add_argument("--requests", type=int, help="requests per run, unlimited server")
    parser.add_argument("--repeats", type=int, help="pairs of runs per loop, unlimited server")
    parser.add_argument("--side", choices=["pool", "aiohttp"], help="one client only (profiling)")
    return parser.parse_args()


def main() -> int:
    args = arguments()
    quick = args.quick or os.environ.get("AURORA_BENCH_QUICK") == "1"
    uvloop_missing = False
    if args.loop in (None, "both"):
        loops = list(LOOPS) if has_uvloop() else ["asyncio"]
        uvloop_missing = len(loops) == 1
        if uvloop_missing and args.loop == "both":
            raise SystemExit("uvloop is not installed: pip install 'aurora_async[uvloop]'")
    else:
        loops = [args.loop]
    requests, repeats = (2000, 3) if quick else (5000, 5)
    requests, repeats = args.requests or requests, args.repeats or repeats
    if args.side:
        return one_side(args.side, loops[0], requests)
    report = Report("http")
    if args.only != "unlimited":
        warmup, seconds = (3.0, 4.0) if quick else (3.0, 10.0)
        tiers(report, warmup, seconds)
    if args.only != "tiers":
        unlimited(report, loops, requests, repeats)
        if uvloop_missing:
            report.notes.append("uvloop is not installed: measured on asyncio's loop only.")
    return finish(report)


def unlimited(report: Report, loops: list[str], requests: int, repeats: int) -> None:
    with unlimited_server() as url:
        run_on(loops[0], throughput("aiohttp", url, 200, CONCURRENCY))  # the server warms up
        results = {loop: against_unlimited(url, loop, requests, repeats) for loop in loops}
    for loop, r in results.items():
        on = "" if loop == "asyncio" else f", {loop}"
        report.add(
            Figure(
                f"plain aiohttp, unlimited server{on}",
                r["plain"],
                "req/s",
                detail=f"{r['cpu_plain'] * 1e6:.1f} µs CPU per request",
            )
        )
        report.add(
            Figure(
                f"pool.request, unlimited server{on}",
                r["pooled"],
                "req/s",
                detail=f"{r['cpu_pooled'] * 1e6:.1f} µs CPU per request",
            )
        )
        report.add(
            Figure(
                f"pool.request / plain aiohttp{on}",
                r["ratio"] * 100,
                "%",
                ">= 90%",
                r["ratio"] >= 0.9,
                detail=f"pairs {r['ratio_min']:.1%} to {r['ratio_max']:.1%}; CPU per request "
                f"{r['cpu_plain'] / r['cpu_pooled']:.1%} of the pool's",
            )
        )
    report.notes.append(
        f"Unlimited server (aiohttp, its own process): {requests:,} GETs per run at "
        f"concurrency {CONCURRENCY}, both clients reading every body; {repeats} pairs of "
        f"runs per loop ({', '.join(loops)}), in turn; the ratio is the median of the "
        "pairs' ratios."
    )


if __name__ == "__main__":
    sys.exit(main())
