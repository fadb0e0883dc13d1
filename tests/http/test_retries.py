"""``pool.request`` outcomes that retry: 429, 403 rate limits, 401, 5xx, transport errors.

The default table (DESIGN.md, "HTTP outcomes"): a 429 (or a 403 with ``Retry-After`` or
nothing remaining) cools the token and retries on another; a 401 disables the token and
retries; a 5xx or a connection error is retried with backoff up to ``max_attempts``, then
returned or raised; a POST is retried only when the failure certainly came before the
server acted. Servers run on loopback, on virtual time, so every duration is exact.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aurora_async import (
    Limit,
    NoTokensAvailable,
    RequestFailed,
    Token,
    TokenPool,
    TokenState,
    TokenStats,
)
from aurora_async.testing import MockAPI, MockTokenStats

from .support import Handler, serve

pytestmark = pytest.mark.looptime

A = "sk-live-7Qz9XwP3mK2vR8tY"
B = "sk-live-4Hd8LpQ2nV6cX1wE"
C = "sk-live-9Tg2JkM5sW3qZ7aF"
NAME_A, NAME_B, NAME_C = Token(A).name, Token(B).name, Token(C).name
ROOMY = Limit(100, per=1, burst=100)  # the pool never paces these tests


@contextmanager
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


class Scripted:
    """A handler that answers by token: ``answers[token]`` is a list of (status, headers)
    served in turn (the last one repeats); it records what arrived, and when."""

    def __init__(self, answers: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, float]] = []  # (token, method, loop time)

    def count(self, token: str) -> int:
        return sum(1 for t, _, _ in self.seen if t == token)

    def times(self) -> list[float]:
        return [round(t, 6) for _, _, t in self.seen]

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        n = self.count(token)
        self.seen.append((token, request.method, asyncio.get_running_loop().time()))
        script = self.answers.get(token, [(200, {})])
        status, headers = script[min(n, len(script) - 1)]
        return web.json_response({"status": status, "n": n}, status=status, headers=headers)


def counters(stats: TokenStats) -> tuple[int, int, int, int, int]:
    return (stats.leases, stats.ok, stats.rate_limited, stats.errors, stats.in_flight)


OK: tuple[int, dict[str, str]] = (200, {})


# -- 429 -----------------------------------------------------------------------------------


async def test_429_cools_the_token_for_retry_after_and_retries_on_another(clock: Any) -> None:
    server = Scripted({A: [(429, {"Retry-After": "7"})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 0.0)
        assert [t for t, _, _ in server.seen] == [A, B]

        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 0, 1, 0, 0)
        assert (a.state, a.cooldown_left) == (TokenState.COOLING, 7.0)
        assert counters(pool.stats().token(NAME_B)) == (1, 1, 0, 0, 0)

        await asyncio.sleep(6.5)
        assert pool.stats().token(NAME_A).cooldown_left == 0.5
        await asyncio.sleep(0.5)
        a = pool.stats().token(NAME_A)
        assert (a.state, a.cooldown_left) == (TokenState.ACTIVE, 0.0)


async def test_429_on_the_only_token_retries_when_the_cooldown_ends(clock: Any) -> None:
    server = Scripted({A: [(429, {"Retry-After": "7"}), OK]})
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY) as pool:
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 7.0)
        assert server.times() == [0.0, 7.0]
        assert counters(pool.stats().token(NAME_A)) == (2, 1, 1, 0, 0)


async def test_429_from_mockapi_cools_exactly_its_retry_after(clock: Any) -> None:
    # The server allows A one request per 10 s; the pool thinks A may go much faster.
    async with (
        MockAPI({A: Limit(1, per=10), B: ROOMY}, tolerance=0) as api,
        TokenPool([A, B], limits=ROOMY, base_url=api.url, calibrate=False) as pool,
    ):
        now = clock()
        async with aiohttp.ClientSession() as session:  # spend A's request elsewhere
            headers = {"Authorization": f"Bearer {A}"}
            async with session.get(f"{api.url}/outside", headers=headers) as r:
                assert r.status == 200
        await asyncio.sleep(4)
        resp = await pool.get("/items/1")
        assert resp.status == 200
        assert (await resp.json())["token"] == NAME_B
        assert api.stats(A) == MockTokenStats(requests=2, ok=1, rate_limited=1)
        a = pool.stats().token(NAME_A)
        assert (a.state, a.cooldown_left, a.rate_limited) == (TokenState.COOLING, 6.0, 1)
        await asyncio.sleep(6)
        pool.disable(NAME_B)
        resp = await pool.get("/items/2")
        assert ((await resp.json())["token"], now()) == (NAME_A, 10.0)
        assert api.stats(A) == MockTokenStats(requests=3, ok=2, rate_limited=1)


async def test_429_with_retry_after_as_an_http_date() -> None:
    # An HTTP date is read against the wall clock (whole seconds), so only bounds are exact.
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    server = Scripted({A: [(429, {"Retry-After": when})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        assert (await pool.get(f"{url}/x")).status == 200
        a = pool.stats().token(NAME_A)
        assert a.state is TokenState.COOLING
        assert 58.0 < a.cooldown_left <= 60.0


async def test_429_without_retry_after_backs_off_doubling(clock: Any) -> None:
    server = Scripted({A: [(429, {}), (429, {}), OK]})
    async with (
        serve(server.handle) as url,
        TokenPool([A], limits=ROOMY, backoff=(1.0, 60.0), calibrate=False) as pool,
    ):
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 3.0)
        assert server.times() == [0.0, 1.0, 3.0]
        assert counters(pool.stats().token(NAME_A)) == (3, 1, 2, 0, 0)


async def test_429_without_retry_after_cools_until_the_stated_reset(clock: Any) -> None:
    limited = (429, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "12"})
    server = Scripted({A: [limited, OK]})
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY) as pool:
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 12.0)


async def test_429_on_the_last_attempt_is_returned_to_the_caller() -> None:
    server = Scripted({A: [(429, {"Retry-After": "5"})], B: [(429, {"Retry-After": "9"})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY, max_attempts=2) as pool:
        resp = await pool.get(f"{url}/x")
        assert resp.status == 429
        assert await resp.json() == {"status": 429, "n": 0}
        assert [t for t, _, _ in server.seen] == [A, B]
        stats = pool.stats()
        assert [(t.state, t.cooldown_left) for t in stats.tokens] == [
            (TokenState.COOLING, 5.0),
            (TokenState.COOLING, 9.0),
        ]
        assert [t.rate_limited for t in stats.tokens] == [1, 1]


async def test_429_is_retried_for_post_too() -> None:
    server = Scripted({A: [(429, {"Retry-After": "3"})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        resp = await pool.post(f"{url}/x", json={"n": 1})
        assert resp.status == 200
        assert [(t, m) for t, m, _ in server.seen] == [(A, "POST"), (B, "POST")]


# -- 403 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "cooldown"),
    [
        ({"Retry-After": "60"}, 60.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "20"}, 20.0),
        # no reset known: the pool decides. Calibrating (the default), the first refusal
        # of a token fresh from idle halves its burst and rests it one unit: 1 / 100 s
        ({"X-RateLimit-Remaining": "0"}, 0.01),
    ],
    ids=["retry-after", "remaining-0-with-reset", "remaining-0"],
)
async def test_403_that_says_rate_limit_cools_and_retries(
    headers: dict[str, str], cooldown: float
) -> None:
    server = Scripted({A: [(403, headers)]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        resp = await pool.get(f"{url}/x")
        assert resp.status == 200
        assert [t for t, _, _ in server.seen] == [A, B]
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 0, 1, 0, 0)
        assert (a.state, a.cooldown_left, a.reason) == (TokenState.COOLING, cooldown, None)


async def test_plain_403_is_returned_and_nothing_is_disabled() -> None:
    server = Scripted({A: [(403, {})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        resp = await pool.get(f"{url}/x")
        assert resp.status == 403
        assert await resp.json() == {"status": 403, "n": 0}
        assert server.count(A) == 1
        assert server.count(B) == 0
        stats = pool.stats()
        a = stats.token(NAME_A)
        assert counters(a) == (1, 0, 0, 1, 0)
        assert (a.state, a.cooldown_left, a.reason) == (TokenState.ACTIVE, 0.0, None)
        assert (stats.active, stats.cooling, stats.disabled) == (2, 0, 0)


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_is_returned_without_retry(status: int) -> None:
    server = Scripted({A: [(status, {})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        resp = await pool.post(f"{url}/x")
        assert resp.status == status
        assert len(server.seen) == 1
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 0, 0, 1, 0)
        # The server took the token (it judged the request, not the token).
        assert (a.state, a.proven) == (TokenState.ACTIVE, True)


# -- 401 -----------------------------------------------------------------------------------


async def test_401_disables_the_token_after_one_request_and_retries() -> None:
    async with (
        MockAPI({B: ROOMY}, revoked=[A]) as api,
        TokenPool([A, B], limits=ROOMY, base_url=api.url) as pool,
    ):
        resp = await pool.get("/items/1")
        assert resp.status == 200
        assert (await resp.json())["token"] == NAME_B
        assert api.stats(A) == MockTokenStats(requests=1, unauthorized=1)
        assert api.stats(B) == MockTokenStats(requests=1, ok=1)
        a = pool.stats().token(NAME_A)
        assert (a.state, a.reason) == (TokenState.DISABLED, "HTTP 401 Unauthorized")
        assert counters(a) == (1, 0, 0, 1, 0)  # the revoked lease counts as an error
        for _ in range(5):
            assert (await pool.get("/items/2")).status == 200
        assert api.stats(A).requests == 1


async def test_401_is_retried_for_post_too() -> None:
    async with (
        MockAPI({B: ROOMY}, revoked=[A]) as api,
        TokenPool([A, B], limits=ROOMY, base_url=api.url) as pool,
    ):
        resp = await pool.post("/items", json={"n": 1})
        assert resp.status == 200
        assert (await resp.json())["method"] == "POST"
        assert api.stats(A) == MockTokenStats(requests=1, unauthorized=1)


async def test_401_on_the_only_token_raises_no_tokens_available() -> None:
    async with (
        MockAPI(revoked=[A]) as api,
        TokenPool([A], limits=ROOMY, base_url=api.url) as pool,
    ):
        with pytest.raises(NoTokensAvailable, match="every token is disabled or removed"):
            await pool.get("/items/1")
        assert api.stats(A) == MockTokenStats(requests=1, unauthorized=1)
        assert pool.stats().in_flight == 0


async def test_each_revoked_token_gets_exactly_one_request_under_concurrency() -> None:
    good = [f"sk-good-Xq7Lm2Pz-{i:04d}" for i in range(3)]
    revoked = [f"sk-dead-Vb9Nk4Wr-{i:04d}" for i in range(5)]
    async with (
        MockAPI(dict.fromkeys(good, ROOMY), revoked=revoked) as api,
        TokenPool([*revoked, *good], limits=ROOMY, base_url=api.url) as pool,
    ):
        responses = await asyncio.gather(*(pool.get(f"/items/{i}") for i in range(50)))
        assert [r.status for r in responses] == [200] * 50
        for token in revoked:
            # The trial cap: an unproven token carries one request, so a dead one costs one.
            assert api.stats(token) == MockTokenStats(requests=1, unauthorized=1)
        stats = pool.stats()
        assert sum(api.stats(t).ok for t in good) == 50
        assert api.totals == MockTokenStats(requests=55, ok=50, unauthorized=5)
        assert (stats.active, stats.disabled, stats.in_flight, stats.waiting) == (3, 5, 0, 0)
        for token in revoked:
            dead = stats.token(Token(token).name)
            assert (dead.state, dead.reason, dead.leases) == (
                TokenState.DISABLED,
                "HTTP 401 Unauthorized",
                1,
            )
        assert sum(stats.token(Token(t).name).ok for t in good) == 50


# -- 5xx -----------------------------------------------------------------------------------


async def test_5xx_is_retried_with_backoff_then_the_last_response_is_returned(
    clock: Any,
) -> None:
    server = Scripted({A: [(503, {})], B: [(503, {})]})
    pool = TokenPool([A, B], limits=ROOMY, max_attempts=4, retry_backoff=(0.5, 0.75))
    async with serve(server.handle) as url, pool:
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert resp.status == 503
        assert await resp.json() == {"status": 503, "n": 1}
        assert now() == 2.0
        assert server.times() == [0.0, 0.5, 1.25, 2.0]  # backoff 0.5, then capped at 0.75
        stats = pool.stats()
        assert server.count(A) + server.count(B) == 4
        assert sum(t.errors for t in stats.tokens) == 4
        assert sum(t.ok for t in stats.tokens) == 0
        assert (stats.active, stats.in_flight) == (2, 0)


async def test_a_5xx_is_retried_on_another_token_even_one_with_less_headroom() -> None:
    # A has far more headroom than B, so a plain lease would pick A again every time.
    server = Scripted({A: [(503, {})], B: [OK]})
    pool = TokenPool(
        [Token(A, limits=Limit(100, per=1, burst=100)), Token(B, limits=Limit(2, per=1, burst=2))]
    )
    async with serve(server.handle) as url, pool:
        resp = await pool.get(f"{url}/x")
        assert resp.status == 200
        assert [t for t, _, _ in server.seen] == [A, B]
        resp = await pool.get(f"{url}/y")  # and again: A first (most headroom), then B
        assert resp.status == 200
        assert [t for t, _, _ in server.seen] == [A, B, A, B]
        assert counters(pool.stats().token(NAME_A)) == (2, 0, 0, 2, 0)
        assert counters(pool.stats().token(NAME_B)) == (2, 2, 0, 0, 0)


async def test_a_retry_goes_back_to_the_same_token_when_no_other_can_fire_now(
    clock: Any,
) -> None:
    server = Scripted({A: [(503, {}), OK]})
    pool = TokenPool(
        [Token(A, limits=Limit(100, per=1, burst=100)), Token(B, limits=Limit(0.1, burst=1))]
    )
    async with serve(server.handle) as url, pool:
        async with pool.lease() as first, pool.lease() as second:
            # A (most headroom), then B (A carries one lease until proven): B has spent
            # its only unit for ten seconds.
            assert (first.name, second.name) == (NAME_A, NAME_B)
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 0.05)  # after the backoff, on A again
        assert [t for t, _, _ in server.seen] == [A, A]


async def test_a_connection_error_is_retried_on_another_token() -> None:
    with refused_url() as url:
        pool = TokenPool(
            [
                Token(A, limits=Limit(100, per=1, burst=100)),
                Token(B, limits=Limit(2, per=1, burst=2)),
            ]
        )
        async with pool:
            with pytest.raises(RequestFailed) as caught:
                await pool.get(f"{url}/x")
            # The attempts alternate: never the same token twice in a row.
            names = [line.split(":")[0] for line in caught.value.attempts]
            assert names == [NAME_A, NAME_B, NAME_A, NAME_B]


async def test_a_5xx_then_success_returns_the_success(clock: Any) -> None:
    server = Scripted({A: [(502, {}), OK]})
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY) as pool:
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 0.05)  # the default first backoff
        assert counters(pool.stats().token(NAME_A)) == (2, 1, 0, 1, 0)


async def test_max_attempts_one_returns_the_first_5xx() -> None:
    server = Scripted({A: [(500, {})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY, max_attempts=1) as pool:
        assert (await pool.get(f"{url}/x")).status == 500
        assert len(server.seen) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_5xx_on_a_non_idempotent_method_is_not_retried(method: str) -> None:
    server = Scripted({A: [(503, {})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        resp = await pool.request(method, f"{url}/x", json={"n": 1})
        assert resp.status == 503
        assert [(t, m) for t, m, _ in server.seen] == [(A, method)]
        assert counters(pool.stats().token(NAME_A)) == (1, 0, 0, 1, 0)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_5xx_on_an_idempotent_method_is_retried(method: str) -> None:
    server = Scripted({A: [(503, {})]})
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        resp = await pool.request(method, f"{url}/x")
        assert resp.status == 200
        assert [(t, m) for t, m, _ in server.seen] == [(A, method), (B, method)]


async def test_retry_unsafe_retries_post_on_5xx() -> None:
    server = Scripted({A: [(503, {})], B: [(503, {})]})
    pool = TokenPool([A, B], limits=ROOMY, retry_unsafe=True, max_attempts=3)
    async with serve(server.handle) as url, pool:
        resp = await pool.post(f"{url}/x", json={"n": 1})
        assert resp.status == 503
        assert len(server.seen) == 3
        assert {m for _, m, _ in server.seen} == {"POST"}


# -- transport errors ------------------------------------------------------------------------


async def test_connection_refused_raises_request_failed_naming_each_attempt(
    clock: Any,
) -> None:
    with refused_url() as url:
        pool = TokenPool([A], limits=ROOMY, max_attempts=3, retry_backoff=(0.25, 2.0))
        async with pool:
            now = clock()
            with pytest.raises(RequestFailed) as caught:
                await pool.get(f"{url}/x")
            assert now() == 0.75  # backoff 0.25 then 0.5
            stats = pool.stats().token(NAME_A)
            assert counters(stats) == (3, 0, 0, 3, 0)
            assert stats.state is TokenState.ACTIVE
    err = caught.value
    assert (err.method, err.url) == ("GET", f"{url}/x")
    assert err.why == "the last attempt failed with ClientConnectorError"
    assert len(err.attempts) == 3
    for attempt in err.attempts:
        assert attempt.startswith(f"{NAME_A}: ClientConnectorError(")
    assert str(err).startswith(
        f"GET {url}/x failed after 3 attempt(s) "
        "(the last attempt failed with ClientConnectorError); tried: "
    )


async def test_connection_refused_is_retried_for_post_on_other_tokens() -> None:
    with refused_url() as url:
        async with TokenPool([A, B, C], limits=ROOMY, max_attempts=3) as pool:
            with pytest.raises(RequestFailed) as caught:
                await pool.post(f"{url}/x", json={"n": 1})
            stats = pool.stats()
            assert sum(t.errors for t in stats.tokens) == 3
    names = sorted(a.split(":")[0] for a in caught.value.attempts)
    assert names == sorted([NAME_A, NAME_B, NAME_C])


async def test_deadline_bounds_retries_after_connection_errors(clock: Any) -> None:
    with refused_url() as url:
        pool = TokenPool([A], limits=ROOMY, max_attempts=10, deadline=1.0, retry_backoff=(0.4, 10))
        async with pool:
            now = clock()
            with pytest.raises(RequestFailed) as caught:
                await pool.get(f"{url}/x")
            assert now() == 1.0
    # Attempts at 0, 0.4 and, after a pause cut to the deadline, 1.0.
    assert len(caught.value.attempts) == 3


async def test_deadline_bounds_the_wait_for_a_cooling_token(clock: Any) -> None:
    server = Scripted({A: [(429, {"Retry-After": "10"})]})
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY, deadline=5) as pool:
        now = clock()
        with pytest.raises(RequestFailed) as caught:
            await pool.get(f"{url}/x")
        assert now() == 5.0
        assert caught.value.why == "no token came free for another attempt in time"
        assert caught.value.attempts == (f"{NAME_A}: 429",)
        assert len(server.seen) == 1
        stats = pool.stats()
        assert (stats.waiting, stats.in_flight) == (0, 0)


async def test_lease_timeout_bounds_the_wait_for_another_attempt(clock: Any) -> None:
    server = Scripted({A: [(429, {"Retry-After": "10"})]})
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY) as pool:
        now = clock()
        with pytest.raises(RequestFailed, match="no token came free") as caught:
            await pool.get(f"{url}/x", lease_timeout=2)
        assert now() == 2.0
        assert caught.value.attempts == (f"{NAME_A}: 429",)


async def test_deadline_bounds_a_slow_attempt(clock: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response({"ok": True})

    async with serve(slow) as url, TokenPool([A], limits=ROOMY, deadline=2) as pool:
        now = clock()
        with pytest.raises((RequestFailed, TimeoutError)):
            await pool.get(f"{url}/x")
        assert now() <= 2.0


def closing_handler() -> tuple[Handler, list[str]]:
    """A server that drops the connection without answering."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        request.transport.close()  # type: ignore[union-attr]
        return web.json_response({})

    return handler, seen


