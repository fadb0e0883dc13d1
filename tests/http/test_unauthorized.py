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
        # Unproven tokens' 401s do not use up the retried 401 (they are most likely
        # dead keys), but max_attempts (4) bounds how many one request disables.
        assert resp.status == 401
        assert pool.stats().disabled == 4
        with pytest.raises(NoTokensAvailable):  # the last two, then none is left
            await pool.get(url)
        assert pool.stats().disabled == 6
