"""A 401 from a token that never served a call (a dead key in the file) does not use up
the request's one retried 401: dead tokens first in the list cannot fail a good request."""

from __future__ import annotations

import pytest
from aiohttp import web

from aurora_async import TokenPool

from .support import serve

DEAD = ["sk-dead-0-aaaaaaaaaaaa", "sk-dead-1-bbbbbbbbbbbb"]
GOOD = "sk-good-2-cccccccccccc"


async def by_token(request: web.Request) -> web.Response:
    if request.headers["Authorization"].removeprefix("Bearer ") in DEAD:
        return web.Response(status=401)
    return web.Response(status=200)


@pytest.mark.looptime
async def test_two_dead_tokens_first_do_not_fail_a_good_request() -> None:
    async with serve(by_token) as url, TokenPool([*DEAD, GOOD]) as pool:
        statuses = [(await pool.get(url)).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert [t.state for t in pool.stats().tokens] == ["disabled", "disabled", "active"]