async def test_a_dropped_connection_is_retried_for_get() -> None:
    handler, seen = closing_handler()
    async with serve(handler) as url, TokenPool([A, B], limits=ROOMY, max_attempts=2) as pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(f"{url}/x")
        # Two attempts by the pool; aiohttp itself resends an idempotent request once
        # when the server disconnects (RFC 9112, section 9.3.1.1), so the server saw four.
        assert len(caught.value.attempts) == 2
        assert seen == ["GET"] * 4
        assert caught.value.why == "the last attempt failed with ServerDisconnectedError"
        assert sum(t.errors for t in pool.stats().tokens) == 2


async def test_a_dropped_connection_is_not_retried_for_post() -> None:
    handler, seen = closing_handler()
    async with serve(handler) as url, TokenPool([A, B], limits=ROOMY) as pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.post(f"{url}/x", json={"n": 1})
        assert seen == ["POST"]
        assert caught.value.attempts == (f"{NAME_A}: ServerDisconnectedError(Server disconnected)",)
        assert caught.value.why == (
            "ServerDisconnectedError after the request may have reached the server; a "
            "non-idempotent request is not retried then (pass retry_unsafe=True to allow it)"
        )


async def test_a_dropped_connection_is_retried_for_post_with_retry_unsafe() -> None:
    handler, seen = closing_handler()
    pool = TokenPool([A, B], limits=ROOMY, max_attempts=3, retry_unsafe=True)
    async with serve(handler) as url, pool:
        with pytest.raises(RequestFailed):
            await pool.post(f"{url}/x", json={"n": 1})
        assert seen == ["POST"] * 3
