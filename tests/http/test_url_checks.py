"""A URL no request could go to is refused with a ``ValueError`` before a token is leased."""

from __future__ import annotations

import pytest
from aiohttp import web

from aurora_async import (
    TokenPool,
)

from .support import A, B, serve


@pytest.mark.looptime
async def test_an_invalid_url_raises_at_once_without_spending_a_token() -> None:
    pool = TokenPool([A, B])
    async with pool:
        with pytest.raises(ValueError, match="http"):
            await pool.get("ftp://example.com/file")
        assert pool.stats().granted == 0


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http:/x", "the URL has no host: 'http:/x'"),
        ("http://", "the URL has no host: 'http://'"),
        ("https://:8080/x", "not a valid URL (Invalid URL: host is required for absolute urls "
         "with the https scheme): 'https://:8080/x'"),
        ("http://h:99999/", "not a valid URL (Port out of range 0-65535): 'http://h:99999/'"),
        ("http://h:0/", "the URL's port is 0 (valid ports are 1 to 65535): 'http://h:0/'"),
        ("http://[::1/x", "not a valid URL (Invalid IPv6 URL): 'http://[::1/x'"),
        ("http://exa mple.com/", "the URL's host 'exa mple.com' is not a host name: "
         "'http://exa mple.com/'"),
        ("ftp://example.com/f", "pool.request sends http(s) requests only, not ftp: "
         "'ftp://example.com/f'"),
        ("mailto:a@example.com", "pool.request sends http(s) requests only, not mailto: "
         "'mailto:a@example.com'"),
        ("//example.com/x", "pool.request sends http(s) requests only, not a URL without a "
         "scheme: '//example.com/x'"),
        ("items/1", "not an absolute URL, and there is no base_url to join it with: 'items/1'"),
    ],
)  # fmt: skip
async def test_a_url_no_request_could_go_to_is_refused_before_any_token_is_leased(
    url: str, problem: str
) -> None:
    async with TokenPool([A, B]) as pool:
        with pytest.raises(ValueError, match=r"URL|http") as raised:
            await pool.get(url)
        assert type(raised.value) is ValueError
        assert str(raised.value) == problem
        with pytest.raises(ValueError, match=r"URL|http") as streamed:
            await pool.stream("GET", url).__aenter__()
        assert str(streamed.value) == problem
        assert pool.stats().granted == 0


@pytest.mark.looptime
async def test_with_a_base_url_an_absolute_url_is_checked_not_joined() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    async with serve(echo) as url, TokenPool([A], base_url=f"{url}/v1") as pool:
        for given, problem in [
            ("ftp://example.com/f", "pool.request sends http(s) requests only, not ftp"),
            ("http:/x", "the URL has no host"),
            ("HTTPS://", "the URL has no host"),
        ]:
            with pytest.raises(ValueError, match=r"URL|http") as raised:
                await pool.get(given)
            assert str(raised.value) == f"{problem}: {given!r}"
        assert pool.stats().granted == 0
        # A first path segment with a colon in it is a relative URL all the same.
        assert await (await pool.get("items:batchGet")).json() == {"path": "/v1/items:batchGet"}
        assert await (await pool.get("x:99999")).json() == {"path": "/v1/x:99999"}
