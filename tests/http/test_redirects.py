"""Redirects of ``pool.request``: the token and the caller's credentials stay at the
origin, an answer from elsewhere is no verdict on the token, a bad Location fails cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict

from aurora_async import (
    BearerAuth,
    HeaderAuth,
    QueryAuth,
    RequestFailed,
    Token,
    TokenPool,
    TokenState,
)
from aurora_async._http.client import _has_credentials

from .support import NAME_A, A, B, serve


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


@asynccontextmanager
async def origins(
    redirect: Callable[[web.Request, str], str],
) -> AsyncIterator[tuple[str, list[web.Request], list[dict[str, Any]]]]:
    """Two local servers on two ports: A redirects where ``redirect(request, b_url)``
    says; B records what it got (headers, query, cookies) and answers 200."""
    at_a: list[web.Request] = []
    at_b: list[dict[str, Any]] = []

    async def b_handler(request: web.Request) -> web.Response:
        at_b.append(
            {
                "headers": dict(request.headers),
                "query": list(request.query.items()),
                "query_string": request.query_string,
                "path": request.path,
            }
        )
        return web.Response(text="b")

    async with serve(b_handler) as b_url:

        async def a_handler(request: web.Request) -> web.Response:
            at_a.append(request)
            raise web.HTTPFound(redirect(request, b_url))

        async with serve(a_handler) as a_url:
            yield a_url, at_a, at_b


@pytest.mark.looptime
@pytest.mark.parametrize(
    "auth",
    [
        BearerAuth(),  # the default: aiohttp would follow (and keep cookies before 3.14)
        HeaderAuth("X-API-Key"),
        QueryAuth("api_key"),
        BearerAuth("X-Token", scheme="Token"),
        lambda token, headers, params: params.update(key=token),
    ],
)
async def test_a_redirect_to_another_origin_carries_no_token_and_no_credentials(
    auth: Any,
) -> None:
    def echo_query(request: web.Request, b_url: str) -> str:
        return f"{b_url}/landing?{request.query_string}"  # the token too, if in the query

    async with origins(echo_query) as (a_url, at_a, at_b), TokenPool([A], auth=auth) as pool:
        resp = await pool.get(
            f"{a_url}/go",
            params={"x": "1"},
            headers={
                "Authorization": "Basic dXNlcjpwdw==",
                "Cookie": "session=s3cret",
                "Proxy-Authorization": "Basic cHJveHk=",
                "X-Trace": "t-1",
            },
            cookies={"more": "c00kie"},
        )
        assert (resp.status, await resp.text()) == (200, "b")
        sent_to_a = str(dict(at_a[0].headers)) + at_a[0].query_string
        assert A in sent_to_a
        assert "s3cret" in sent_to_a
        assert "c00kie" in sent_to_a
        [got] = at_b
        assert got["path"] == "/landing"
        assert got["query"] == [("x", "1")]  # the caller's parameter, and only that
        assert got["headers"]["X-Trace"] == "t-1"
        for name in ("Authorization", "Cookie", "Proxy-Authorization", "X-API-Key", "X-Token"):
            assert name not in got["headers"]
        assert A not in str(got)


@pytest.mark.looptime
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
async def test_basic_auth_of_the_caller_is_not_sent_to_another_origin() -> None:
    def elsewhere(request: web.Request, b_url: str) -> str:
        return f"{b_url}/landing"

    async with (
        origins(elsewhere) as (a_url, at_a, at_b),
        TokenPool([A], auth=QueryAuth("api_key")) as pool,
    ):
        resp = await pool.get(f"{a_url}/go", auth=aiohttp.BasicAuth("user", "pw"))
        assert resp.status == 200
        assert at_a[0].headers["Authorization"] == aiohttp.BasicAuth("user", "pw").encode()
        assert at_a[0].query["api_key"] == A
        assert "Authorization" not in at_b[0]["headers"]
        assert at_b[0]["query"] == []


@pytest.mark.looptime
@pytest.mark.parametrize("auth", [QueryAuth("api_key"), HeaderAuth("X-API-Key")])
async def test_a_same_origin_redirect_sends_the_token_once(auth: Any) -> None:
    seen: list[tuple[str, list[tuple[str, str]], str | None]] = []

    async def hop(request: web.Request) -> web.Response:
        seen.append((request.path, list(request.query.items()), request.headers.get("X-API-Key")))
        if request.path == "/first":
            raise web.HTTPFound(f"/second?{request.query_string}")  # echoes the token back
        return web.Response(text="second")

    async with serve(hop) as url, TokenPool([A], auth=auth) as pool:
        resp = await pool.get(f"{url}/first", params={"x": "1"})
        assert (resp.status, await resp.text()) == (200, "second")
    if isinstance(auth, QueryAuth):
        assert seen == [
            ("/first", [("x", "1"), ("api_key", A)], None),
            ("/second", [("x", "1"), ("api_key", A)], None),
        ]
    else:
        assert seen == [("/first", [("x", "1")], A), ("/second", [("x", "1")], A)]


RATE_HEADERS = {
    "Retry-After": "30",
    "X-RateLimit-Limit": "5",
    "X-RateLimit-Remaining": "0",
    "X-RateLimit-Reset": "30",
}


@pytest.mark.looptime
@pytest.mark.parametrize("status", [429, 401, 503, 200])
@pytest.mark.parametrize(
    "auth",
    [BearerAuth(), HeaderAuth("X-API-Key"), QueryAuth("api_key")],
    ids=lambda auth: type(auth).__name__,
)
async def test_an_answer_from_another_origin_says_nothing_of_the_token(
    status: int, auth: Any
) -> None:
    at_b: list[dict[str, Any]] = []
    judged: list[int] = []

    async def b_handler(request: web.Request) -> web.Response:
        at_b.append({"headers": dict(request.headers), "query": request.query_string})
        return web.Response(status=status, headers=RATE_HEADERS)

    def policy(resp: aiohttp.ClientResponse) -> None:
        judged.append(resp.status)

    async with serve(b_handler) as b_url:

        async def a_handler(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{b_url}/limited")

        async with serve(a_handler) as a_url, TokenPool([A], auth=auth, policy=policy) as pool:
            resp = await pool.get(f"{a_url}/go")
            assert resp.status == status  # the caller gets the answer, as it is
            token = pool.stats().token(NAME_A)
            assert token.state is TokenState.ACTIVE
            assert (token.leases, token.ok, token.rate_limited, token.errors) == (1, 1, 0, 0)
            assert (token.cooldown_left, token.last_remaining, token.last_limit) == (0, None, None)
            assert judged == []  # nor asked the policy about it
            assert len(at_b) == 1  # nor retried
            assert A not in str(at_b)
            # The token still serves its own origin at once.
            resp = await pool.get(f"{a_url}/go", allow_redirects=False)
            assert (resp.status, judged) == (302, [302])


@pytest.mark.looptime
@pytest.mark.parametrize("auth", [HeaderAuth("X-API-Key"), QueryAuth("api_key")])
async def test_an_answer_back_at_the_origin_after_a_detour_is_the_tokens(auth: Any) -> None:
    urls: dict[str, str] = {}
    at_b: list[str] = []
    back: list[str] = []

    async def origin(request: web.Request) -> web.Response:
        if request.path == "/go":
            raise web.HTTPFound(f"{urls['b']}/detour")
        back.append(str(dict(request.headers)) + request.query_string)
        return web.Response(status=429, headers={"Retry-After": "30"})

    async def detour(request: web.Request) -> web.Response:
        at_b.append(str(dict(request.headers)) + request.query_string)
        raise web.HTTPFound(f"{urls['a']}/back")

    async with (
        serve(origin) as urls["a"],
        serve(detour) as urls["b"],
        TokenPool([A], auth=auth, max_attempts=1) as pool,
    ):
        resp = await pool.get(f"{urls['a']}/go")
        assert resp.status == 429
        token = pool.stats().token(NAME_A)
        assert (token.state, token.cooldown_left, token.rate_limited) == (
            TokenState.COOLING,
            30.0,
            1,
        )
    assert A not in at_b[0]
    assert A in back[0]


async def test_a_relative_url_on_a_borrowed_session_follows_redirects_with_any_auth() -> None:
    seen: list[tuple[str, str | None]] = []

    async def hop(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("X-API-Key")))
        if request.path == "/same":
            raise web.HTTPFound("/landed")
        return web.Response(text="landed")

    async with (
        serve(hop) as url,
        aiohttp.ClientSession(base_url=url) as session,
        TokenPool([A], session=session, auth=HeaderAuth("X-API-Key")) as pool,
    ):
        resp = await pool.get("/same")
        assert (resp.status, await resp.text()) == (200, "landed")
    assert seen == [("/same", A), ("/landed", A)]


@pytest.mark.looptime
@pytest.mark.parametrize("location", ["ftp://example.com/x", "http://[::1/x"])
async def test_a_redirect_to_no_http_url_fails_the_request(location: str) -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": location})

    async with serve(bad) as url, TokenPool([A], auth=QueryAuth("api_key")) as pool:
        with pytest.raises(RequestFailed) as failed:
            await pool.get(url)
        assert failed.value.attempts == (f"{NAME_A}: InvalidURL({location})",)
        assert pool.stats().in_flight == 0


@pytest.mark.looptime
@pytest.mark.parametrize("auth", [BearerAuth(), HeaderAuth("X-Key")])
async def test_an_answer_at_the_origin_after_a_hop_elsewhere_without_the_token_is_not_its(
    auth: Any,
) -> None:
    # aiohttp (which follows for the default auth) stops sending Authorization once a
    # hop leaves the origin, and does not send it again back at the origin: the 401
    # there is no verdict on the token. Following by hand, the token goes again.
    seen: list[str | None] = []

    async def bouncing(request: web.Request) -> web.Response:
        port = request.url.port
        if request.path == "/go":
            raise web.HTTPFound(f"http://localhost:{port}/away")  # another origin
        if request.path == "/away":
            raise web.HTTPFound(f"http://127.0.0.1:{port}/protected")  # back home
        token = request.headers.get("Authorization") or request.headers.get("X-Key")
        seen.append(token)
        if token is None:
            return web.Response(status=401)
        return web.Response(text="ok")

    async with serve(bouncing) as url, TokenPool([A, B], auth=auth) as pool:
        resp = await pool.get(f"{url}/go")
        stats = pool.stats()
        assert stats.disabled == 0
        assert stats.granted == 1  # no retry on another token
    if isinstance(auth, HeaderAuth):
        assert (resp.status, seen) == (200, [A])
    else:
        assert (resp.status, seen) == (401, [None])


@pytest.mark.looptime
async def test_a_location_with_no_host_fails_the_request_cleanly() -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "https:/other"})

    async with serve(bad) as url, TokenPool([A], auth=HeaderAuth("X-Key")) as pool:
        with pytest.raises(RequestFailed, match="the request was refused") as raised:
            await pool.get(f"{url}/x")
        assert "InvalidURL" in raised.value.attempts[0]
        assert pool.stats().token(Token(A).name).in_flight == 0


@pytest.mark.parametrize(
    ("headers", "found"),
    [
        ({"cookie": "s=1"}, True),
        ([("Cookie", "s=1")], True),
        ((("PROXY-AUTHORIZATION", "Basic x"),), True),
        (MultiDict([("X-Trace", "1")]), False),
        ([("X-Trace", "1")], False),
        (None, False),
    ],
)
def test_credentials_in_headers_are_found_in_any_form(headers: Any, found: bool) -> None:
    assert _has_credentials(headers) is found
