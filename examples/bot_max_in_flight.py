"""A bot whose tokens may each carry only a few calls at once: ``max_in_flight``.

    python examples/bot_max_in_flight.py

Some APIs limit concurrent calls per token as well as the rate (a chat bot's session,
a streaming endpoint). ``Token(..., max_in_flight=2)`` caps that token at two leases at
once; the pool's own ``max_in_flight`` is the cap of tokens that set none. Offline: the
local API answers after 100 ms, 60 coroutines send 120 requests, and the example watches
how many calls each token carries at once.
"""

from __future__ import annotations

import asyncio
import time

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import MockAPI

TOKENS = [
    Token("sk-example-bot-small-41c7a9e0", limits=Limit(50, per=1), max_in_flight=2),
    Token("sk-example-bot-large-8e2f6d13", limits=Limit(50, per=1), max_in_flight=6),
    Token("sk-example-bot-other-d05b3a77", limits=Limit(50, per=1)),  # the pool's cap: 4
]
POOL_CAP = 4  # for tokens that set no cap of their own
REQUESTS = 120
COROUTINES = 60


async def main() -> None:
    async with MockAPI(TOKENS, latency=0.1) as api:
        pool = TokenPool(TOKENS, max_in_flight=POOL_CAP)
        busiest: dict[str, int] = {}
        done = 0

        async def watch() -> None:
            while True:
                for token in pool.stats().tokens:
                    busiest[token.name] = max(busiest.get(token.name, 0), token.in_flight)
                await asyncio.sleep(0.005)

        async def send(n: int) -> None:
            nonlocal done
            for i in range(n, REQUESTS, COROUTINES):
                resp = await pool.post(f"{api.url}/messages/{i}", json={"text": "hello"})
                done += resp.status == 200

        async with pool:
            watcher = asyncio.create_task(watch())
            started = time.perf_counter()
            await asyncio.gather(*(send(n) for n in range(COROUTINES)))
            elapsed = time.perf_counter() - started
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        print(f"{done} of {REQUESTS} messages sent in {elapsed:.1f} s (each call takes 100 ms)")
        caps = {t.name: t.max_in_flight or POOL_CAP for t in TOKENS}
        for name, most in busiest.items():
            print(f"  {name}: at most {most} calls at once (cap {caps[name]})")
            assert most <= caps[name]


if __name__ == "__main__":
    asyncio.run(main())
