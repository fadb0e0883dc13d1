"""A token with two limit windows: 3 calls a second *and* 20 a minute.

    python examples/multiple_windows.py

Many APIs state both a short and a long limit. A lease needs room in every window of its
token: here the per-second window paces the first calls, and once 20 went out in the
minute the per-minute window binds, although the per-second one has room again.
Offline against a local API that enforces both; it takes about seven seconds.

Both are leaky buckets (aiolimiter's meaning): the per-minute one drains a third of a
unit a second all along, so the first 22 calls fit, and after that one every 3 s.
"""

from __future__ import annotations

import asyncio
import time

from aurora_async import LeaseTimeout, Limit, Token, TokenPool
from aurora_async.testing import MockAPI

CALLS = 22  # the per-minute bucket drains as it fills: 22, not 20, fit before it binds
TOKEN = Token("sk-example-windows-3c8e0f92", limits=[Limit(3, per=1), Limit(20, per=60)])


async def main() -> None:
    async with MockAPI([TOKEN], tolerance=0.02) as api, TokenPool([TOKEN]) as pool:
        started = time.perf_counter()
        sent: list[float] = []

        async def call(i: int) -> None:
            resp = await pool.get(f"{api.url}/items/{i}")
            if resp.status == 200:
                sent.append(time.perf_counter() - started)

        await asyncio.gather(*(call(i) for i in range(CALLS)))
        sent.sort()
        print(f"{CALLS} calls in {sent[-1]:.1f} s: 3 at once (the burst), then 3 a second")
        print("  sent at (s): " + ", ".join(f"{t:.1f}" for t in sent))
        token = pool.stats().tokens[0]
        print(f"  room left now: {token.headroom:.2f} units (the least over its windows)")
        try:
            async with pool.lease(timeout=1.0):
                print("  a lease was granted within 1 s (unexpected)")
        except LeaseTimeout:
            print(
                "the 20/60s window is spent: a lease that may wait 1 s times out, although "
                "the 3/1s window has room again after a third of a second; the per-minute "
                "window frees one unit every 3 s from now on"
            )
        print(f"server: {api.totals.ok} answered 200, {api.totals.rate_limited} answered 429")


if __name__ == "__main__":
    asyncio.run(main())
