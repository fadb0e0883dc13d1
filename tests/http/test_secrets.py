"""Secrets stay secret through ``pool.request``, whatever happens and wherever the token goes.

For every way of sending the token, requests meet a 200 (with rate-limit headers, one of
them malformed), a 429, a 5xx, a refused connection, a 401 and finally no token left.
Everything the library shows about them is collected: log events (through structlog, and
through the standard-library fallback when structlog is not configured), exception
messages and reprs, ``RequestFailed.attempts``, ``repr(pool)`` and ``pool.stats()``. No
secret, nor any 9 characters of one in a row, may appear in any of it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from aurora_async import (
    AuroraError,
    Limit,
    NoTokensAvailable,
    RequestFailed,
    Token,
    TokenPool,
    TokenState,
)
from aurora_async._core.policy import Outcome
from aurora_async._http.auth import BearerAuth, HeaderAuth, QueryAuth

from .support import serve

pytestmark = pytest.mark.looptime

SECRETS = (
    "sk-live-7Qz9XwP3mK2vR8tY5nB1",
    "ghp_R4nd0mT0k3nQwErTy+abc/XYZ=",  # characters a query string must encode
    "xoxb-1234567890-AbCdEfGhIjKl",
    "tok_9f8e7d6c5b4a39281706fedc",
)
WINDOW = 9  # no run of this many characters of a secret may show


def in_custom_header(
    token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
) -> None:
    headers["X-Custom"] = token


AUTHS: dict[str, Any] = {
    "bearer-default": None,
    "bearer-custom": BearerAuth(header="X-Token", scheme="Token"),
    "header": HeaderAuth("X-API-Key"),
    "query": QueryAuth("api_key"),
    "function": in_custom_header,
}


def leaked(text: str) -> list[str]:
    """Every run of ``WINDOW`` characters of a secret found in ``text``."""
    return sorted(
        {
            secret[i : i + WINDOW]
            for secret in SECRETS
            for i in range(len(secret) - WINDOW + 1)
            if secret[i : i + WINDOW] in text
        }
    )


async def test_the_leak_check_finds_what_it_should() -> None:
    assert leaked(f"x {SECRETS[0]} y") != []
    assert leaked(SECRETS[1][3:12]) == [SECRETS[1][3:12]]
    assert leaked(" ".join(Token(s).name for s in SECRETS)) == []


@contextmanager
def refused_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def carried_token(request: web.Request) -> str | None:
    """The token, wherever this request carries it."""
    for header, scheme in (
        ("Authorization", "Bearer "),
        ("X-Token", "Token "),
        ("X-API-Key", ""),
        ("X-Custom", ""),
    ):
        value = request.headers.get(header)
        if value is not None and value.startswith(scheme):
            return value.removeprefix(scheme)
    return request.query.get("api_key")


async def by_path(request: web.Request) -> web.Response:
    """``/ok`` 200, ``/limited`` 429, ``/error`` 503, ``/dead`` 401; a request without one
    of the known tokens is a test failure (a 400 the test checks for)."""
    if carried_token(request) not in SECRETS:
        return web.json_response({"error": "no token"}, status=400)
    if request.path == "/ok":
        headers = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "42",
            "X-RateLimit-Reset-After": "not-a-number",
        }
        return web.json_response({"ok": True}, headers=headers)
    if request.path == "/limited":
        return web.json_response({}, status=429, headers={"Retry-After": "0.5"})
    if request.path == "/error":
        return web.json_response({}, status=503)
    return web.json_response(
        {"error": "invalid_token"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def describe(exc: BaseException) -> list[str]:
    texts = [str(exc), repr(exc)]
    if isinstance(exc, RequestFailed):
        texts += [*exc.attempts, exc.why, exc.url, exc.method]
    return texts


async def exercise(auth: Any) -> list[str]:
    """Run every outcome once with ``auth``; return what the library showed about them."""
    shown: list[str] = []
    options = {} if auth is None else {"auth": auth}
    pool = TokenPool(SECRETS, limits=Limit(100, per=1), max_attempts=2, **options)
    async with serve(by_path) as url, pool:
        shown.append(repr(pool))

        for _ in range(3):
            resp = await pool.get(f"{url}/ok")
            assert resp.status == 200
        async with pool.lease() as lease:
            shown += [repr(lease), lease.name]

        assert (await pool.get(f"{url}/limited")).status == 429
        shown.append(repr(pool.stats()))
        await asyncio.sleep(1)

        assert (await pool.get(f"{url}/error")).status == 503
        assert (await pool.post(f"{url}/error", json={"n": 1})).status == 503

        with refused_url() as refused:
            with pytest.raises(RequestFailed) as caught:
                await pool.get(f"{refused}/x")
            shown += describe(caught.value)
            with pytest.raises(RequestFailed) as caught:
                await pool.post(f"{refused}/x", data=b"payload")
            shown += describe(caught.value)

        shown.append(repr(pool.stats()))
        # Each 401 disables a token and retries once (max_attempts=2) on another.
        assert (await pool.get(f"{url}/dead")).status == 401
        assert (await pool.get(f"{url}/dead")).status == 401
        with pytest.raises(NoTokensAvailable) as no_tokens:
            await pool.get(f"{url}/dead")
        shown += describe(no_tokens.value)

        stats = pool.stats()
        assert [t.state for t in stats.tokens] == [TokenState.DISABLED] * len(SECRETS)
        assert [t.reason for t in stats.tokens] == ["HTTP 401 Unauthorized"] * len(SECRETS)
        assert sum(t.ok for t in stats.tokens) == 4  # 3 GETs and the bare lease
        assert sum(t.rate_limited for t in stats.tokens) == 2
        shown += [repr(stats), str(stats), *(repr(t) for t in stats.tokens), repr(pool)]
    shown.append(repr(pool))
    return shown


@pytest.mark.parametrize("auth", list(AUTHS.values()), ids=list(AUTHS))
async def test_no_secret_in_structlog_events_errors_or_stats(auth: Any) -> None:
    with capture_logs() as logs:
        shown = await exercise(auth)
    events = {e["event"] for e in logs}
    # The run went through every path worth looking at.
    assert {
        "aurora.http.header_ignored",
        "aurora.http.retry",
        "aurora.http.transport_error",
        "aurora.token.cooling",
        "aurora.token.disabled",
    } <= events
    assert leaked("\n".join([*shown, *map(repr, logs)])) == []


@pytest.mark.parametrize("auth", list(AUTHS.values()), ids=list(AUTHS))
async def test_no_secret_in_the_standard_logging_fallback(
    auth: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="aurora_async"):
        shown = await exercise(auth)
    text = caplog.text
    assert "aurora.http.header_ignored" in text
    assert "aurora.token.disabled" in text
    messages = [record.getMessage() for record in caplog.records]
    assert leaked("\n".join([*shown, text, *messages])) == []


async def test_a_policy_reason_quoting_the_token_is_masked() -> None:
    def blame_the_header(resp: aiohttp.ClientResponse) -> Outcome | None:
        if resp.status == 401:
            sent = resp.request_info.headers["Authorization"]
            return Outcome.revoked(f"server rejected {sent!r}")
        return None

    secret, name = SECRETS[0], Token(SECRETS[0]).name
    pool = TokenPool([secret], policy=blame_the_header)
    with capture_logs() as logs:
        async with serve(by_path) as url, pool:
            with pytest.raises(NoTokensAvailable):
                await pool.get(f"{url}/dead")
            stats = pool.stats().token(name)
    assert stats.reason == f"server rejected 'Bearer {name}'"
    disabled = [e for e in logs if e["event"] == "aurora.token.disabled"]
    assert disabled == [
        {
            "event": "aurora.token.disabled",
            "log_level": "warning",
            "token": name,
            "reason": f"server rejected 'Bearer {name}'",
        }
    ]
    assert leaked(repr(stats) + repr(logs)) == []


async def test_a_transport_error_quoting_the_url_is_masked_for_a_url_safe_token() -> None:
    async def loop_forever(request: web.Request) -> web.Response:
        raise web.HTTPFound("/again")

    secret = SECRETS[0]  # nothing in it needs percent-encoding
    pool = TokenPool([secret], auth=QueryAuth("api_key"), max_attempts=1)
    async with serve(loop_forever) as url, pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(f"{url}/x")
    assert "TooManyRedirects" in caught.value.attempts[0]
    assert f"api_key={Token(secret).name}" in caught.value.attempts[0]
    assert leaked("\n".join(describe(caught.value))) == []


async def test_a_transport_error_quoting_the_url_is_masked_for_any_token() -> None:
    async def loop_forever(request: web.Request) -> web.Response:
        raise web.HTTPFound("/again")

    pool = TokenPool([SECRETS[1]], auth=QueryAuth("api_key"), max_attempts=1)
    async with serve(loop_forever) as url, pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(f"{url}/x")
    assert "TooManyRedirects" in caught.value.attempts[0]
    assert leaked("\n".join(describe(caught.value))) == []


async def test_errors_raised_on_purpose_are_aurora_errors() -> None:
    with refused_url() as url:
        async with TokenPool([SECRETS[0]], max_attempts=1) as pool:
            with pytest.raises(AuroraError):
                await pool.get(url)
