"""``aurora_async.testing.MockAPI``: a real server on loopback, a real aiohttp client.

Tests marked ``looptime`` run on virtual time: ``asyncio.sleep`` returns at once while
``loop.time()`` advances exactly, and loopback I/O completes before the clock moves, so
the server's decisions and ``Retry-After`` values can be asserted exactly. The server is
started inside such tests (looptime only runs the test body on virtual time). Tests on
real time make no timing assumptions: their limits are per hour, so the milliseconds a
test takes drain nothing that matters.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

import aurora_async.testing
from aurora_async import Limit, Token
from aurora_async._core.tokens import mask
from aurora_async.testing import MockAPI, MockTokenStats
from aurora_async.testing._bucket import Bucket

TOKEN = "sk-alpha-secret-0001"
OTHER = "sk-bravo-secret-0002"
HOURLY = Limit(5, per=3600)  # for real-time tests: nothing drains while they run
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Reset",
)


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: dict[str, Any]
    text: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    session: aiohttp.ClientSession,
    path: str = "/items/1",
    *,
    token: str | None = TOKEN,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Reply:
    sent = bearer(token) if token is not None else {}
    sent.update(headers or {})
    async with session.request(method, path, headers=sent, **kwargs) as resp:
        text = await resp.text()
        return Reply(resp.status, resp.headers, json.loads(text), text)


@asynccontextmanager
async def serve(*args: Any, **kwargs: Any) -> AsyncIterator[tuple[MockAPI, aiohttp.ClientSession]]:
    async with (
        MockAPI(*args, **kwargs) as api,
        aiohttp.ClientSession(base_url=api.url) as session,
    ):
        yield api, session


def now() -> float:
    return asyncio.get_running_loop().time()


# -- admitted requests ------------------------------------------------------------------


@pytest.mark.looptime
async def test_ok_response_body_and_rate_limit_headers() -> None:
    async with serve({TOKEN: Limit(5, per=1)}, tolerance=0) as (api, session):
        before = time.time()
        reply = await call(session, "/items/1?page=2")
        after = time.time()
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body == {"ok": True, "token": mask(TOKEN), "path": "/items/1", "method": "GET"}
    assert reply.headers["X-RateLimit-Limit"] == "5"
    assert reply.headers["X-RateLimit-Remaining"] == "4"
    assert reply.headers["X-RateLimit-Reset-After"] == "0.200"
    reset = int(reply.headers["X-RateLimit-Reset"])
    assert math.ceil(before + 0.2) <= reset <= math.ceil(after + 0.2)
    assert api.stats(TOKEN) == MockTokenStats(requests=1, ok=1)


@pytest.mark.looptime
async def test_exactly_the_burst_is_admitted_and_retry_after_is_exact() -> None:
    async with serve({TOKEN: Limit(5, per=1)}, tolerance=0) as (api, session):
        start = now()
        replies = [await call(session) for _ in range(8)]
        assert [r.status for r in replies] == [200] * 5 + [429] * 3
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == [
            *"43210",
            *"000",
        ]
        # Each time, the next whole unit frees in one interval (not when the bucket empties).
        assert [r.headers["X-RateLimit-Reset-After"] for r in replies[:5]] == ["0.200"] * 5
        for rejected in replies[5:]:
            # The 6th unit fits once one unit has drained: 1 / (5 per second) = 0.2 s.
            assert rejected.headers["Retry-After"] == "0.200"
            assert rejected.headers["X-RateLimit-Limit"] == "5"
            assert rejected.headers["X-RateLimit-Reset-After"] == "0.200"
            assert rejected.body == {"error": "rate_limited", "token": mask(TOKEN)}
        assert api.stats(TOKEN) == MockTokenStats(requests=8, ok=5, rate_limited=3)
        assert api.admitted_times(TOKEN) == [start] * 5

        # The three rejections charged nothing: 1 ms early is still too early, on time fits.
        await asyncio.sleep(0.199)
        early = await call(session)
        assert (early.status, early.headers["Retry-After"]) == (429, "0.001")
        await asyncio.sleep(0.001)
        assert (await call(session)).status == 200
        assert (await call(session)).status == 429
        assert api.admitted_times(TOKEN)[-1] == pytest.approx(start + 0.2, abs=1e-9)


@pytest.mark.looptime
async def test_a_request_must_fit_every_limit_and_the_binding_one_shows() -> None:
    limits = [Limit(3, per=1), Limit(5, per=60)]
    async with serve({TOKEN: limits}, tolerance=0) as (api, session):
        first = [await call(session) for _ in range(4)]
        assert [r.status for r in first] == [200, 200, 200, 429]
        assert first[2].headers["X-RateLimit-Limit"] == "3"
        assert first[3].headers["Retry-After"] == "0.334"  # 1/3 s, rounded up to the ms

        await asyncio.sleep(1)  # the 3/s bucket is empty again; the 5/min one holds 2.92
        second = [await call(session) for _ in range(3)]
        assert [r.status for r in second] == [200, 200, 429]
        # After the 5th unit the per-minute window binds: 0 left, the next unit frees in
        # 11 s (empty in 59 s, one unit drains every 12 s).
        assert second[1].headers["X-RateLimit-Limit"] == "5"
        assert second[1].headers["X-RateLimit-Remaining"] == "0"
        assert second[1].headers["X-RateLimit-Reset-After"] == "11.000"
        # The 3/s window has room now; the per-minute one needs 12 - 1 = 11 more seconds.
        assert second[2].headers["X-RateLimit-Limit"] == "5"
        assert second[2].headers["Retry-After"] == "11.000"

        await asyncio.sleep(11)
        assert (await call(session)).status == 200
        assert api.stats(TOKEN) == MockTokenStats(requests=8, ok=6, rate_limited=2)


@pytest.mark.looptime
@pytest.mark.parametrize(("tolerance", "second"), [(0.0, 429), (0.005, 200)])
async def test_tolerance_admits_a_request_that_would_fit_that_much_later(
    tolerance: float, second: int
) -> None:
    async with serve({TOKEN: Limit(1, per=1)}, tolerance=tolerance) as (_, session):
        assert (await call(session)).status == 200
        await asyncio.sleep(0.996)  # arrives 4 ms early
        reply = await call(session)
        assert reply.status == second
        if second == 429:
            assert reply.headers["Retry-After"] == "0.004"  # nominal, without tolerance
        else:
            # Forgiving 4 ms does not raise the rate: the next slot is still 1 s later.
            await asyncio.sleep(0.99)
            late = await call(session)
            assert (late.status, late.headers["Retry-After"]) == (429, "0.014")


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("mode", "limit", "expected"),
    [
        ("float", Limit(2, per=3), "1.500"),
        ("int", Limit(2, per=3), "2"),
        ("int", Limit(1, per=2), "2"),  # exactly 2 s stays 2, despite float noise
        ("float", Limit(3, per=1), "0.334"),
        ("int", Limit(3, per=1), "1"),
    ],
)
async def test_retry_after_as_float_or_whole_seconds(
    mode: Any, limit: Limit, expected: str
) -> None:
    async with serve({TOKEN: limit}, tolerance=0, retry_after=mode) as (_, session):
        replies = [await call(session) for _ in range(int(limit.burst) + 1)]
    assert replies[-1].status == 429
    assert replies[-1].headers["Retry-After"] == expected


async def test_rate_limit_headers_can_be_turned_off() -> None:
    async with serve({TOKEN: Limit(1, per=3600)}, rate_limit_headers=False) as (_, session):
        ok, limited = await call(session), await call(session)
    assert (ok.status, limited.status) == (200, 429)
    for reply in (ok, limited):
        assert not any(name in reply.headers for name in RATE_HEADERS)
    assert float(limited.headers["Retry-After"]) > 3599


# -- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "missing credentials"),
        ({"Authorization": "Bearer sk-unknown-token-9999"}, "unknown token"),
        ({"Authorization": "Basic c2stYWxwaGE6"}, "malformed"),
        ({"Authorization": "Bearer"}, "malformed"),
        ({"Authorization": "Bearer two tokens"}, "malformed"),
        ({"Authorization": f"Token {TOKEN}"}, "malformed"),
        ({"Authorization": f"Bearer\t{TOKEN}"}, "malformed"),
    ],
)
async def test_401_for_missing_unknown_or_malformed_credentials(
    headers: dict[str, str], why: str
) -> None:
    async with serve({TOKEN: HOURLY}) as (api, session):
        reply = await call(session, token=None, headers=headers)
        assert reply.status == 401
        assert reply.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert reply.body["error"] == "invalid_token"
        assert why in reply.body["error_description"]
        assert not any(name in reply.headers for name in RATE_HEADERS)
        assert api.totals == MockTokenStats(requests=1, unauthorized=1)
        assert api.stats(TOKEN) == MockTokenStats()


async def test_the_bearer_scheme_is_case_insensitive() -> None:
    async with serve([TOKEN]) as (_, session):
        reply = await call(session, token=None, headers={"Authorization": f"bearer  {TOKEN}"})
    assert reply.status == 200


async def test_revoked_tokens_get_401_and_can_be_revoked_and_restored_at_run_time() -> None:
    async with serve({TOKEN: HOURLY}, revoked=[OTHER]) as (api, session):
        reply = await call(session, token=OTHER)
        assert reply.status == 401
        assert reply.body["error_description"] == f"token {mask(OTHER)} is revoked"
        assert api.stats(OTHER) == MockTokenStats(requests=1, unauthorized=1)

        assert (await call(session)).status == 200
        api.revoke(TOKEN)
        assert (await call(session)).status == 401
        assert (await call(session, "/whoami")).status == 401
        api.restore(TOKEN)
        reply = await call(session)
        assert reply.status == 200
        assert reply.headers["X-RateLimit-Remaining"] == "3"  # its bucket was kept
        assert api.stats(TOKEN) == MockTokenStats(requests=4, ok=2, unauthorized=2)

        api.restore(OTHER)  # revoked at construction, never listed: default limits
        assert (await call(session, token=OTHER)).headers["X-RateLimit-Limit"] == "10"


async def test_revoking_an_unknown_token_makes_it_known_even_with_accept_unknown() -> None:
    async with serve(accept_unknown=True) as (api, session):
        api.revoke(TOKEN)
        assert (await call(session)).status == 401
        assert api.stats(TOKEN).unauthorized == 1
        with pytest.raises(KeyError, match="does not know token"):
            api.restore(OTHER)


async def test_tokens_can_be_added_at_run_time() -> None:
    async with serve() as (api, session):
        assert (await call(session)).status == 401
        api.add_token(TOKEN, Limit(1, per=3600))
        assert [(await call(session)).status for _ in range(2)] == [200, 429]
        api.add_token(OTHER)
        assert (await call(session, token=OTHER)).headers["X-RateLimit-Limit"] == "10"
        with pytest.raises(ValueError, match="already known"):
            api.add_token(TOKEN)
        assert api.totals == MockTokenStats(requests=4, ok=2, rate_limited=1, unauthorized=1)


async def test_unknown_tokens_can_be_accepted_under_the_default_limit() -> None:
    async with serve(accept_unknown=True, default_limit=Limit(2, per=3600)) as (api, session):
        statuses = [(await call(session, token=OTHER)).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert api.all_stats() == {mask(OTHER): MockTokenStats(requests=3, ok=2, rate_limited=1)}


async def test_accepting_unknown_tokens_still_rejects_impossible_ones() -> None:
    async with serve(accept_unknown=True, auth="header") as (api, session):
        reply = await call(session, token=None, headers={"X-API-Key": "two words"})
        assert reply.status == 401
        assert reply.body["error_description"] == "unknown token"
        assert api.all_stats() == {}


async def test_header_auth_mode() -> None:
    async with serve({TOKEN: HOURLY}, auth="header") as (_, session):
        assert (await call(session, token=None, headers={"X-API-Key": TOKEN})).status == 200
        missing = await call(session)  # a bearer header is not what this server reads
        assert missing.status == 401
        assert missing.body["error_description"] == (
            "missing credentials: send the token in the header 'X-API-Key'"
        )
    async with serve({TOKEN: HOURLY}, auth="header", auth_name="X-Token") as (_, session):
        assert (await call(session, token=None, headers={"X-Token": TOKEN})).status == 200


async def test_query_auth_mode() -> None:
    async with serve({TOKEN: HOURLY}, auth="query") as (_, session):
        reply = await call(session, "/search?q=x", token=None, params={"api_key": TOKEN})
        assert reply.status == 200
        assert reply.body["path"] == "/search"
        missing = await call(session, "/search")
        assert missing.status == 401
        assert "query parameter 'api_key'" in missing.body["error_description"]
        empty = await call(session, "/search", token=None, params={"api_key": ""})
        assert empty.status == 401


# -- routes -------------------------------------------------------------------------------


async def test_any_method_on_any_path_is_echoed_with_the_body_size() -> None:
    payload = json.dumps({"query": "aurora", "page": 2}).encode()
    big = b"x" * (3 * 1024 * 1024)  # beyond aiohttp's 1 MiB client_max_size for read()
    async with serve({TOKEN: HOURLY}) as (_, session):
        post = await call(session, "/v1/search", method="POST", data=payload)
        delete = await call(session, "/v1/items/7", method="DELETE")
        upload = await call(session, "/v1/upload", method="PUT", data=io.BytesIO(big))
    assert upload.body["body_bytes"] == len(big)
    assert post.body == {
        "ok": True,
        "token": mask(TOKEN),
        "path": "/v1/search",
        "method": "POST",
        "body_bytes": len(payload),
    }
    assert delete.body == {
        "ok": True,
        "token": mask(TOKEN),
        "path": "/v1/items/7",
        "method": "DELETE",
    }


async def test_whoami_answers_the_masked_name_and_counts_like_any_request() -> None:
    async with serve({TOKEN: Limit(2, per=3600)}) as (api, session):
        assert (await call(session, "/whoami")).body == {"token": mask(TOKEN)}
        posted = await call(session, "/whoami", method="POST")
        assert posted.body["path"] == "/whoami"
        assert (await call(session, "/whoami")).status == 429
        assert (await call(session, "/whoami", token=OTHER)).status == 401
        assert api.stats(TOKEN) == MockTokenStats(requests=3, ok=2, rate_limited=1)


# -- errors, latency, slowness ------------------------------------------------------------


async def test_error_rate_one_answers_503_to_every_admitted_request() -> None:
    async with serve({TOKEN: Limit(3, per=3600)}, error_rate=1.0) as (api, session):
        replies = [await call(session) for _ in range(4)]
        assert [r.status for r in replies] == [503, 503, 503, 429]  # 503s still consume
        assert replies[0].body == {"error": "unavailable", "token": mask(TOKEN)}
        assert replies[2].headers["X-RateLimit-Remaining"] == "0"
        assert api.stats(TOKEN) == MockTokenStats(requests=4, rate_limited=1, server_errors=3)
        assert len(api.admitted_times(TOKEN)) == 3


async def test_error_rate_zero_never_answers_503() -> None:
    async with serve({TOKEN: Limit(300, per=3600)}, error_rate=0.0) as (api, session):
        statuses = {(await call(session)).status for _ in range(300)}
        assert statuses == {200}
        assert api.totals == MockTokenStats(requests=300, ok=300)


async def test_errors_are_drawn_from_the_seed() -> None:
    async def statuses(seed: int | None) -> list[int]:
        async with serve({TOKEN: Limit(40, per=3600)}, error_rate=0.5, seed=seed) as (_, s):
            return [(await call(s)).status for _ in range(40)]

    first, again = await statuses(7), await statuses(7)
    assert first == again
    assert set(first) == {200, 503}
    assert set(await statuses(None)) <= {200, 503}


@pytest.mark.looptime
async def test_latency_delays_every_response_but_not_the_decision() -> None:
    async with serve({TOKEN: Limit(2, per=1)}, latency=0.25, tolerance=0) as (api, session):
        start = now()
        replies = []
        for _ in range(3):
            replies.append(await call(session))
        assert [r.status for r in replies] == [200, 200, 200]  # 0.5 s: one unit drained
        assert now() - start == pytest.approx(0.75, abs=1e-9)
        assert [t - start for t in api.admitted_times(TOKEN)] == pytest.approx(
            [0.0, 0.25, 0.5], abs=1e-9
        )
        assert replies[2].headers["X-RateLimit-Remaining"] == "0"
        assert api.totals.slow == 0


@pytest.mark.looptime
async def test_a_seeded_share_of_responses_is_slow() -> None:
    async with serve(
        {TOKEN: Limit(1000, per=1)}, latency=0.1, slow_rate=0.3, slow_latency=2.0, seed=3
    ) as (api, session):
        took = []
        for _ in range(40):
            start = now()
            assert (await call(session)).status == 200
            took.append(round(now() - start, 6))
        assert set(took) == {0.1, 2.0}
        assert api.stats(TOKEN).slow == took.count(2.0)
        # Requests with no known token can be slow too; they count in the totals.
        for _ in range(10):
            start = now()
            assert (await call(session, token=OTHER)).status == 401
            took.append(round(now() - start, 6))
        assert api.totals.slow == took.count(2.0) > api.stats(TOKEN).slow


@pytest.mark.looptime
async def test_slow_rate_one_makes_every_response_slow() -> None:
    async with serve([TOKEN], slow_rate=1.0, slow_latency=3.5) as (api, session):
        start = now()
        await asyncio.gather(*(call(session) for _ in range(5)))
        assert now() - start == pytest.approx(3.5, abs=1e-9)
        assert api.stats(TOKEN) == MockTokenStats(requests=5, ok=5, slow=5)


@pytest.mark.looptime
async def test_close_answers_delayed_requests_at_once() -> None:
    api = MockAPI([TOKEN], latency=3600)
    await api.start()
    async with aiohttp.ClientSession(base_url=api.url) as session:
        pending = asyncio.ensure_future(call(session))
        await asyncio.sleep(1)  # virtual: the request is in, waiting out its hour
        assert api.totals.requests == 1
        start = now()
        await api.close()
        assert now() == start
        assert (await pending).status == 200


# -- books ----------------------------------------------------------------------------------


async def test_totals_count_requests_without_a_known_token_and_reset_keeps_limits() -> None:
    async with serve({TOKEN: Limit(1, per=3600)}, revoked=[OTHER]) as (api, session):
        for token in (TOKEN, TOKEN, OTHER, "sk-unknown-token-9999", None):
            await call(session, token=token)
        assert api.totals == MockTokenStats(requests=5, ok=1, rate_limited=1, unauthorized=3)
        assert api.all_stats() == {
            mask(TOKEN): MockTokenStats(requests=2, ok=1, rate_limited=1),
            mask(OTHER): MockTokenStats(requests=1, unauthorized=1),
        }
        api.reset_stats()
        assert api.totals == MockTokenStats()
        assert api.admitted_times(TOKEN) == []
        assert (await call(session)).status == 429  # the bucket is not reset


def test_stats_of_an_unknown_token_is_a_key_error_naming_it_masked() -> None:
    api = MockAPI([TOKEN])
    for method in (api.stats, api.admitted_times):
        with pytest.raises(KeyError, match="does not know token") as caught:
            method(OTHER)
        assert OTHER not in str(caught.value)
        assert mask(OTHER) in str(caught.value)


def test_secrets_that_mask_alike_keep_separate_books() -> None:
    first, second = "sk-aXXXXXXXX9f2c", "sk-aYYYYYYYY9f2c"
    api = MockAPI([first, second])
    assert list(api.all_stats()) == ["sk-a…9f2c", "sk-a…9f2c#2"]


def test_tokens_as_mapping_list_or_token_objects() -> None:
    default = Limit(7, per=60)
    mapped = MockAPI({TOKEN: None, OTHER: [Limit(1), Limit(9, per=60)]}, default_limit=default)
    listed = MockAPI([Token(TOKEN, limits=Limit(4)), OTHER], default_limit=[default])
    for api in (mapped, listed):
        assert set(api.all_stats()) == {mask(TOKEN), mask(OTHER)}
    assert mapped._tokens[TOKEN].bucket.limits == (default,)
    assert mapped._tokens[OTHER].bucket.limits == (Limit(1), Limit(9, per=60))
    assert listed._tokens[TOKEN].bucket.limits == (Limit(4),)
    assert listed._tokens[OTHER].bucket.limits == (default,)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tokens": TOKEN}, TypeError, "not one str"),
        ({"revoked": TOKEN}, TypeError, "not one str"),
        ({"tokens": [TOKEN, TOKEN]}, ValueError, "listed twice"),
        ({"tokens": ["has space"]}, ValueError, "white space"),
        ({"tokens": [42]}, TypeError, "str or Token"),
        ({"tokens": {TOKEN: ["3/s"]}}, TypeError, "Limit objects"),
        ({"default_limit": []}, ValueError, "at least one Limit"),
        ({"default_limit": ["3/s"]}, TypeError, "must be Limit objects"),
        ({"default_limit": Limit(1, burst=0.5)}, ValueError, "burst must be at least 1"),
        ({"tokens": {TOKEN: Limit(3, burst=0.5)}}, ValueError, "burst must be at least 1"),
        ({"tolerance": -0.001}, ValueError, "tolerance"),
        ({"latency": math.nan}, ValueError, "latency"),
        ({"slow_latency": math.inf}, ValueError, "slow_latency"),
        ({"error_rate": 1.5}, ValueError, "error_rate"),
        ({"slow_rate": -0.1}, ValueError, "slow_rate"),
        ({"retry_after": "http-date"}, ValueError, "retry_after"),
        ({"auth": "basic"}, ValueError, "auth"),
    ],
)
def test_invalid_arguments_are_refused_at_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        MockAPI(**kwargs)
    assert TOKEN not in str(caught.value)


# -- life cycle -------------------------------------------------------------------------------


async def test_url_exists_only_while_running_and_a_mock_serves_once() -> None:
    api = MockAPI([TOKEN])
    with pytest.raises(RuntimeError, match=r"not started.*async with MockAPI"):
        _ = api.url
    assert repr(api) == f"<MockAPI not started, 1 token: [{mask(TOKEN)}]>"
    await api.start()
    try:
        assert api.url.startswith("http://127.0.0.1:")
        assert int(api.url.rsplit(":", 1)[1]) > 0
        with pytest.raises(RuntimeError, match="already running"):
            await api.start()
    finally:
        await api.close()
    await api.close()
    with pytest.raises(RuntimeError, match="closed"):
        _ = api.url
    with pytest.raises(RuntimeError, match="already closed; create a new MockAPI"):
        await api.start()


async def test_a_busy_port_fails_start_cleanly() -> None:
    async with MockAPI() as first:
        port = int(first.url.rsplit(":", 1)[1])
        second = MockAPI(port=port)
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        with pytest.raises(RuntimeError, match="not started"):
            _ = second.url


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_hosts_are_bracketed_in_the_url() -> None:
    async with serve([TOKEN], host="::1") as (api, session):
        assert api.url.startswith("http://[::1]:")
        assert (await call(session)).status == 200


async def test_an_unclosed_mock_warns() -> None:
    api = MockAPI()
    await api.start()
    try:
        with pytest.warns(ResourceWarning, match="unclosed <MockAPI http://127.0.0.1:"):
            api.__del__()
    finally:
        await api.close()
    api.__del__()  # closed: silent


# -- secrets ---------------------------------------------------------------------------------


async def test_no_secret_in_repr_stats_bodies_headers_or_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [f"sk-live-secret-{n:04d}" for n in range(7)]
    unknown = "sk-unknown-secret-7777"
    seen: list[str] = []
    for auth in ("bearer", "query"):
        api = MockAPI(
            {s: Limit(1, per=3600) for s in secrets[:6]},
            revoked=[secrets[6]],
            auth=auth,
            error_rate=0.5,
        )
        async with api, aiohttp.ClientSession(base_url=api.url) as session:
            for secret in [*secrets, secrets[0], unknown]:
                for path in ("/items", "/whoami"):
                    if auth == "bearer":
                        reply = await call(session, path, token=secret)
                    else:
                        reply = await call(session, path, token=None, params={"api_key": secret})
                    seen += [reply.text, *reply.headers.values()]
            seen += [repr(api), str(api.all_stats()), str(api.totals)]
        seen.append(repr(api))
    assert "+2 more" in seen[-1]
    bodies = [json.loads(text) for text in seen if text.startswith('{"')]
    assert {body.get("token") for body in bodies} >= {mask(s) for s in secrets[:6]}
    captured = capsys.readouterr()
    haystack = "\n".join([*seen, caplog.text, captured.out, captured.err])
    for secret in [*secrets, unknown]:
        assert secret not in haystack
        assert secret[4:-4] not in haystack


# -- exports -----------------------------------------------------------------------------------


def test_public_names_are_exported_sorted() -> None:
    exported = aurora_async.testing.__all__
    assert exported == sorted(exported)
    assert exported == [
        "FixedWindow",
        "GitHubApi",
        "IetfRateLimit",
        "LeakyBucket",
        "LlmApi",
        "MockAPI",
        "MockTokenStats",
        "NginxLimitReq",
        "Profile",
    ]
    public = {n for n in vars(aurora_async.testing) if not n.startswith("_")}
    assert public == set(exported)


# -- the bucket arithmetic, on explicit times ---------------------------------------------------


def test_bucket_fresh_burst_then_one_unit_per_interval() -> None:
    bucket = Bucket([Limit(2, per=1)])
    assert [bucket.take(10.0).admitted for _ in range(3)] == [True, True, False]
    rejected = bucket.take(10.25)
    assert not rejected.admitted
    assert rejected.retry_after == pytest.approx(0.25)
    assert rejected.reset_after == pytest.approx(0.25)  # when it would fit
    admitted = bucket.take(10.5)
    assert admitted.admitted
    assert admitted.remaining == 0
    assert admitted.reset_after == pytest.approx(0.5)  # the next unit, not "empty at 11.5"


def test_bucket_survives_time_going_backwards() -> None:
    bucket = Bucket([Limit(1, per=1)])
    assert bucket.take(100.0).admitted
    verdict = bucket.take(50.0)
    assert not verdict.admitted
    assert verdict.retry_after == pytest.approx(51.0)


def test_bucket_admits_with_tolerance_beyond_the_burst_but_reports_zero_left() -> None:
    bucket = Bucket([Limit(1, per=1)])
    assert bucket.take(0.0, tolerance=0.01).admitted
    verdict = bucket.take(0.995, tolerance=0.01)
    assert verdict.admitted
    assert verdict.remaining == 0
    assert verdict.reset_after == pytest.approx(1.005)


def test_bucket_ties_on_remaining_bind_the_window_that_empties_last() -> None:
    short, long = Limit(2, per=1), Limit(2, per=60)
    verdict = Bucket([short, long]).take(0.0)
    assert (verdict.limit, verdict.remaining) == (long, 1)
    assert verdict.reset_after == pytest.approx(30.0)


def test_bucket_needs_limits() -> None:
    with pytest.raises(ValueError, match="at least one Limit"):
        Bucket([])


limits_strategy = st.builds(
    Limit,
    rate=st.integers(1, 20),
    per=st.sampled_from([0.25, 1.0, 3.0, 60.0]),
    burst=st.integers(1, 8),
)
gaps_strategy = st.lists(
    st.floats(0, 2, allow_nan=False).map(lambda g: round(g, 6)), min_size=1, max_size=80
)


@given(
    limits=st.lists(limits_strategy, min_size=1, max_size=3),
    gaps=gaps_strategy,
    tolerance=st.sampled_from([0.0, 0.001, 0.005, 0.3]),
)
def test_bucket_never_admits_more_than_burst_plus_rate_times_interval_plus_tolerance(
    limits: list[Limit], gaps: list[float], tolerance: float
) -> None:
    bucket = Bucket(limits)
    times, at = [], 1000.0
    for gap in gaps:
        at += gap
        verdict = bucket.take(at, tolerance)
        assert verdict.admitted == (verdict.retry_after == 0.0)
        if verdict.admitted:
            times.append(at)
        else:
            assert verdict.retry_after > tolerance
            assert verdict.remaining == 0
    for limit in limits:
        for i, first in enumerate(times):
            for j in range(i, len(times)):
                span = times[j] - first
                assert j - i + 1 <= limit.burst + limit.per_second * (span + tolerance) + 1e-6


@given(limits=st.lists(limits_strategy, min_size=1, max_size=3), gaps=gaps_strategy)
def test_bucket_rejections_charge_nothing_and_retry_after_is_exact(
    limits: list[Limit], gaps: list[float]
) -> None:
    bucket, twin = Bucket(limits), Bucket(limits)
    at = 0.0
    for gap in gaps:
        at += gap
        verdict = bucket.take(at)
        if verdict.admitted:
            assert twin.take(at) == verdict  # the twin never saw the rejections
        else:
            assert verdict.retry_after > 0
            if verdict.retry_after > 0.001:
                assert not bucket.take(at + verdict.retry_after - 0.001).admitted
            assert bucket.take(at + verdict.retry_after).admitted
            assert twin.take(at + verdict.retry_after).admitted
            at += verdict.retry_after


@pytest.mark.looptime
async def test_an_exhausted_token_is_answered_429_until_its_time_is_up() -> None:
    async with serve({TOKEN: Limit(5, per=1)}, tolerance=0) as (api, session):
        api.exhaust(TOKEN, 3.0)
        first = await call(session)
        assert (first.status, first.headers["Retry-After"]) == (429, "3.000")
        await asyncio.sleep(2.5)
        assert (await call(session)).headers["Retry-After"] == "0.500"
        await asyncio.sleep(0.5)
        assert (await call(session)).status == 200  # and the bucket was never charged
        assert api.stats(TOKEN) == MockTokenStats(requests=3, ok=1, rate_limited=2)
