"""Errors of ``pool.request`` name a token by its masked name, never by its secret."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from aurora_async import (
    QueryAuth,
    RequestFailed,
    Token,
    TokenPool,
)

from .support import NAME_A, A, B, serve


@pytest.mark.looptime
async def test_a_token_dropped_by_a_reload_mid_request_stays_masked_in_errors() -> None:
    async def loop_forever(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.rel_url))  # keeps the query: the token

    async with serve(loop_forever) as url:
        pool = TokenPool([A], auth=QueryAuth("api_key"))
        async with pool:
            task = asyncio.create_task(pool.get(url, max_redirects=1))
            await asyncio.sleep(0)
            pool.replace_tokens([B])  # the token of the request under way goes
            with pytest.raises(RequestFailed) as failed:
                await task
    assert A not in str(failed.value)
    assert NAME_A in str(failed.value)


async def test_a_token_pasted_into_a_refused_url_is_masked_in_the_error() -> None:
    async with TokenPool([A, B]) as pool:
        for url in (f"ftp://example.com/?key={A}", f"items?key={A}"):
            with pytest.raises(ValueError, match=r"http|URL") as raised:
                await pool.get(url)
            assert A not in str(raised.value)
            assert Token(A).name in str(raised.value)
