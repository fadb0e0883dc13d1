"""Per-request options of ``pool.request`` (``max_attempts``, ``deadline``,
``retry_backoff``, ``retry_unsafe``), and unknown keywords refused before any lease."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from aurora_async import Limit, RequestFailed, TokenPool

from .support import A, serve

pytestmark = pytest.mark.looptime

B = "sk-live-fedcba9876543210"
ROOMY = Limit(100, per=1, burst=100)


def counting(status: int, seen: list[str], pause: float = 0.0) -> Any:
    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        if pause:
            await asyncio.sleep(pause)
        return web.Response(status=status)

    return handler


async def finish(pending: Any) -> None:
    """Await a request, or enter and leave a stream."""
    if hasattr(pending, "__aenter__"):  # pool.stream
        async with pending:
            return
    await pending


def charged(pool: TokenPool) -> list[tuple[int, int]]:
    return [(t.leases, t.errors) for t in pool.stats().tokens]


@pytest.mark.parametrize(
    ("call", "wrong", "near"),
    [
        (lambda p, u: p.get(u, dedline=1), "dedline", "deadline"),
        (lambda p, u: p.get(u, max_attempt=1), "max_attempt", "max_attempts"),
        (lambda p, u: p.post(u, retry_unsafe_=True), "retry_unsafe_", "retry_unsafe"),
        (lambda p, u: p.request("GET", u, header={}), "header", "headers"),
        (lambda p, u: p.stream("GET", u, timout=3), "timout", "timeout"),
    ],
)
async def test_an_unknown_keyword_is_refused_before_any_lease(
    call: Callable[[TokenPool, str], Any], wrong: str, near: str
) -> None:
    seen: list[str] = []
    async with serve(counting(200, seen)) as url, TokenPool([A, B], limits=ROOMY) as pool:
        with pytest.raises(TypeError) as caught:
            await finish(call(pool, url))
        assert str(caught.value).endswith(
            f"got an unexpected keyword argument {wrong!r}; did you mean {near!r}?"
        )
        assert charged(pool) == [(0, 0), (0, 0)]
        assert seen == []


async def test_a_keyword_far_from_any_says_what_is_taken() -> None:
    async with TokenPool([A], limits=ROOMY) as pool:
        with pytest.raises(TypeError) as caught:
            _ = pool.get("http://127.0.0.1:1/", zzz=1)  # raises at the call, not at the await
        assert str(caught.value) == (
            "pool.request() got an unexpected keyword argument 'zzz' (it takes aiohttp's "
            "request arguments and the per-request options deadline, max_attempts, "
            "retry_backoff, retry_unsafe, settle)"
        )
        assert charged(pool) == [(0, 0)]


async def test_max_attempts_per_request() -> None:
    seen: list[str] = []
    async with serve(counting(503, seen)) as url, TokenPool([A, B], limits=ROOMY) as pool:
        assert (await pool.get(url, max_attempts=1)).status == 503
        assert len(seen) == 1
        assert (await pool.get(url, max_attempts=2, retry_backoff=(0, 0))).status == 503
        assert len(seen) == 3
        assert (await pool.get(url, retry_backoff=(0, 0))).status == 503  # the pool's 4
        assert len(seen) == 7
        with pytest.raises(ValueError, match="max_attempts must be an int >= 1, got 0"):
            _ = pool.get(url, max_attempts=0)  # raises at the call, not at the await
        assert len(seen) == 7


async def test_retry_unsafe_per_request() -> None:
    seen: list[str] = []
    async with serve(counting(503, seen)) as url, TokenPool([A, B], limits=ROOMY) as pool:
        assert (await pool.post(url, data=b"x")).status == 503  # not retried by default
        assert seen == ["POST"]
        resp = await pool.post(url, data=b"x", retry_unsafe=True, max_attempts=3)
        assert resp.status == 503
        assert seen == ["POST"] * 4


async def test_deadline_per_request(clock: Any) -> None:
    seen: list[str] = []
    handler = counting(503, seen)
    async with serve(handler) as url, TokenPool([A, B], limits=ROOMY, max_attempts=10) as pool:
        now = clock()
        with pytest.raises(RequestFailed) as caught:
            await pool.get(url, deadline=1.0, retry_backoff=(0.4, 10), raise_for_status=True)
        # Attempts at 0, 0.4 and, after a pause cut to the deadline, 1.0.
        assert now() == 1.0
        assert len(caught.value.attempts) == 3
        assert len(seen) == 3


def test_the_aiohttp_arguments_are_aiohttps() -> None:
    """The list of aiohttp's arguments matches the installed aiohttp's (read here from
    its private signature, which the library itself does not reach into)."""
    import inspect

    import aiohttp

    from aurora_async._http.arguments import AIOHTTP_ARGUMENTS

    params = inspect.signature(aiohttp.ClientSession._request).parameters
    assert set(params) - {"self", "method", "str_or_url"} == AIOHTTP_ARGUMENTS
