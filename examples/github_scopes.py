"""A GitHub crawler with two scopes: the search bucket and the core bucket.

    python examples/github_scopes.py

GitHub limits each token per *resource*: search calls share one small bucket, every
other REST call another. Declared as scoped limits, a search lease counts only against
the search window and a core lease only against the core one, so a spent search bucket
never holds back core calls. Offline: MockAPI's ``GitHubApi`` profile with small windows
(search: 4 calls per 2 s; core: 30 per 10 s), two tokens, 12 searches and 40 core calls
at once: none refused.
"""

from __future__ import annotations

import asyncio

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import GitHubApi, MockAPI

KEYS = ["sk-example-gh-octo-7a0c3e51", "sk-example-gh-hub-e49b26d8"]
LIMITS = [
    Limit.sliding_window(4, per=2.0, scope="search"),  # GitHub counts in fixed windows
    Limit.sliding_window(30, per=10.0, scope="core"),
]
PROFILE = GitHubApi(core=30, core_window=10.0, search=4, search_window=2.0, aligned=True)


async def main() -> None:
    async with (
        MockAPI(KEYS, profile=PROFILE) as api,
        TokenPool([Token(key, limits=LIMITS) for key in KEYS], base_url=api.url) as pool,
    ):

        async def search(n: int) -> int:
            response = await pool.get(f"/search/code?q=lease+{n}", scope="search")
            return response.status

        async def core(n: int) -> int:
            response = await pool.get(f"/repos/octo/app/issues/{n}", scope="core")
            return response.status

        statuses = await asyncio.gather(
            *(search(n) for n in range(12)), *(core(n) for n in range(40))
        )
        print(f"{statuses.count(200)} of {len(statuses)} calls answered 200")
        print(f"{api.totals.rate_limited} refused by a rate limit")


if __name__ == "__main__":
    asyncio.run(main())
