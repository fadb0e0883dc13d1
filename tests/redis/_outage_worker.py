"""One worker process of ``outage.py``: send requests through the pool to a counting
server as fast as the shared limits let it, from ``go`` until ``stop`` on stdin, then
print what it did (JSON on stdout).

    python tests/redis/_outage_worker.py REDIS_URL NAMESPACE API_URL --tokens a b \\
        --rate 10 --per 1 --burst 10 --concurrency 4 [--share 0.25]

The backend keeps its default settings (``timeout``, ``on_failure``,
``degrade_share``) unless ``--share`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from typing import Any

from aurora_async import Limit, Token, TokenPool
from aurora_async._redis import RedisBackend


async def line() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


async def run(args: argparse.Namespace) -> dict[str, object]:
    extra: dict[str, Any] = {}
    if args.share is not None:
        extra["degrade_share"] = args.share
    backend = RedisBackend(args.url, namespace=args.namespace, **extra)
    limit = Limit(args.rate, per=args.per, burst=args.burst)
    pool = TokenPool([Token(v, limits=limit) for v in args.tokens], backend=backend)
    sent = 0
    errors: Counter[str] = Counter()
    modes: list[str] = []
    async with pool:
        # Registered in the namespace, and the HTTP client made (its first use can take
        # a while on a busy machine: a worker whose first call after "go" comes late
        # goes into an outage knowing only the workers it saw when it registered).
        resp = await pool.get(args.api)
        assert resp.status == 200, resp.status
        print("ready", flush=True)
        assert (await line()).strip() == "go"
        stopping = asyncio.Event()

        async def worker() -> None:
            nonlocal sent
            while not stopping.is_set():
                try:
                    resp = await pool.get(args.api)
                    assert resp.status == 200, resp.status
                    sent += 1
                except Exception as exc:  # counted: the test wants none
                    errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.01)  # not spinning on a failing pool

        async def watch() -> None:
            while not stopping.is_set():
                if not modes or modes[-1] != backend.mode:
                    modes.append(backend.mode)
                # Sampled every 10 ms (no hook tells of a switch): the outage lasts 1.5 s,
                # so no mode the test asserts on is shorter than a sample.
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        tasks.append(asyncio.create_task(watch()))
        await line()  # "stop" (or EOF)
        stopping.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "sent": sent,
        "errors": dict(errors),
        "worker": backend.worker,
        "mode": backend.mode,
        "modes": modes,
        "workers": getattr(backend._members, "workers", None),  # (how many it saw)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("api")
    parser.add_argument("--tokens", nargs="+", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--per", type=float, default=1.0)
    parser.add_argument("--burst", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--share", type=float, default=None)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
