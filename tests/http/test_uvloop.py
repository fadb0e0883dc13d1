"""``pool.request`` on uvloop (the ``uvloop`` extra): the straight lane, the general
loop, a stream and a retried 429, against a real local aiohttp server, with the same
accounting as on asyncio's own loop. uvloop does not run on Windows."""

from __future__ import annotations

import asyncio
import sys

import pytest
from aiohttp import web

from aurora_async import Limit, Token, TokenPool, TokenState

from .support import serve

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")

A = "sk-live-uvloop-00000000001"
B = "sk-live-uvloop-00000000002"
NAME_A, NAME_B = Token(A).name, Token(B).name
ROOMY = Limit(1000, per=1, burst=1000)  # the pool never paces this test


class Server:
    """Answers 429 (Retry-After: 60) to A's first request, 200 to everything else; keeps
    the token and path of every request in the order they arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        n = sum(1 for t, _ in self.seen if t == token)
        self.seen.append((token, request.path_qs))
        if token == A and n == 0:
            return web.json_response({"n": n}, status=429, headers={"Retry-After": "60"})
        return web.json_response({"n": n})


async def requests_on_uvloop() -> None:
    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    server = Server()
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        first = await pool.get(f"{url}/first")  # the straight lane hands the 429 over
        assert (first.status, await first.json()) == (200, {"n": 0})
        assert server.seen == [(A, "/first"), (B, "/first")]

        plain = [pool.get(f"{url}/plain") for _ in range(20)]  # the straight lane
        careful = [pool.get(f"{url}/careful", params={"q": "1"}) for _ in range(5)]
        answers = await asyncio.gather(*plain, *careful)
        assert [r.status for r in answers] == [200] * 25
        assert sorted([(await r.json())["n"] for r in answers]) == list(range(1, 26))
        async with pool.stream("GET", f"{url}/stream") as resp:
            assert (resp.status, await resp.json()) == (200, {"n": 26})

        assert sorted(server.seen[2:]) == sorted(
            [(B, "/plain")] * 20 + [(B, "/careful?q=1")] * 5 + [(B, "/stream")]
        )
        a, b = pool.stats().token(NAME_A), pool.stats().token(NAME_B)
        assert (a.state, a.leases, a.ok, a.rate_limited, a.errors, a.in_flight) == (
            TokenState.COOLING,
            1,
            0,
            1,
            0,
            0,
        )
        assert (b.state, b.leases, b.ok, b.rate_limited, b.errors, b.in_flight) == (
            TokenState.ACTIVE,
            27,
            27,
            0,
            0,
            0,
        )


def test_pool_request_on_uvloop() -> None:
    import uvloop

    uvloop.run(requests_on_uvloop())
