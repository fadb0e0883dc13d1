"""A request body is sent again (on another token, or to a 307's target) only when it can
be sent twice: bytes, text, plain forms and JSON can; streams and files cannot."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict

from aurora_async import (
    BearerAuth,
    HeaderAuth,
    TokenPool,
)

from .support import A, B, serve


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


@pytest.mark.looptime
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: {"name": "x", "file": io.BytesIO(b"x" * 4000)}, id="dict-with-file"),
        pytest.param(lambda: [("name", "x"), ("file", io.BytesIO(b"x" * 4000))], id="pairs"),
        pytest.param(lambda: MultiDict(file=io.BytesIO(b"x" * 4000)), id="multidict"),
        pytest.param(lambda: [("name", "x"), io.BytesIO(b"x" * 4000)], id="bare-file-in-list"),
        pytest.param(lambda: form(("name", "x"), ("file", io.BytesIO(b"x" * 4000))), id="form"),
    ],
)
async def test_a_form_holding_a_file_is_sent_once(make: Callable[[], Any]) -> None:
    bodies: list[bytes] = []

    async def limited_then_fine(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        if len(bodies) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    async with serve(limited_then_fine) as url, TokenPool([A, B]) as pool:
        resp = await pool.post(url, data=make())
        assert (resp.status, len(bodies)) == (429, 1)  # returned, not re-sent
        assert b"x" * 4000 in bodies[0]
        assert pool.stats().granted == 1


def form(*fields: tuple[str, Any], **options: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields:
        data.add_field(name, value, **options)
    return data


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        pytest.param({"data": {"a": "1", "n": 2}}, b"a=1&n=2", id="dict"),
        pytest.param({"data": [("a", "1"), ("a", "2")]}, b"a=1&a=2", id="pairs"),
        pytest.param({"data": form(("a", "1"), ("b", "2"))}, b"a=1&b=2", id="form"),
        pytest.param({"data": "text"}, b"text", id="str"),
        pytest.param({"data": bytearray(b"raw")}, b"raw", id="bytearray"),
        pytest.param({"json": {"a": [1, 2]}}, b'{"a": [1, 2]}', id="json"),
    ],
)
async def test_a_plain_body_is_sent_again_on_another_token(
    kwargs: dict[str, Any], body: bytes
) -> None:
    bodies: list[bytes] = []

    async def limited_then_fine(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        if len(bodies) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    async with serve(limited_then_fine) as url, TokenPool([A, B]) as pool:
        resp = await pool.post(url, **kwargs)
        assert (resp.status, bodies) == (200, [body, body])


@pytest.mark.looptime
async def test_a_multipart_form_without_files_is_sent_again_whole() -> None:
    bodies: list[bytes] = []

    async def limited_then_fine(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        if len(bodies) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(text="ok")

    data = form(("a", "1"), content_type="text/plain")
    data.add_field("b", b"two", filename="two.bin")
    async with serve(limited_then_fine) as url, TokenPool([A, B]) as pool:
        resp = await pool.post(url, data=data)
        assert (resp.status, len(bodies)) == (200, 2)
        assert bodies[0] == bodies[1]
        assert b"two" in bodies[1]


async def _chunks() -> AsyncIterator[bytes]:
    yield b"x" * 4000


@pytest.mark.looptime
@pytest.mark.parametrize("auth", [BearerAuth(), HeaderAuth("X-API-Key")])
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_chunks, id="generator"),
        pytest.param(lambda: {"file": io.BytesIO(b"x" * 4000)}, id="form-with-file"),
    ],
)
async def test_a_307_is_not_followed_with_a_body_that_cannot_be_sent_twice(
    auth: Any, make: Callable[[], Any]
) -> None:
    seen: list[tuple[str, int]] = []

    async def moved(request: web.Request) -> web.Response:
        seen.append((request.path, len(await request.read())))
        if request.path == "/upload":
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(text="landed")

    async with serve(moved) as url, TokenPool([A, B], auth=auth) as pool:
        resp = await pool.post(f"{url}/upload", data=make())
        assert (resp.status, resp.headers["Location"]) == (307, "/elsewhere")
        assert len(seen) == 1  # the body went once, to /upload only
        assert seen[0][0] == "/upload"
        resp = await pool.post(f"{url}/upload", data=b"y" * 10)  # bytes go again
        assert (resp.status, await resp.text()) == (200, "landed")
        assert seen[1:] == [("/upload", 10), ("/elsewhere", 10)]
        assert pool.stats().granted == 2
