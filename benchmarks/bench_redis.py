"""Redis backend: lease throughput against raw ``EVALSHA``, and four processes sharing
tokens against a server that enforces each token's limit.

    python benchmarks/bench_redis.py [--quick] [--redis-url URL]

Starts its own ``redis-server`` on a free loopback port (``--save '' --appendonly no``),
unless ``--redis-url`` (or ``$AURORA_REDIS_URL``) names one.

Figures (same run, medians of interleaved repeats):
- ``leases/s`` for one process against loopback Redis, tokens with limits that never
  bind (so only the backend's overhead is measured), against raw ``EVALSHA`` round
  trips of a trivial script with the same redis-py client settings and the same number
  of coroutines (1, 4 and 64). Target: at least 50% of raw. With one coroutine this
  compares latencies: a lease's script does real work on the server (``TIME``, the
  soonest token from a sorted set, its state, the reservation: ~25 µs of Lua against
  ~1.5 µs for the trivial script). From a few coroutines on, waiters that queue up
  while a call is in flight share the next call. Also the number of ``EVALSHA`` calls
  per lease (the server's own count): at most one.
- Four processes (and two), each a ``TokenPool`` on one ``RedisBackend`` namespace,
  sharing 8 tokens against ``aurora_async.testing.MockAPI`` (which enforces each
  token's limit with its own clock and a 5 ms tolerance), against one process with the
  in-memory pool, 64 coroutines in all each time: utilization (requests answered 200
  against what the tokens allow over the run, bursts included; target for four
  processes: at least 95%) and the share answered 429, overall and after the first
  half second (when the opening burst has passed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Figure, Report, finish, quick, secrets

from aurora_async import Limit, RequestFailed, TokenPool
from aurora_async._redis import RedisBackend
from aurora_async.testing import MockAPI

HUGE = Limit(1e9, per=1.0, burst=1e9)  # never binds: measures the backend, not the limit
TOKENS, RATE, BURST = 8, 25.0, 2.0  # 200 requests a second in all
WORKERS = 4
SCRIPT = str(Path(__file__).resolve())
STEADY = 0.5  # seconds after which a worker's traffic counts as steady


# -- a private redis-server -------------------------------------------------------------


class Server:
    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise SystemExit("redis-server not found: install it or pass --redis-url")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                self.dir,
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- part 1: one process, leases against raw EVALSHA -----------------------------------------


def client(url: str) -> Any:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # The settings RedisBackend gives its own client.
    return redis.asyncio.Redis.from_url(
        url, socket_timeout=0.25, socket_connect_timeout=0.25, retry=Retry(NoBackoff(), 0)
    )


async def run_split(n: int, concurrency: int, step: Any) -> float:
    """Seconds per operation for ``n`` operations spread over ``concurrency`` coroutines."""
    per = n // concurrency

    async def worker() -> None:
        for _ in range(per):
            await step()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - start) / (per * concurrency)


async def evalsha_calls(raw: Any) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def part_one(url: str, report: Report) -> None:
    n = 4_000 if quick() else 20_000
    repeats = 3 if quick() else 5
    raw = client(url)
    sha = await raw.script_load("return ARGV[1]")
    backend = RedisBackend(url, namespace="bench-lease")
    await backend.reset()
    pool = TokenPool(secrets(10), limits=HUGE, backend=backend, trial_in_flight=None)

    async def raw_step() -> None:
        await raw.evalsha(sha, 0, "x")

    async def lease_step() -> None:
        async with pool.lease():
            pass

    async with pool:
        await run_split(2_000, 8, lease_step)  # warm up: connect, register, load scripts
        await run_split(2_000, 8, raw_step)
        for concurrency in (1, 4, 64):
            samples: dict[str, list[float]] = {"raw": [], "lease": []}
            calls_before = await evalsha_calls(raw)
            for _ in range(repeats):
                samples["raw"].append(await run_split(n, concurrency, raw_step))
                samples["lease"].append(await run_split(n, concurrency, lease_step))
            calls = await evalsha_calls(raw) - calls_before - repeats * n  # less raw's
            raw_s = sorted(samples["raw"])[repeats // 2]
            lease_s = sorted(samples["lease"])[repeats // 2]
            report.add(Figure(f"raw EVALSHA, {concurrency} coroutine(s)", 1 / raw_s, "/s"))
            report.add(Figure(f"leases, {concurrency} coroutine(s)", 1 / lease_s, "/s"))
            ratio = raw_s / lease_s
            report.add(
                Figure(
                    f"leases / raw EVALSHA, {concurrency} coroutine(s)",
                    ratio * 100,
                    "%",
                    ">= 50%",
                    ratio >= 0.5,
                )
            )
            per_lease = calls / (repeats * n)
            report.add(
                Figure(
                    f"EVALSHA per lease, {concurrency} coroutine(s)",
                    per_lease,
                    "calls",
                    "<= 1",
                    per_lease <= 1.0 + 1e-9,
                )
            )
        await backend.reset()
    await raw.aclose()


# -- part 2: four processes against MockAPI -------------------------------------------------


async def worker_main(args: argparse.Namespace) -> None:
    """One worker process: request as fast as the pool allows for ``duration``."""
    import aiohttp

    limit = Limit(args.rate, per=1, burst=args.burst)
    backend = None
    if args.kind == "redis":
        backend = RedisBackend(args.redis_url, namespace=args.namespace)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        # Open the connections first (an unknown token: answered 401, no limit touched),
        # so no request pays a connection set-up that the next one does not: a server
        # with a small tolerance would see the two arrive too close together.
        warm = [session.get(f"{args.api}/warm", headers={"Authorization": "Bearer warm-up-0000"})]
        warm *= args.concurrency
        for resp in await asyncio.gather(*warm):
            resp.release()
        pool = TokenPool(
            secrets(TOKENS, "api"),
            limits=limit,
            backend=backend,
            trial_in_flight=None,
            max_attempts=1,
            session=session,
        )
        counts = {"requests": 0, "rate_limited": 0, "steady": 0, "steady_limited": 0}
        async with pool:
            start = loop.time()
            stop = start + args.duration

            async def one() -> None:
                while loop.time() < stop:
                    try:
                        status = (await pool.get(f"{args.api}/item")).status
                    except RequestFailed:  # a 429 that used up its one attempt
                        status = 429
                    steady = loop.time() - start >= STEADY
                    counts["requests"] += 1
                    counts["rate_limited"] += status == 429
                    counts["steady"] += steady
                    counts["steady_limited"] += steady and status == 429

            await asyncio.gather(*(one() for _ in range(args.concurrency)))
    print(json.dumps(counts))


async def run_processes(
    api: MockAPI, kind: str, processes: int, concurrency: int, duration: float, url: str
) -> dict[str, int]:
    """Run the workers; returns their summed response counts."""
    api.reset_stats()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            SCRIPT,
            "--worker",
            kind,
            "--api",
            api.url,
            "--redis-url",
            url,
            "--namespace",
            "bench-api",
            "--duration",
            str(duration),
            "--concurrency",
            str(concurrency),
            "--rate",
            repr(RATE),
            "--burst",
            repr(BURST),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    total: dict[str, int] = {}
    for proc in procs:
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"a {kind} worker failed:\n{err.decode()}")
        for key, value in json.loads(out).items():
            total[key] = total.get(key, 0) + value
    return total


def utilization(api: MockAPI) -> tuple[float, int]:
    """(200s against what the tokens allow over the run, requests), from the server's
    books of the tokens (the warm-up's unknown token left out)."""
    tokens = secrets(TOKENS, "api")
    times = [t for token in tokens for t in api.admitted_times(token)]
    span = max(times) - min(times)
    capacity = TOKENS * (BURST + RATE * span)
    stats = [api.stats(token) for token in tokens]
    return sum(s.ok for s in stats) / capacity, sum(s.requests for s in stats)


async def part_two(url: str, report: Report) -> None:
    duration = 3.0 if quick() else 6.0
    limit = Limit(RATE, per=1, burst=BURST)
    runs = (("memory", 1), ("redis", 2), ("redis", WORKERS))
    results = {}
    async with MockAPI(dict.fromkeys(secrets(TOKENS, "api"), limit)) as api:
        for kind, processes in runs:
            cleanup = RedisBackend(url, namespace="bench-api")
            await cleanup.reset()
            await cleanup.aclose()
            await asyncio.sleep(BURST / RATE)  # the server's buckets drain between runs
            counts = await run_processes(api, kind, processes, 64 // processes, duration, url)
            results[kind, processes] = (*utilization(api), counts)
    for (kind, processes), (used, requests, counts) in results.items():
        label = f"{processes} process{'es' if processes > 1 else ''}, {kind}"
        four = (kind, processes) == ("redis", WORKERS)
        report.add(
            Figure(
                f"utilization, {label}",
                used * 100,
                "%",
                ">= 95%" if four else "",
                used >= 0.95 if four else None,
                f"{requests:,} requests",
            )
        )
        limited = counts["rate_limited"] / max(1, counts["requests"])
        steady = counts["steady_limited"] / max(1, counts["steady"])
        report.add(
            Figure(
                f"429 share, {label}",
                limited * 100,
                "%",
                detail=f"{steady * 100:.2f}% after the first {STEADY:g} s",
            )
        )
    report.notes.append(
        f"{TOKENS} tokens at {RATE:g}/s (burst {BURST:g}) against MockAPI (5 ms tolerance) "
        f"for {duration:g} s per run, 64 coroutines in all, connections opened first. "
        "Utilization: 200s against the tokens' capacity between the first and the last "
        "admitted request. 429s at the start: MockAPI handles the opening burst (every "
        "token's, at once) one request after another, so the last of it is stamped late "
        "and the next request looks early. Later ones: reservations are spaced exactly "
        "on the Redis clock (tests/redis/test_processes.py), but each process's loop "
        "wakes up late by its own amount, so two processes' requests on one token can "
        "arrive closer together than the server's tolerance; the more processes share "
        "the CPUs (here MockAPI, Redis and the workers), the more often."
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url", default=os.environ.get("AURORA_REDIS_URL"))
    parser.add_argument("--worker", choices=["redis", "memory"])
    parser.add_argument("--kind")
    parser.add_argument("--api")
    parser.add_argument("--namespace", default="bench-api")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--burst", type=float, default=BURST)
    args = parser.parse_args()
    if args.worker:
        args.kind = args.worker
        asyncio.run(worker_main(args))
        return 0
    server = None if args.redis_url else Server()
    url = args.redis_url or server.url  # type: ignore[union-attr]
    report = Report("redis")
    try:
        asyncio.run(part_one(url, report))
        asyncio.run(part_two(url, report))
    finally:
        if server is not None:
            server.stop()
    report.notes.append("Leases: one process, 10 tokens, limits that never bind.")
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
