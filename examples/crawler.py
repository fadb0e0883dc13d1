"""A crawler: hundreds of coroutines fetch pages through one pool of tokens.

    python examples/crawler.py

Offline: it starts a local rate-limited API (MockAPI) with six tokens of two tiers and
crawls 600 pages with 300 coroutines through ``pool.get``. The pool gives each request
the token that can fire soonest and paces every token at its limit. The few 429s come
from the first burst, when hundreds of connections open at once and some requests reach
the server in another order than they left; the pool retries them on another token.
"""

from __future__ import annotations

import asyncio
import time

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import MockAPI

TOKENS = [
    Token("sk-example-crawler-a-7f3e9b21", limits=Limit(20, per=1)),
    Token("sk-example-crawler-b-c84d0e55", limits=Limit(20, per=1)),
    Token("sk-example-crawler-c-19ab6f02", limits=Limit(20, per=1)),
    Token("sk-example-crawler-d-5d2c8a90", limits=Limit(60, per=1)),
    Token("sk-example-crawler-e-e07b4c13", limits=Limit(60, per=1)),
    Token("sk-example-crawler-f-a9f1d3c6", limits=Limit(60, per=1)),
]
PAGES = 600
COROUTINES = 300


async def crawl(pool: TokenPool, base_url: str, queue: asyncio.Queue[int], seen: list[int]) -> None:
    while True:
        try:
            page = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        resp = await pool.get(f"{base_url}/pages/{page}")
        body = await resp.json()  # the body was read by the pool: no connection held
        if resp.status == 200 and body["path"] == f"/pages/{page}":
            seen.append(page)


async def main() -> None:
    async with MockAPI(TOKENS, tolerance=0.02) as api:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for page in range(PAGES):
            queue.put_nowait(page)
        seen: list[int] = []
        started = time.perf_counter()
        async with TokenPool(TOKENS) as pool:
            await asyncio.gather(*(crawl(pool, api.url, queue, seen) for _ in range(COROUTINES)))
            stats = pool.stats()
        elapsed = time.perf_counter() - started
        capacity = sum(t.limits[0].per_second for t in TOKENS if t.limits)
        print(
            f"crawled {len(seen)} of {PAGES} pages in {elapsed:.1f} s "
            f"with {COROUTINES} coroutines ({len(seen) / elapsed:.0f}/s; "
            f"the tokens allow {capacity:.0f}/s plus their first burst)"
        )
        for token in stats.tokens:
            print(f"  {token.name}: {token.ok} pages, limits {', '.join(token.limits)}")
        print(
            f"server: {api.totals.ok} answered 200, {api.totals.rate_limited} answered 429 "
            "(retried by the pool on another token)"
        )


if __name__ == "__main__":
    asyncio.run(main())
