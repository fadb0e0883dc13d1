"""One worker process of ``test_processes.py``: lease as fast as the shared limits let
it for a while, then print how many leases it got (JSON on stdout).

    python tests/redis/_worker.py URL NAMESPACE --tokens a b --rate 40 --burst 4 \\
        --duration 1.5 --concurrency 16 [--skew SECONDS] \\
        [--units-rate 2000 --units-burst 400 --costs 10 300]

``--skew`` shifts this process's event-loop clock by that many seconds: the limits must
hold anyway, since only the Redis server's clock counts. ``--units-rate`` adds a window
of another resource (``"tokens"``, a second's worth of burst unless ``--units-burst``),
and ``--costs`` the tokens each lease takes (the workers' coroutines take turns).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aurora_async import Limit, Token, TokenPool
from aurora_async._redis import RedisBackend


async def run(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    if args.skew:
        real = loop.time
        loop.time = lambda: real() + args.skew  # type: ignore[method-assign]
    limits = [Limit(args.rate, per=1, burst=args.burst)]
    if args.units_rate:
        burst = args.units_burst or args.units_rate
        limits.append(Limit(args.units_rate, per=1, burst=burst, unit="tokens"))
    backend = RedisBackend(args.url, namespace=args.namespace, audit=True)
    pool = TokenPool(
        [Token(v, limits=limits) for v in args.tokens], backend=backend, trial_in_flight=None
    )
    leases = 0
    async with pool:
        stop = loop.time() + args.duration

        async def worker(i: int) -> None:
            nonlocal leases
            cost: float | dict[str, float] = 1
            if args.costs:
                cost = {"requests": 1, "tokens": args.costs[i % len(args.costs)]}
            while loop.time() < stop:
                async with pool.lease(cost=cost):
                    leases += 1

        await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    return {"leases": leases, "worker": backend.worker, "mode": backend.mode}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("namespace")
    parser.add_argument("--tokens", nargs="+", required=True)
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--burst", type=float, default=4)
    parser.add_argument("--duration", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--skew", type=float, default=0.0)
    parser.add_argument("--units-rate", type=float, default=0.0)
    parser.add_argument("--units-burst", type=float, default=0.0)
    parser.add_argument("--costs", nargs="*", type=float, default=[])
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
