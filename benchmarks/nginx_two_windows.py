"""A token with two windows against real nginx (not a ``bench_*`` script: ``dev.py bench``
skips it; needs ``nginx``, ``apt-get install nginx``).

    python benchmarks/nginx_two_windows.py [SECONDS]      # default 90

Four tokens declared ``[Limit(20), Limit(300, per=60)]`` and nothing else (the defaults:
no burst given, calibration on); nginx holds each to ``10r/s burst=3`` and ``300r/m
burst=300``: half the declared per-second rate, the declared per-minute one. 40
coroutines call ``pool.get(..., max_attempts=1)`` (a 429 is counted, not retried). What
the server admits a token: 10 a second until its per-minute bucket (300, draining 5 a
second) is full, about 60 s in, then 5 a second; over 90 s about 750.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _nginx import nginx_server

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import NginxLimitReq

TOKENS = [f"tok-two-windows-{i:04d}" for i in range(4)]


async def main(seconds: float) -> None:
    tiers = {value: NginxLimitReq(10, burst=3) for value in TOKENS}
    async with nginx_server(tiers, minute=(300, 300)) as url:
        limits = [Limit(20), Limit(300, per=60)]
        pool = TokenPool([Token(value, limits=limits) for value in TOKENS])
        ok = refused = 0
        async with pool:
            stop = time.monotonic() + seconds

            async def worker() -> None:
                nonlocal ok, refused
                while time.monotonic() < stop:
                    resp = await pool.get(f"{url}/x", max_attempts=1)
                    ok += resp.status == 200
                    refused += resp.status == 429

            await asyncio.gather(*(worker() for _ in range(40)))
            end = pool.stats().tokens[0].limits
    admitted = len(TOKENS) * (10 * min(seconds, 60) + 5 * max(0.0, seconds - 60))
    print(
        f"{seconds:g} s, {len(TOKENS)} tokens: {ok:,} served ({ok / admitted:.0%} of the "
        f"~{admitted:,.0f} nginx admits), {refused} answered 429 "
        f"({refused / max(ok + refused, 1):.1%}); a token's limits at the end: {', '.join(end)}"
    )


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 90.0))
