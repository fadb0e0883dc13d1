"""What responses tell the pool about their token: rate-limit headers, and user policies.

A 2xx saying nothing remains cools the token until the stated reset, unless the token's
own limiter already holds it about that long (``header_slack``); ``stats()`` shows the
last reading; malformed headers never fail a request. A user policy (sync or async, even
one reading the body) decides first; ``None`` falls back to the default table.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from aurora_async import Limit, Token, TokenPool, TokenState, TokenStats
from aurora_async._core.policy import Outcome, Verdict
from aurora_async.testing import MockAPI, MockTokenStats

from .support import serve

pytestmark = pytest.mark.looptime

A = "sk-live-7Qz9XwP3mK2vR8tY"
B = "sk-live-4Hd8LpQ2nV6cX1wE"
NAME_A, NAME_B = Token(A).name, Token(B).name
ROOMY = Limit(100, per=1, burst=100)


class ByToken:
    """Answers token A with ``status``, ``headers`` and ``body``, every other token with a
    plain 200; counts requests per token."""

    def __init__(
        self, status: int = 200, headers: dict[str, str] | None = None, body: Any = None
    ) -> None:
        self.status = status
        self.headers = headers or {}
        self.body = {"ok": True} if body is None else body
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append(token)
        if token == A:
            return web.json_response(self.body, status=self.status, headers=self.headers)
        return web.json_response({"ok": True, "other": True})


def counters(stats: TokenStats) -> tuple[int, int, int, int, int]:
    return (stats.leases, stats.ok, stats.rate_limited, stats.errors, stats.in_flight)


def state(stats: TokenStats) -> tuple[TokenState, float]:
    return (stats.state, stats.cooldown_left)


# -- rate-limit headers on a 2xx ---------------------------------------------------------


async def test_a_2xx_saying_nothing_remains_cools_the_token_until_the_reset(clock: Any) -> None:
    server = ByToken(
        headers={
            "X-RateLimit-Limit": "60",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": "30",
        }
    )
    async with serve(server.handle) as url, TokenPool([A, B], limits=ROOMY) as pool:
        now = clock()
        resp = await pool.get(f"{url}/x")
        assert resp.status == 200  # fine: returned, not retried
        assert server.seen == [A]
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 1, 0, 0, 0)
        assert state(a) == (TokenState.COOLING, 30.0)
        assert (a.last_limit, a.last_remaining, a.last_reset) == (60.0, 0.0, 30.0)

        for _ in range(3):  # meanwhile B serves
            await pool.get(f"{url}/y")
        assert server.seen == [A, B, B, B]

        await asyncio.sleep(30)
        assert state(pool.stats().token(NAME_A)) == (TokenState.ACTIVE, 0.0)
        pool.disable(NAME_B)
        await pool.get(f"{url}/z")
        assert (server.seen[-1], now()) == (A, 30.0)


@pytest.mark.parametrize(
    ("headers", "cooldown"),
    [
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "45"}, 45.0),  # delta seconds
        ({"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": "45"}, 45.0),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "45"}, 45.0),
        ({"RateLimit": "limit=100, remaining=0, reset=45"}, 45.0),
        ({"RateLimit": '"default";r=0;t=45', "RateLimit-Policy": '"default";q=100;w=60'}, 45.0),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "45s"}, 45.0),
        ({"X-RateLimit-Remaining": "0"}, 0.0),  # no reset stated: nothing to cool until
        ({"X-RateLimit-Remaining": "1", "X-RateLimit-Reset-After": "45"}, 0.0),  # not spent
    ],
    ids=[
        "x-ratelimit",
        "x-rate-limit",
        "ietf-separate",
        "ietf-draft-07",
        "ietf-draft-08",
        "openai",
        "no-reset",
        "remaining-1",
    ],
)
async def test_header_families_that_say_nothing_remains(
    headers: dict[str, str], cooldown: float
) -> None:
    server = ByToken(headers=headers)
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY) as pool:
        assert (await pool.get(f"{url}/x")).status == 200
        a = pool.stats().token(NAME_A)
        expected = TokenState.COOLING if cooldown else TokenState.ACTIVE
        assert state(a) == (expected, cooldown)
        assert counters(a) == (1, 1, 0, 0, 0)


async def test_a_reset_that_matches_the_limiters_own_pacing_does_not_cool(clock: Any) -> None:
    # One request per 2 s: after a request the limiter itself holds the token for 2 s.
    server = ByToken(headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2"})
    async with serve(server.handle) as url, TokenPool([A], limits=Limit(1, per=2)) as pool:
        now = clock()
        with capture_logs() as logs:
            await pool.get(f"{url}/x")
            a = pool.stats().token(NAME_A)
            assert state(a) == (TokenState.ACTIVE, 0.0)
            assert (a.last_remaining, a.last_reset) == (0.0, 2.0)
            await pool.get(f"{url}/x")  # paced by the limiter alone
            assert now() == 2.0
        assert [e for e in logs if e["event"] == "aurora.token.cooling"] == []


@pytest.mark.parametrize(
    ("reset", "slack", "cooldown"),
    [
        ("2.04", 0.05, 0.0),  # within the default slack of the limiter's own 2 s
        ("2.1", 0.05, 2.1),  # beyond it: cool until the reset
        ("2.9", 1.0, 0.0),  # a wider slack tolerates more
        ("3.5", 1.0, 3.5),
        ("2", 0.0, 0.0),  # exactly the limiter's own pacing, even with no slack
    ],
)
async def test_header_slack_decides_whether_a_reset_cools(
    reset: str, slack: float, cooldown: float, clock: Any
) -> None:
    server = ByToken(headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": reset})
    pool = TokenPool([A], limits=Limit(1, per=2), header_slack=slack)
    async with serve(server.handle) as url, pool:
        now = clock()
        await pool.get(f"{url}/x")
        a = pool.stats().token(NAME_A)
        expected = TokenState.COOLING if cooldown else TokenState.ACTIVE
        assert state(a) == (expected, cooldown)
        await pool.get(f"{url}/x")
        assert now() == max(2.0, cooldown)


async def test_mockapi_at_full_speed_never_cools_a_token_through_headers(clock: Any) -> None:
    # A leaky bucket used at full speed says "Remaining: 0" after nearly every request,
    # with the next unit exactly when the pool's own limiter allows it anyway. (Declared
    # exactly, burst included: a calibrating pool takes the server's bucket size and
    # next-unit reset as confirming it, and changes nothing.)
    limit = Limit(2, per=1, burst=2)
    async with (
        MockAPI({A: limit}, tolerance=0) as api,
        TokenPool([A], limits=limit, base_url=api.url) as pool,
    ):
        now = clock()
        with capture_logs() as logs:
            statuses = [(await pool.get(f"/items/{i}")).status for i in range(10)]
        assert statuses == [200] * 10
        assert now() == 4.0  # a burst of 2, then one every 0.5 s
        assert api.stats(A) == MockTokenStats(requests=10, ok=10)
        a = pool.stats().token(NAME_A)
        assert (a.last_limit, a.last_remaining, a.last_reset) == (2.0, 0.0, 0.5)
        assert state(a) == (TokenState.ACTIVE, 0.0)
        assert [e for e in logs if e["event"] == "aurora.token.cooling"] == []


async def test_stats_show_the_last_reading_and_keep_it_when_a_response_has_none() -> None:
    answers = [
        {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999"},
        {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4998"},
        {},
    ]

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({}, headers=answers.pop(0))

    async with serve(handler) as url, TokenPool([A], limits=ROOMY) as pool:
        a = pool.stats().token(NAME_A)
        assert (a.last_limit, a.last_remaining, a.last_reset) == (None, None, None)
        await pool.get(f"{url}/x")
        await pool.get(f"{url}/x")
        a = pool.stats().token(NAME_A)
        assert (a.last_limit, a.last_remaining, a.last_reset) == (5000.0, 4998.0, None)
        await pool.get(f"{url}/x")
        a = pool.stats().token(NAME_A)
        assert (a.last_limit, a.last_remaining, a.last_reset) == (5000.0, 4998.0, None)


# -- malformed headers -------------------------------------------------------------------


async def test_malformed_rate_limit_headers_never_fail_a_request() -> None:
    server = ByToken(
        headers={
            "X-RateLimit-Limit": "lots",
            "X-RateLimit-Remaining": "-3",
            "X-RateLimit-Reset-After": "NaN",
            "Retry-After": "soon",
        }
    )
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY) as pool:
        with capture_logs() as logs:
            resp = await pool.get(f"{url}/x")
        assert resp.status == 200
        assert await resp.json() == {"ok": True}
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 1, 0, 0, 0)
        assert state(a) == (TokenState.ACTIVE, 0.0)
        assert (a.last_limit, a.last_remaining, a.last_reset) == (None, None, None)
    ignored = [e for e in logs if e["event"] == "aurora.http.header_ignored"]
    assert ignored == [
        {
            "event": "aurora.http.header_ignored",
            "log_level": "debug",
            "token": NAME_A,
            "header": header,
            "reason": reason,
        }
        for header, reason in [
            # Never the value (it may echo a secret): its length only.
            ("x-ratelimit-reset-after", "not a number (3 chars)"),
            ("x-ratelimit-limit", "not a number (4 chars)"),
            ("x-ratelimit-remaining", "negative number (2 chars)"),
            ("retry-after", "not a number or HTTP date (4 chars)"),
        ]
    ]


async def test_a_429_with_a_malformed_retry_after_falls_back_to_the_backoff(clock: Any) -> None:
    answers = [(429, {"Retry-After": "in a while"}), (200, {})]

    async def handler(request: web.Request) -> web.Response:
        status, headers = answers.pop(0)
        return web.json_response({}, status=status, headers=headers)

    pool = TokenPool([A], limits=ROOMY, backoff=(1.5, 60), calibrate=False)
    async with serve(handler) as url, pool:
        now = clock()
        with capture_logs() as logs:
            resp = await pool.get(f"{url}/x")
        assert (resp.status, now()) == (200, 1.5)
        assert counters(pool.stats().token(NAME_A)) == (2, 1, 1, 0, 0)
    assert [(e["event"], e.get("header")) for e in logs if "header" in e] == [
        ("aurora.http.header_ignored", "retry-after")
    ]


# -- user policies -----------------------------------------------------------------------


def banned_by_header(resp: aiohttp.ClientResponse) -> Outcome | None:
    """A sync policy: this API says a token is banned in a header of a 200."""
    if resp.headers.get("X-Banned") == "yes":
        return Outcome.revoked("banned by the API")
    return None


async def quota_in_body(resp: aiohttp.ClientResponse) -> Outcome | None:
    """An async policy: this API answers 200 with {"error": "quota", "retry_in": N}."""
    body = await resp.json()
    if isinstance(body, dict) and body.get("error") == "quota":
        return Outcome.rate_limited(body["retry_in"])
    return None


async def test_a_sync_policy_overrides_the_default() -> None:
    server = ByToken(headers={"X-Banned": "yes"})
    pool = TokenPool([A, B], limits=ROOMY, policy=banned_by_header)
    async with serve(server.handle) as url, pool:
        resp = await pool.get(f"{url}/x")
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "other": True}
        assert server.seen == [A, B]
        a = pool.stats().token(NAME_A)
        assert (a.state, a.reason) == (TokenState.DISABLED, "banned by the API")


async def test_an_async_policy_reading_the_json_body_overrides_the_default() -> None:
    server = ByToken(body={"error": "quota", "retry_in": 30})
    pool = TokenPool([A, B], limits=ROOMY, policy=quota_in_body)
    async with serve(server.handle) as url, pool:
        resp = await pool.get(f"{url}/x")
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "other": True}  # body still readable
        assert server.seen == [A, B]
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 0, 1, 0, 0)
        assert state(a) == (TokenState.COOLING, 30.0)
        assert counters(pool.stats().token(NAME_B)) == (1, 1, 0, 0, 0)


async def test_a_policy_returning_none_falls_back_to_the_default() -> None:
    calls: list[int] = []

    def observe(resp: aiohttp.ClientResponse) -> None:
        calls.append(resp.status)

    server = ByToken(status=429, headers={"Retry-After": "8"})
    pool = TokenPool([A, B], limits=ROOMY, policy=observe)
    async with serve(server.handle) as url, pool:
        assert (await pool.get(f"{url}/x")).status == 200
        assert calls == [429, 200]
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 0, 1, 0, 0)
        assert state(a) == (TokenState.COOLING, 8.0)


async def test_an_async_policy_returning_none_falls_back_to_the_default() -> None:
    server = ByToken(status=401, body={"error": "invalid_token"})
    pool = TokenPool([A, B], limits=ROOMY, policy=quota_in_body)
    async with serve(server.handle) as url, pool:
        assert (await pool.get(f"{url}/x")).status == 200
        a = pool.stats().token(NAME_A)
        assert (a.state, a.reason) == (TokenState.DISABLED, "HTTP 401 Unauthorized")


async def test_a_policy_can_make_a_5xx_a_client_error_that_is_not_retried() -> None:
    def maintenance_is_final(resp: aiohttp.ClientResponse) -> Outcome | None:
        return Outcome.client_error("maintenance") if resp.status == 503 else None

    server = ByToken(status=503)
    pool = TokenPool([A, B], limits=ROOMY, policy=maintenance_is_final)
    async with serve(server.handle) as url, pool:
        assert (await pool.get(f"{url}/x")).status == 503
        assert server.seen == [A]
        assert counters(pool.stats().token(NAME_A)) == (1, 0, 0, 1, 0)


async def test_a_policy_can_cool_a_token_after_a_fine_response() -> None:
    def last_call_of_the_hour(resp: aiohttp.ClientResponse) -> Outcome:
        return Outcome.ok(cooldown=3600)

    server = ByToken()
    pool = TokenPool([A], limits=ROOMY, policy=last_call_of_the_hour)
    async with serve(server.handle) as url, pool:
        assert (await pool.get(f"{url}/x")).status == 200
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 1, 0, 0, 0)
        assert state(a) == (TokenState.COOLING, 3600.0)


async def test_a_policy_that_raises_propagates_and_leaves_the_pool_consistent() -> None:
    def broken(resp: aiohttp.ClientResponse) -> Outcome:
        raise LookupError("policy bug")

    server = ByToken()
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY, policy=broken) as pool:
        with pytest.raises(LookupError, match="policy bug"):
            await pool.get(f"{url}/x")
        stats = pool.stats()
        assert (stats.in_flight, stats.waiting) == (0, 0)
        assert counters(stats.token(NAME_A)) == (1, 0, 0, 1, 0)
        assert stats.token(NAME_A).state is TokenState.ACTIVE


async def test_a_policy_returning_something_else_is_a_type_error() -> None:
    def wrong(resp: aiohttp.ClientResponse) -> Any:
        return Verdict.OK

    server = ByToken()
    async with serve(server.handle) as url, TokenPool([A], limits=ROOMY, policy=wrong) as pool:
        with pytest.raises(TypeError, match="the policy returned Verdict; it must return"):
            await pool.get(f"{url}/x")
        assert pool.stats().in_flight == 0


# -- the session's own raise_for_status ----------------------------------------------------


async def test_a_borrowed_session_that_raises_for_status_still_gets_accounting() -> None:
    server = ByToken(status=429, headers={"Retry-After": "8"})
    async with (
        serve(server.handle) as url,
        aiohttp.ClientSession(raise_for_status=True) as session,
        TokenPool([A, B], limits=ROOMY, session=session) as pool,
    ):
        resp = await pool.get(f"{url}/x")  # A's 429 raises inside aiohttp; B answers 200
        assert resp.status == 200
        a = pool.stats().token(NAME_A)
        assert counters(a) == (1, 0, 1, 0, 0)
        assert state(a) == (TokenState.COOLING, 8.0)
