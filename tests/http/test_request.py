"""``pool.request`` and friends: what goes out, what comes back, who owns the session.

Every test talks to a real server on loopback: :class:`~aurora_async.testing.MockAPI`, or a
plain ``aiohttp.web`` app started inside the test for special answers (an echo of what the
server received, a slow body, a connection closed mid-body). Tests run on virtual time
(``looptime``): loopback I/O completes before the clock moves, so durations are exact.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aurora_async import (
    LeaseTimeout,
    Limit,
    PoolClosed,
    RequestFailed,
    Token,
    TokenPool,
    TokenState,
    TokenStats,
)
from aurora_async._http.auth import BearerAuth, HeaderAuth, QueryAuth
from aurora_async.testing import MockAPI, MockTokenStats

from .support import serve

pytestmark = pytest.mark.looptime

A = "sk-live-7Qz9XwP3mK2vR8tY"
B = "sk-live-4Hd8LpQ2nV6cX1wE"
NAME_A, NAME_B = Token(A).name, Token(B).name


async def echo(request: web.Request) -> web.Response:
    """What the server received: method, path, query pairs in order, headers, body."""
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": [[k, v] for k, v in request.query.items()],
            "headers": dict(request.headers),
            "body": await request.text(),
        }
    )


@contextmanager
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def counters(stats: TokenStats) -> tuple[int, int, int, int, int]:
    return (stats.leases, stats.ok, stats.rate_limited, stats.errors, stats.in_flight)


# -- the response ------------------------------------------------------------------------


async def test_request_returns_a_response_whose_body_is_already_read() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        resp = await pool.request("GET", f"{api.url}/items/1")
        assert isinstance(resp, aiohttp.ClientResponse)
        assert resp.status == 200
        # Read before return: the connection went back to the pool, the body stays.
        assert resp.closed
        assert await resp.json() == {
            "ok": True,
            "token": NAME_A,
            "path": "/items/1",
            "method": "GET",
        }
        assert (await resp.text()).startswith('{"ok": true')
        assert counters(pool.stats().token(NAME_A)) == (1, 1, 0, 0, 0)
        assert api.stats(A) == MockTokenStats(requests=1, ok=1)


async def test_read_works_on_the_returned_response() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        resp = await pool.get(f"{api.url}/items/1")
        assert (await resp.read()).startswith(b'{"ok": true')


@pytest.mark.parametrize(
    ("call", "method"),
    [
        (lambda pool, url: pool.get(url), "GET"),
        (lambda pool, url: pool.post(url), "POST"),
        (lambda pool, url: pool.put(url), "PUT"),
        (lambda pool, url: pool.patch(url), "PATCH"),
        (lambda pool, url: pool.delete(url), "DELETE"),
        (lambda pool, url: pool.head(url), "HEAD"),
        (lambda pool, url: pool.options(url), "OPTIONS"),
        (lambda pool, url: pool.request("get", url), "GET"),
    ],
)
async def test_each_method_helper_sends_its_method(
    call: Callable[[TokenPool, str], Awaitable[aiohttp.ClientResponse]], method: str
) -> None:
    async with serve(echo) as url, TokenPool([A]) as pool:
        resp = await call(pool, f"{url}/things/7")
        assert resp.status == 200
        assert resp.method == method
        if method != "HEAD":
            seen = await resp.json()
            assert (seen["method"], seen["path"]) == (method, "/things/7")
            assert seen["headers"]["Authorization"] == f"Bearer {A}"
        assert counters(pool.stats().token(NAME_A)) == (1, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("base", "url", "path"),
    [
        ("/v1", "items/1", "/v1/items/1"),
        ("/v1", "/items/1", "/v1/items/1"),
        ("/v1/", "/items/1", "/v1/items/1"),
        ("/v1/", "items/1?x=1", "/v1/items/1"),
        ("", "/items/1", "/items/1"),
    ],
)
async def test_base_url_is_joined_with_a_relative_url(base: str, url: str, path: str) -> None:
    async with serve(echo) as server, TokenPool([A], base_url=server + base) as pool:
        seen = await (await pool.get(url)).json()
        assert seen["path"] == path


async def test_an_absolute_url_ignores_base_url() -> None:
    async with serve(echo) as server:
        pool = TokenPool([A], base_url="http://127.0.0.1:9/never")
        async with pool:
            seen = await (await pool.get(f"{server}/elsewhere")).json()
        assert seen["path"] == "/elsewhere"


async def test_json_body_is_sent() -> None:
    async with serve(echo) as url, TokenPool([A]) as pool:
        seen = await (await pool.post(f"{url}/things", json={"name": "x", "n": 2})).json()
        assert seen["method"] == "POST"
        assert seen["body"] == '{"name": "x", "n": 2}'
        assert seen["headers"]["Content-Type"] == "application/json"


async def test_caller_headers_are_merged_with_the_auth_header_and_left_unchanged() -> None:
    headers = {"Accept": "application/vnd.test+json", "X-Trace": "t-1"}
    async with serve(echo) as url, TokenPool([A]) as pool:
        seen = await (await pool.get(f"{url}/x", headers=headers)).json()
    assert seen["headers"]["Accept"] == "application/vnd.test+json"
    assert seen["headers"]["X-Trace"] == "t-1"
    assert seen["headers"]["Authorization"] == f"Bearer {A}"
    assert headers == {"Accept": "application/vnd.test+json", "X-Trace": "t-1"}


async def test_caller_params_are_merged_with_a_query_token_and_left_unchanged() -> None:
    params = {"page": "2", "per_page": "50"}
    async with serve(echo) as url, TokenPool([A], auth=QueryAuth("api_key")) as pool:
        seen = await (await pool.get(f"{url}/x", params=params)).json()
    assert seen["query"] == [["page", "2"], ["per_page", "50"], ["api_key", A]]
    assert "Authorization" not in seen["headers"]
    assert params == {"page": "2", "per_page": "50"}


async def test_repeated_params_and_a_query_in_the_url_are_kept() -> None:
    async with serve(echo) as url, TokenPool([A], auth=QueryAuth("key")) as pool:
        resp = await pool.get(f"{url}/x?sort=asc", params=[("tag", "a"), ("tag", "b")])
        seen = await resp.json()
    assert seen["query"] == [["sort", "asc"], ["tag", "a"], ["tag", "b"], ["key", A]]


async def test_params_as_a_query_string_like_aiohttp_accepts() -> None:
    async with serve(echo) as url, TokenPool([A], auth=QueryAuth("key")) as pool:
        seen = await (await pool.get(f"{url}/x", params="a=1&b=2")).json()
    assert seen["query"] == [["a", "1"], ["b", "2"], ["key", A]]


async def test_other_aiohttp_keyword_arguments_pass_through() -> None:
    async with serve(echo) as url, TokenPool([A]) as pool:
        resp = await pool.get(f"{url}/x", allow_redirects=False, data=b"raw-bytes")
        seen = await resp.json()
    assert seen["body"] == "raw-bytes"


@pytest.mark.looptime
async def test_cost_is_charged_to_the_token() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        await pool.get(f"{api.url}/x", cost=3)
        stats = pool.stats().token(NAME_A)
        # The default Limit(10) starts with a burst of 1; a cost of 3 widens it to 3 (the
        # bucket restarts full and drains for 0.3 s), and the lease takes all 3 (MockAPI's
        # X-RateLimit-Limit then restates the window, which restarts full too).
        assert (stats.leases, stats.units, stats.headroom) == (1, 3.0, 0.0)


async def test_a_cost_above_every_burst_raises_before_sending() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A], limits=Limit(10)) as pool:
        with pytest.raises(ValueError, match="exceeds the burst of every token"):
            await pool.get(f"{api.url}/x", cost=11)
        assert api.totals == MockTokenStats()


async def test_lease_timeout_zero_on_a_busy_pool_raises_before_sending() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        held = await pool.acquire()  # an unproven token carries one lease at a time
        with pytest.raises(LeaseTimeout):
            await pool.get(f"{api.url}/x", lease_timeout=0)
        held.release()
        assert api.totals == MockTokenStats()
        assert pool.stats().waiting == 0


# -- stream() ----------------------------------------------------------------------------


async def test_stream_holds_the_lease_for_the_block_and_releases_the_response() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        async with pool.stream("GET", f"{api.url}/big") as resp:
            assert resp.status == 200
            assert pool.stats().in_flight == 1
            assert pool.stats().token(NAME_A).in_flight == 1
            body = await resp.content.read()
            assert b'"path": "/big"' in body
        assert resp.closed
        stats = pool.stats()
        assert stats.in_flight == 0
        assert counters(stats.token(NAME_A)) == (1, 1, 0, 0, 0)


async def test_stream_block_that_raises_keeps_the_servers_verdict_and_releases() -> None:
    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        with pytest.raises(ZeroDivisionError):
            async with pool.stream("GET", f"{api.url}/x") as resp:
                _ = 1 / 0
        assert resp.closed
        stats = pool.stats().token(NAME_A)
        assert counters(stats) == (1, 1, 0, 0, 0)  # the 200 counts: the bug was the caller's
        assert stats.state is TokenState.ACTIVE
        # The token is free again.
        assert (await pool.get(f"{api.url}/x")).status == 200


async def test_stream_reads_a_slow_body_inside_the_block(clock: Any) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await resp.write(part)
            await asyncio.sleep(2)
        await resp.write_eof()
        return resp

    async with serve(slow) as url, TokenPool([A]) as pool:
        now = clock()
        async with pool.stream("GET", f"{url}/slow") as resp:
            assert (resp.status, now()) == (200, 0.0)
            first = await resp.content.readany()
            assert first == b"one,"
            assert pool.stats().in_flight == 1
            assert await resp.content.read() == b"two,three"
            assert now() == 6.0
        assert pool.stats().in_flight == 0


async def test_request_waits_for_a_slow_body(clock: Any) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"part-1;")
        await asyncio.sleep(5)
        await resp.write(b"part-2")
        await resp.write_eof()
        return resp

    async with serve(slow) as url, TokenPool([A]) as pool:
        now = clock()
        resp = await pool.get(f"{url}/slow")
        assert (resp.status, now()) == (200, 5.0)
        assert await resp.text() == "part-1;part-2"
        assert counters(pool.stats().token(NAME_A)) == (1, 1, 0, 0, 0)


async def test_a_body_that_cannot_be_read_raises_request_failed_without_retry() -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"only ten b")
        request.transport.close()  # type: ignore[union-attr]
        return resp

    calls = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return await cut(request)

    async with serve(handler) as url, TokenPool([A, B]) as pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(f"{url}/cut")
        err = caught.value
        assert err.why == "the response body could not be read"
        assert len(err.attempts) == 1
        assert err.attempts[0].startswith(f"{NAME_A}: ClientPayloadError(")
        assert calls == 1
        assert pool.stats().in_flight == 0
        assert counters(pool.stats().token(NAME_A)) == (1, 0, 0, 1, 0)


async def test_a_body_read_timeout_from_aiohttp_kwargs_raises_request_failed(clock: Any) -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"start")
        await asyncio.sleep(60)
        return resp

    async with serve(stall) as url, TokenPool([A]) as pool:
        now = clock()
        with pytest.raises(RequestFailed) as caught:
            await pool.get(f"{url}/x", timeout=aiohttp.ClientTimeout(sock_read=1))
        assert now() == 1.0
        assert caught.value.why == "the response body could not be read"
        assert caught.value.attempts[0].startswith(f"{NAME_A}: ")
        assert counters(pool.stats().token(NAME_A)) == (1, 0, 0, 1, 0)


# -- token injection ---------------------------------------------------------------------


def put_in_custom_header(
    token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
) -> None:
    headers["X-Custom"] = token


def put_in_custom_param(
    token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
) -> None:
    params["key"] = token


@pytest.mark.parametrize(
    ("auth", "api_options"),
    [
        (None, {}),
        (BearerAuth(), {"auth": "bearer"}),
        (HeaderAuth("X-API-Key"), {"auth": "header"}),
        (QueryAuth("api_key"), {"auth": "query"}),
        (put_in_custom_header, {"auth": "header", "auth_name": "X-Custom"}),
        (put_in_custom_param, {"auth": "query", "auth_name": "key"}),
    ],
    ids=["default", "bearer", "header", "query", "function-header", "function-query"],
)
async def test_the_token_goes_where_the_api_expects_it(
    auth: Any, api_options: dict[str, Any]
) -> None:
    options = {} if auth is None else {"auth": auth}
    async with MockAPI({A: Limit(10)}, **api_options) as api, TokenPool([A], **options) as pool:
        resp = await pool.get(f"{api.url}/whoami")
        assert resp.status == 200
        assert await resp.json() == {"token": NAME_A}
        assert api.stats(A) == MockTokenStats(requests=1, ok=1)


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (None, "Authorization", f"Bearer {A}"),
        (BearerAuth(header="X-Token", scheme="Token"), "X-Token", f"Token {A}"),
        (BearerAuth(scheme=""), "Authorization", A),
        (HeaderAuth("X-API-Key"), "X-API-Key", A),
        (put_in_custom_header, "X-Custom", A),
    ],
)
async def test_header_auth_sends_exactly_one_header(auth: Any, header: str, value: str) -> None:
    options = {} if auth is None else {"auth": auth}
    async with serve(echo) as url, TokenPool([A], **options) as pool:
        seen = await (await pool.get(f"{url}/x")).json()
    assert seen["headers"][header] == value
    carrying = [k for k, v in seen["headers"].items() if A in v]
    assert carrying == [header]
    assert seen["query"] == []


async def test_the_auth_header_replaces_one_the_caller_passed() -> None:
    async with serve(echo) as url, TokenPool([A]) as pool:
        resp = await pool.get(f"{url}/x", headers={"authorization": "Bearer stale"})
        seen = await resp.json()
    assert seen["headers"]["Authorization"] == f"Bearer {A}"


async def test_auth_of_the_wrong_kind_is_rejected_when_the_pool_is_built() -> None:
    with pytest.raises(TypeError, match="auth must be"):
        TokenPool([A], auth="bearer")


# -- session ownership -------------------------------------------------------------------


async def test_a_borrowed_session_is_not_closed_by_the_pool() -> None:
    async with MockAPI({A: Limit(10)}) as api, aiohttp.ClientSession() as session:
        pool = TokenPool([A], session=session)
        resp = await pool.get(f"{api.url}/x")
        assert resp.status == 200
        await pool.aclose()
        assert not session.closed
        # Still usable by its owner.
        async with session.get(f"{api.url}/y", headers={"Authorization": f"Bearer {A}"}) as r:
            assert r.status == 200
        assert api.stats(A) == MockTokenStats(requests=2, ok=2)


async def test_a_borrowed_session_keeps_its_own_base_url() -> None:
    async with serve(echo) as url, aiohttp.ClientSession(base_url=url) as session:
        async with TokenPool([A], session=session) as pool:
            seen = await (await pool.get("/relative")).json()
        assert seen["path"] == "/relative"
        assert not session.closed


async def test_an_owned_session_is_closed_by_aclose() -> None:
    async with MockAPI({A: Limit(10)}) as api:
        pool = TokenPool([A])
        assert (await pool.get(f"{api.url}/x")).status == 200
        client = pool._http  # the session is private; this test is about its lifecycle
        assert client is not None
        session = client._session
        assert session is not None
        open_before = not session.closed
        await pool.aclose()
        assert open_before
        assert session.closed
        with pytest.raises(PoolClosed):
            await pool.get(f"{api.url}/x")


async def test_a_pool_that_never_sent_anything_creates_no_session() -> None:
    pool = TokenPool([A])
    async with pool:
        pass
    assert pool._http is None
    assert pool.closed


# -- options are validated when the pool is built ----------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"base_url": "api.example.com"}, ValueError, "base_url must start with http"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be an int >= 1"),
        ({"max_attempts": True}, ValueError, "max_attempts must be an int >= 1"),
        ({"deadline": 0}, ValueError, "deadline must be None or positive"),
        ({"deadline": float("inf")}, ValueError, "deadline must be None or positive"),
        ({"retry_backoff": (2.0, 1.0)}, ValueError, "retry_backoff must be"),
        ({"header_slack": -1}, ValueError, "header_slack must be >= 0"),
        ({"connections": -1}, ValueError, "connections must be an int >= 0"),
        ({"policy": 42}, TypeError, "policy must be a function"),
        ({"retries": 3}, TypeError, "unexpected keyword argument.*retries"),
    ],
)
async def test_http_options_are_checked_at_construction(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        TokenPool([A], **options)


# -- cancellation ------------------------------------------------------------------------


async def test_cancelling_a_request_in_flight_leaves_the_pool_consistent() -> None:
    arrived = asyncio.Event()
    gate = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/slow":
            arrived.set()
            await gate.wait()
        return web.json_response({"ok": True})

    async with serve(handler) as url, TokenPool([A], base_url=url) as pool:
        task = asyncio.create_task(pool.get("/slow"))
        await arrived.wait()
        assert pool.stats().token(NAME_A).in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = pool.stats()
        assert (stats.in_flight, stats.waiting) == (0, 0)
        assert counters(stats.token(NAME_A)) == (1, 0, 0, 1, 0)
        assert stats.token(NAME_A).state is TokenState.ACTIVE
        gate.set()
        resp = await pool.get("/fast")
        assert resp.status == 200
        assert counters(pool.stats().token(NAME_A)) == (2, 1, 0, 1, 0)


async def test_cancelling_a_request_waiting_to_retry_leaves_no_waiter(clock: Any) -> None:
    seen = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen == 1:
            return web.json_response({}, status=429, headers={"Retry-After": "10"})
        return web.json_response({"ok": True})

    async with serve(handler) as url, TokenPool([A], base_url=url) as pool:
        now = clock()
        task = asyncio.create_task(pool.get("/x"))
        await asyncio.sleep(1)  # the 429 came back; the retry waits for the cooldown
        stats = pool.stats()
        assert (stats.waiting, stats.in_flight, seen) == (1, 0, 1)
        assert stats.token(NAME_A).state is TokenState.COOLING
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = pool.stats()
        assert (stats.waiting, stats.in_flight) == (0, 0)
        assert counters(stats.token(NAME_A)) == (1, 0, 1, 0, 0)
        assert stats.token(NAME_A).cooldown_left == 9.0
        resp = await pool.get("/x")  # waits out the cooldown, then goes through
        assert (resp.status, now(), seen) == (200, 10.0, 2)


async def test_cancelling_inside_a_stream_block_releases_the_lease() -> None:
    inside = asyncio.Event()

    async def consume(pool: TokenPool, url: str) -> None:
        async with pool.stream("GET", url):
            inside.set()
            await asyncio.sleep(3600)

    async with MockAPI({A: Limit(10)}) as api, TokenPool([A]) as pool:
        task = asyncio.create_task(consume(pool, f"{api.url}/x"))
        await inside.wait()
        assert pool.stats().in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = pool.stats()
        assert (stats.in_flight, stats.waiting) == (0, 0)
        assert counters(stats.token(NAME_A)) == (1, 1, 0, 0, 0)  # the response was fine
        assert (await pool.get(f"{api.url}/x")).status == 200
