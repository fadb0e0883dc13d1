"""Regressions from review of ``pool.request``: leaks, replays, redirects, closing."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from aurora_async import (
    BearerAuth,
    HeaderAuth,
    NoTokensAvailable,
    QueryAuth,
    RequestFailed,
    Token,
    TokenPool,
)

A = "sk-live-0123456789abcdef"
B = "sk-live-fedcba9876543210"
NAME_A = Token(A).name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1") -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        yield f"http://{host}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.mark.looptime
@pytest.mark.parametrize(
    "bad",
    [
        {"auth": lambda token, headers, params: 1 / 0},
        {"headers": 42},
        {"params": object()},
    ],
)
async def test_a_failure_between_lease_and_send_releases_the_lease(bad: dict[str, Any]) -> None:
    auth = bad.pop("auth", None)
    async with serve(ok) as url:
        pool = TokenPool([Token(A, max_in_flight=1)], trial_in_flight=None, auth=auth)
        async with pool:
            with pytest.raises((ZeroDivisionError, TypeError)):
                await pool.get(url, **bad)
            assert pool.stats().in_flight == 0


@pytest.mark.looptime
@pytest.mark.parametrize("make", [lambda: io.BytesIO(b"x" * 4000), "generator"])
async def test_a_body_that_cannot_be_sent_twice_is_not_retried(make: Any) -> None:
    sizes: list[int] = []

    async def limited_then_fine(request: web.Request) -> web.Response:
        sizes.append(len(await request.read()))
        if len(sizes) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 4000

    body = chunks() if make == "generator" else make()
    async with serve(limited_then_fine) as url, TokenPool([A, B]) as pool:
        resp = await pool.post(url, data=body)
        assert (resp.status, sizes) == (429, [4000])  # returned, not re-sent empty
        resp = await pool.post(url, data=b"y" * 10)  # bytes can be sent again
        assert (resp.status, sizes) == (200, [4000, 10])


@pytest.mark.parametrize(
    ("auth", "leaks_without_care"),
    [(BearerAuth(), False), (HeaderAuth("X-API-Key"), True), (QueryAuth("api_key"), False)],
)
async def test_the_token_never_follows_a_redirect_to_another_origin(
    auth: Any, leaks_without_care: bool
) -> None:
    seen: dict[str, Any] = {}

    async def sink(request: web.Request) -> web.Response:
        seen["headers"] = dict(request.headers)
        seen["query"] = dict(request.query)
        return web.Response(text="file")

    async with serve(sink, "127.0.0.2") as other:

        async def redirect(request: web.Request) -> web.Response:
            if request.path == "/same":
                raise web.HTTPFound("/landed")
            if request.path == "/landed":
                seen["same_origin_query"] = dict(request.query)
                seen["same_origin_headers"] = dict(request.headers)
                return web.Response(text="here")
            raise web.HTTPFound(f"{other}/file")

        async with serve(redirect) as url:
            pool = TokenPool([A], base_url=url, auth=auth)
            async with pool:
                resp = await pool.get("/file")
                assert (resp.status, await resp.text()) == (200, "file")
                assert A not in str(seen["headers"]) + str(seen["query"])
                same = await pool.get("/same")  # a same-origin redirect keeps the token
                assert (same.status, await same.text()) == (200, "here")
                assert A in str(seen["same_origin_headers"]) + str(seen["same_origin_query"])


@pytest.mark.looptime
async def test_an_invalid_url_raises_at_once_without_spending_a_token() -> None:
    pool = TokenPool([A, B])
    async with pool:
        with pytest.raises(ValueError, match="http"):
            await pool.get("ftp://example.com/file")
        assert pool.stats().granted == 0


@pytest.mark.looptime
async def test_raise_for_status_keeps_the_attempts_and_the_status() -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503)

    async with serve(unavailable) as url, TokenPool([A, B], max_attempts=3) as pool:
        with pytest.raises(RequestFailed) as failed:
            await pool.get(url, raise_for_status=True)
    assert failed.value.status == 503
    assert len(failed.value.attempts) == 3


@pytest.mark.looptime
async def test_a_number_timeout_works_with_a_deadline() -> None:
    async with serve(ok) as url, TokenPool([A], deadline=5) as pool:
        assert (await pool.get(url, timeout=3)).status == 200
        assert (await pool.get(url, timeout=None)).status == 200
        with pytest.raises(TypeError, match="timeout must be"):
            await pool.get(url, timeout="3")


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
