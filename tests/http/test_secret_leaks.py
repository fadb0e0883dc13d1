"""Secrets in the less ordinary paths (issue 12): a pool token in the caller's own URL,
a part of a token (8 characters or more) in a reason or echoed by a server's header, and
aiohttp's exceptions (whose ``request_info`` holds ``Authorization: Bearer <token>``)
left reachable from ``RequestFailed`` through ``__context__``.

Every check scans for the whole secret and for each 8-character piece of it (the
redactor masks any run of ``MIN_PART`` = 8 or more characters of a known token)."""

from __future__ import annotations

import socket
import traceback
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from aurora_async import Limit, RequestFailed, TokenPool

from .support import serve

pytestmark = pytest.mark.looptime

S1 = "sk-live-7Qz9XwP3mK2vR8tY5nB1"
S2 = "ghp_R4nd0mT0k3nQwErTyZabcXYZ"
SECRETS = (S1, S2)
ROOMY = Limit(100, per=1, burst=100)
MIN_PART = 8  # the redactor masks runs this long (its MIN_PART)


def leaked(text: str) -> list[str]:
    """Every run of 8 characters of a secret in ``text`` (empty: no leak)."""
    return sorted(
        {
            s[i : i + MIN_PART]
            for s in SECRETS
            for i in range(len(s) - MIN_PART + 1)
            if s[i : i + MIN_PART] in text
        }
    )


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything reachable through ``__cause__`` and ``__context__``."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += (e.__cause__, e.__context__)
    return seen


def shown(exc: BaseException) -> str:
    """All a tool walking the exception could print."""
    parts = ["".join(traceback.format_exception(exc))]
    for e in chain(exc):
        parts += (str(e), repr(e), repr(getattr(e, "request_info", None)))
        parts += (repr(vars(e)) if hasattr(e, "__dict__") else "",)
    return "\n".join(parts)


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def answer(status: int, **headers: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers=headers)

    return handler


# -- a pool token in the caller's URL -----------------------------------------------------


async def test_a_token_in_the_url_is_masked_in_errors_and_logs_after_transport_errors() -> None:
    url = f"{closed_port()}/x?key={S1}"
    async with TokenPool([S1, S2], limits=ROOMY, retry_backoff=(0, 0)) as pool:
        with capture_logs() as logs, pytest.raises(RequestFailed) as caught:
            await pool.get(url)
    error = caught.value
    assert error.url == url.replace(S1, pool.stats().tokens[0].name)
    events = [e["event"] for e in logs]
    assert events.count("aurora.http.transport_error") == 4
    assert leaked(error.url) == []
    assert leaked(shown(error)) == []
    assert leaked(repr(logs)) == []


async def test_a_token_in_the_url_is_masked_after_retries_and_raise_for_status() -> None:
    async with serve(await answer(503)) as base, TokenPool([S1, S2], limits=ROOMY) as pool:
        url = f"{base}/x?key={S2}&other=1"
        with capture_logs() as logs, pytest.raises(RequestFailed) as caught:
            await pool.get(url, raise_for_status=True, retry_backoff=(0, 0))
        assert [e["event"] for e in logs].count("aurora.http.retry") == 3
        with pytest.raises(RequestFailed) as streamed:
            async with pool.stream("GET", url, raise_for_status=True, max_attempts=1):
                pass
        name = pool.stats().tokens[1].name
    for error in (caught.value, streamed.value):
        assert error.url == f"{base}/x?key={name}&other=1"
        assert leaked(shown(error)) == []
    assert leaked(repr(logs)) == []


# -- parts of a token ------------------------------------------------------------------------


async def test_a_part_of_a_token_in_a_reason_is_masked_in_stats_and_logs() -> None:
    async with TokenPool([S1, S2], limits=ROOMY) as pool:
        n1, n2 = (t.name for t in pool.stats().tokens)
        with capture_logs() as logs:
            async with pool.lease() as lease:
                lease.revoked(f"the key {lease.token[:12]} was revoked")  # a truncated key
            pool.disable(n2 if lease.name == n1 else n1, f"leaked as ...{S2[9:17]}...")
        reasons = sorted(str(t.reason) for t in pool.stats().tokens)
        assert reasons == [f"leaked as ...{n2}...", f"the key {n1} was revoked"]
        assert leaked(repr(pool.stats())) == []
        assert leaked(repr(logs)) == []
        disabled = [e for e in logs if e["event"] == "aurora.token.disabled"]
        assert sorted(e["reason"] for e in disabled) == reasons


async def test_a_server_echoing_the_key_in_a_header_is_not_logged() -> None:
    handler = await answer(200, **{"X-RateLimit-Remaining": f"bad key {S1}"})
    async with serve(handler) as url, TokenPool([S1], limits=ROOMY) as pool:
        with capture_logs() as logs:
            assert (await pool.get(url)).status == 200
    ignored = [e for e in logs if e["event"] == "aurora.http.header_ignored"]
    assert [(e["header"], e["reason"]) for e in ignored] == [
        ("x-ratelimit-remaining", "not a number (36 chars)")
    ]
    assert leaked(repr(logs)) == []


# -- aiohttp's exceptions behind RequestFailed ----------------------------------------------


async def test_a_refused_request_keeps_no_aiohttp_exception_reachable() -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/again{request.path}")

    async with serve(loop) as url, TokenPool([S1], limits=ROOMY) as pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(url, max_redirects=2)  # TooManyRedirects: refused
    assert caught.value.why == "the request was refused"
    assert chain(caught.value) == [caught.value]
    assert leaked(shown(caught.value)) == []


async def test_a_transport_failure_keeps_no_aiohttp_exception_reachable() -> None:
    async with TokenPool([S1], limits=ROOMY) as pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(closed_port(), max_attempts=1)
    assert chain(caught.value) == [caught.value]
    assert leaked(shown(caught.value)) == []


async def test_an_unread_body_keeps_no_aiohttp_exception_reachable() -> None:
    async def short(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"x")
        request.transport.close()  # type: ignore[union-attr]
        return resp

    async with serve(short) as url, TokenPool([S1], limits=ROOMY) as pool:
        with pytest.raises(RequestFailed) as caught:
            await pool.get(url)
    assert caught.value.why == "the response body could not be read"
    assert chain(caught.value) == [caught.value]
    assert leaked(shown(caught.value)) == []


async def test_a_truncated_key_is_masked_among_many_sharing_its_prefix() -> None:
    """With 20 tokens sharing ``sk-live-``, a truncated key (the prefix and 4 more
    characters) is still found through its own characters."""
    tokens = [f"sk-live-{i:02d}Qz9XwP3mK2vR8tY5nB{i:02d}" for i in range(20)]
    async with TokenPool(tokens, limits=ROOMY) as pool:
        name = pool.stats().tokens[7].name
        pool.disable(name, f"revoked: {tokens[7][:12]}")
        assert pool.stats().tokens[7].reason == f"revoked: {name}"
