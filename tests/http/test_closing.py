"""Closing the pool lets requests and streams under way finish, then closes the session."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from aurora_async import (
    TokenPool,
)

from .support import NAME_A, A, serve


async def test_closing_the_pool_lets_requests_under_way_finish() -> None:
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(0.2)
        return web.json_response({"ok": True})

    async with serve(slow) as url:
        pool = TokenPool([A])
        async with pool:
            request = asyncio.create_task(pool.get(url))
            await started.wait()
        resp = await request  # the pool closed while it was on the wire
        assert resp.status == 200
        assert await resp.json() == {"ok": True}
        assert pool.stats().in_flight == 0


@pytest.mark.looptime
async def test_closing_the_pool_waits_for_an_open_stream() -> None:
    go_on = asyncio.Event()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"part-1;")
        await go_on.wait()
        await resp.write(b"part-2")
        await resp.write_eof()
        return resp

    async with serve(slow_body) as url:
        pool = TokenPool([A])
        async with pool:
            async with pool.stream("GET", url) as resp:
                assert await resp.content.readexactly(7) == b"part-1;"
                closing = asyncio.create_task(pool.aclose())
                done, _ = await asyncio.wait({closing}, timeout=0.05)
                assert done == set()  # aclose waits for the stream's block to end
                go_on.set()
                assert await resp.content.read() == b"part-2"
            await closing
        client = pool._http  # the session is private; this test is about its lifecycle
        assert client is not None
        assert client._session is None
        assert pool.stats().in_flight == 0
        assert pool.stats().token(NAME_A).ok == 1
