"""Regressions from review of ``pool.request``: leaks, replays, redirects, closing."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict

from aurora_async import (
    BearerAuth,
    HeaderAuth,
    NoTokensAvailable,
    QueryAuth,
    RequestFailed,
    Token,
    TokenPool,
    TokenState,
)
from aurora_async._http.client import _has_credentials

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


# --- second review ---


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


async def test_a_token_pasted_into_a_refused_url_is_masked_in_the_error() -> None:
    async with TokenPool([A, B]) as pool:
        for url in (f"ftp://example.com/?key={A}", f"items?key={A}"):
            with pytest.raises(ValueError, match=r"http|URL") as raised:
                await pool.get(url)
            assert A not in str(raised.value)
            assert Token(A).name in str(raised.value)


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
