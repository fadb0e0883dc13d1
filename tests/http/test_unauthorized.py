"""A 401 disables the token and is retried once, not across the whole pool."""

from __future__ import annotations

import pytest
from aiohttp import web

from aurora_async import (
    NoTokensAvailable,
    TokenPool,
)

from .support import serve


@pytest.mark.looptime
async def test_a_401_is_retried_once_not_across_the_whole_pool() -> None:
    async def unauthorized(request: web.Request) -> web.Response:
        return web.Response(status=401)

    tokens = [f"sk-live-{i:02d}-aaaaaaaaaaaa" for i in range(6)]
    async with serve(unauthorized) as url, TokenPool(tokens) as pool:
        resp = await pool.get(url)
        assert resp.status == 401  # returned after two tokens said no
        assert pool.stats().disabled == 2
        assert (await pool.get(url)).status == 401  # two more
        assert (await pool.get(url)).status == 401  # the last two
        with pytest.raises(NoTokensAvailable):
            await pool.get(url)
