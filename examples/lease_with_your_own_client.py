"""Lease a token and hand it to your own client or SDK, then report how it went.

    python examples/lease_with_your_own_client.py

``pool.request`` covers plain HTTP; when an SDK makes the calls, lease the token
instead: ``async with pool.lease() as lease`` gives ``lease.token`` (the secret, for the
SDK) and ``lease.name`` (masked, for logs). Tell the pool about a 429 with
``lease.rate_limited(retry_after)``: the token cools down and the next lease goes to
another one. Offline: a small fake SDK calls a local API that wants the token in an
``X-API-Key`` header, and one token's real limit is stricter than the pool was told,
so the server refuses some of its calls.
"""

from __future__ import annotations

import asyncio

import aiohttp

from aurora_async import Limit, TokenPool
from aurora_async.testing import MockAPI

# What the server really allows, and what the pool was configured with: the first token
# is slower than its configuration says (it happens: plans change, quotas are shared).
REAL = {
    "sk-example-sdk-one-2b9e61f4": Limit(5, per=1),
    "sk-example-sdk-two-7c03da88": Limit(10, per=1),
    "sk-example-sdk-three-e4a51c0b": Limit(10, per=1),
}
CALLS = 60


class RateLimitedError(Exception):
    """What the fake SDK raises on a 429."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"rate limited; retry after {retry_after}")
        self.retry_after = retry_after


class WeatherClient:
    """A stand-in for a vendor SDK: it takes an API key and makes its own HTTP calls."""

    def __init__(self, api_key: str, base_url: str, session: aiohttp.ClientSession) -> None:
        self._headers = {"X-API-Key": api_key}
        self._base_url = base_url
        self._session = session

    async def forecast(self, city: str) -> dict[str, object]:
        url = f"{self._base_url}/forecast/{city}"
        async with self._session.get(url, headers=self._headers) as resp:
            body: dict[str, object] = await resp.json()
            if resp.status == 429:
                raise RateLimitedError(float(resp.headers.get("Retry-After", "1")))
            resp.raise_for_status()
            return body


async def forecast(pool: TokenPool, session: aiohttp.ClientSession, url: str, city: str) -> str:
    """One forecast, retried on another token after a 429; the name of the token used."""
    while True:
        async with pool.lease() as lease:
            client = WeatherClient(lease.token, url, session)
            try:
                await client.forecast(city)
            except RateLimitedError as exc:
                lease.rate_limited(exc.retry_after)  # cool this token; try another
                continue
            return lease.name


async def main() -> None:
    async with MockAPI(REAL, auth="header", tolerance=0.02) as api:
        pool = TokenPool(list(REAL), limits=Limit(10, per=1))  # all configured at 10/s
        async with pool, aiohttp.ClientSession() as session:
            used = await asyncio.gather(
                *(forecast(pool, session, api.url, f"city-{i}") for i in range(CALLS))
            )
            stats = pool.stats()
        print(f"{len(used)} forecasts fetched with leased tokens")
        for token in stats.tokens:
            print(
                f"  {token.name}: {token.ok} ok, {token.rate_limited} rate-limited "
                "(reported with lease.rate_limited)"
            )


if __name__ == "__main__":
    asyncio.run(main())
