"""The straight lane of ``pool.request`` (a request without keyword arguments: one lease,
one send, no accounting for a plain answer) behaves exactly as the general loop.

Each scenario runs twice on fresh servers and pools: once through the straight lane
(``pool.get(url)``) and once through the general loop (``pool.get(url, max_attempts=n)``
with the pool's own ``n``: a keyword argument that changes nothing but the lane). What
the caller gets (status and body, or the exception with its attempts), what the server
saw and when (virtual time, relative to the start), and every token's counters must be
the same; and the lanes must really differ (the general loop is entered only where the
straight lane hands a request over: after a failed or retried first attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aurora_async import Limit, Outcome, RequestFailed, Token, TokenPool
from aurora_async._http import client as client_module
from aurora_async._http.client import HttpClient

from .support import serve

pytestmark = pytest.mark.looptime

A = "sk-live-straight-0000000001"
B = "sk-live-straight-0000000002"
C = "sk-live-straight-0000000003"
NAMES = {Token(t).name: t for t in (A, B, C)}
ROOMY = Limit(100, per=1, burst=100)  # the pool never paces these tests


@dataclass
class Server:
    """Answers by token and by how many requests that token sent before: ``script``
    gets (token, n, request) and returns the response (or raises, or cuts)."""

    script: Callable[[str, int, web.Request], Awaitable[web.StreamResponse]]
    seen: list[tuple[str, str, float]] = field(default_factory=list)  # token, path, time
    start: float = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        n = sum(1 for t, _, _ in self.seen if t == token)
        now = asyncio.get_running_loop().time() - self.start
        self.seen.append((token, request.path, round(now, 6)))
        return await self.script(token, n, request)


def json(status: int = 200, **headers: str) -> web.Response:
    return web.json_response({"status": status}, status=status, headers=headers)


async def cut(request: web.Request, status: int = 200) -> web.StreamResponse:
    """Headers saying 100 bytes, then 10 and a closed connection: the body cannot be read."""
    resp = web.StreamResponse(status=status, headers={"Content-Length": "100"})
    await resp.prepare(request)
    await resp.write(b"only ten b")
    request.transport.close()  # type: ignore[union-attr]
    return resp


async def hang_up(request: web.Request) -> web.StreamResponse:
    """No answer at all: the connection closes (aiohttp: ServerDisconnectedError)."""
    request.transport.close()  # type: ignore[union-attr]
    await asyncio.sleep(1)
    return json()


async def plain(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json()


async def exhausted(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json(200, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "30"})


async def first_token_429(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json(429, **{"Retry-After": "2"}) if token == A else json()


async def first_token_401(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json(401) if token == A else json()


async def always_500(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json(500)


async def not_found(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json(404)


async def first_hangs_up(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return await hang_up(request) if token == A else json()


async def always_hangs_up(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return await hang_up(request)


async def loops(token: str, n: int, request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(request.path)  # to itself, until aiohttp gives up


async def cut_body(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return await cut(request)


async def cut_500(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return await cut(request, 500)


async def quota_header(token: str, n: int, request: web.Request) -> web.StreamResponse:
    return json(200, **{"X-Quota": "gone"}) if token == A else json()


def quota_policy(resp: aiohttp.ClientResponse) -> Outcome | None:
    return Outcome.rate_limited(5) if resp.headers.get("X-Quota") == "gone" else None


async def quota_policy_awaited(resp: aiohttp.ClientResponse) -> Outcome | None:
    await asyncio.sleep(0.5)
    return quota_policy(resp)


def broken_policy(resp: aiohttp.ClientResponse) -> Outcome | None:
    raise ValueError("a broken policy")


SCENARIOS: dict[str, tuple[Any, dict[str, Any], list[bool]]] = {
    # name: (script, pool options, what the straight lane hands to the general loop)
    "plain 200": (plain, {}, []),
    "200, nothing remaining": (exhausted, {}, []),
    "429, then another token": (first_token_429, {}, [True]),
    "401, then another token": (first_token_401, {}, [True]),
    "500 on every attempt": (always_500, {}, [True]),
    "404": (not_found, {}, []),
    "429 with one attempt allowed": (first_token_429, {"max_attempts": 1}, []),
    "no answer, then another token": (first_hangs_up, {}, [True]),
    "no answer on every attempt": (always_hangs_up, {}, [True]),
    "no answer with one attempt allowed": (always_hangs_up, {"max_attempts": 1}, []),
    "too many redirects": (loops, {}, []),
    "a body that cannot be read": (cut_body, {}, []),
    "a 500 that cannot be read, one attempt": (cut_500, {"max_attempts": 1}, []),
    "a policy": (quota_header, {"policy": quota_policy}, [True]),
    "a policy that must be awaited": (quota_header, {"policy": quota_policy_awaited}, [True]),
    "a policy that raises": (plain, {"policy": broken_policy}, []),
}


async def run(script: Any, options: dict[str, Any], straight: bool) -> tuple[Any, ...]:
    """One request in one lane: what the caller got, what the server saw, the counters."""
    server = Server(script)
    async with serve(server.handle) as url:
        pool = TokenPool([A, B, C], limits=ROOMY, **options)
        async with pool:
            server.start = asyncio.get_running_loop().time()
            extra = {} if straight else {"max_attempts": options.get("max_attempts", 4)}
            result: tuple[Any, ...]
            try:
                resp = await pool.get(f"{url}/x", **extra)
            except RequestFailed as exc:  # the attempts without the server's port
                attempts = tuple(a.replace(url, "URL") for a in exc.attempts)
                result = ("failed", exc.why, exc.status, attempts)
            except Exception as exc:
                result = ("raised", type(exc), str(exc))
            else:
                result = ("answered", resp.status, await resp.text())
            result += (round(asyncio.get_running_loop().time() - server.start, 6),)
            stats = [
                (
                    t.name,
                    t.state,
                    t.leases,
                    t.ok,
                    t.rate_limited,
                    t.errors,
                    t.in_flight,
                    round(t.cooldown_left, 6),
                    t.reason,
                    t.proven,
                    t.last_remaining,
                )
                for t in pool.stats().tokens
            ]
    return result, server.seen, stats


@pytest.fixture
def handovers(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each entry into the general loop: ``True`` when the straight lane handed it over."""
    entered: list[bool] = []
    general = HttpClient._run

    def counted(self: HttpClient, call: Any, prepared: bool = False) -> Any:
        entered.append(prepared)
        return general(self, call, prepared)

    monkeypatch.setattr(HttpClient, "_run", counted)
    return entered


@pytest.mark.parametrize("name", SCENARIOS)
async def test_the_straight_lane_does_what_the_general_loop_does(
    name: str, handovers: list[bool]
) -> None:
    script, options, handed_over = SCENARIOS[name]
    straight = await run(script, options, True)
    assert handovers == handed_over
    handovers.clear()
    general = await run(script, options, False)
    assert handovers == [False]
    assert straight == general
    assert straight[1], "the server saw the request"


async def test_the_scenarios_say_what_they_claim(handovers: list[bool]) -> None:
    """A few of the runs above, checked on their own (so equal lanes are not equally
    wrong): a 429 retried on B, a cooled token, a refused redirect loop, a cut body."""
    result, seen, stats = await run(first_token_429, {}, True)
    assert result[:3] == ("answered", 200, '{"status": 200}')
    assert [token for token, _, _ in seen] == [A, B]
    counters = {NAMES[s[0]]: s[2:7] for s in stats}
    assert counters[A] == (1, 0, 1, 0, 0)  # leases, ok, rate_limited, errors, in flight
    assert counters[B] == (1, 1, 0, 0, 0)
    _, _, stats = await run(exhausted, {}, True)
    assert [s[7] for s in stats if NAMES[s[0]] == A] == [30.0]  # cooling until the reset
    result, _, _ = await run(loops, {}, True)
    assert result[:2] == ("failed", "the request was refused")
    assert "TooManyRedirects" in result[3][0]
    result, _, stats = await run(cut_body, {}, True)
    assert result[:2] == ("failed", "the response body could not be read")
    assert all(s[6] == 0 for s in stats)


@pytest.mark.parametrize("lane", ["straight", "general"])
@pytest.mark.parametrize("stage", ["send", "read"])
async def test_a_cancelled_request_ends_its_lease_as_failed(stage: str, lane: str) -> None:
    extra = {} if lane == "straight" else {"max_attempts": 4}
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        if stage == "send":
            started.set()
            await asyncio.sleep(60)
        resp = web.StreamResponse(headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"start")
        started.set()
        await asyncio.sleep(60)
        return resp

    async with serve(slow) as url, TokenPool([A], limits=ROOMY) as pool:
        task = asyncio.create_task(pool.get(f"{url}/x", **extra))
        await started.wait()
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = pool.stats().tokens[0]
        assert (stats.leases, stats.ok, stats.errors, stats.in_flight) == (1, 0, 1, 0)


@contextlib.asynccontextmanager
async def two_origins() -> AsyncIterator[tuple[str, list[str | None]]]:
    """An origin that redirects to another one, which records the Authorization it got."""
    got: list[str | None] = []

    async def there(request: web.Request) -> web.Response:
        got.append(request.headers.get("Authorization"))
        return json()

    async with serve(there, host="localhost") as elsewhere:

        async def here(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{elsewhere}/landed")

        async with serve(here) as url:
            yield url, got


async def test_a_redirect_elsewhere_in_the_straight_lane_sends_no_token_there(
    handovers: list[bool],
) -> None:
    async with two_origins() as (url, got), TokenPool([A], limits=ROOMY) as pool:
        resp = await pool.get(f"{url}/x")
        assert (resp.status, got) == (200, [None])
        stats = pool.stats().tokens[0]
        assert (stats.leases, stats.ok, stats.errors, stats.in_flight) == (1, 1, 0, 0)
    assert handovers == []


async def test_parsed_urls_are_kept_and_forgotten_when_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The straight lane parses a URL once per client (at most 1,024 kept: then it
    forgets them all and starts again); a bad one is refused every time."""
    parsed: list[str] = []
    resolve = client_module.resolved  # type: ignore[attr-defined]  # (imported there)

    def counted(url: str, base: str | None, redact: Callable[[str], str]) -> Any:
        parsed.append(url)
        return resolve(url, base, redact)

    monkeypatch.setattr(client_module, "resolved", counted)
    async with serve(Server(plain).handle) as url, TokenPool([A], limits=ROOMY) as pool:
        for _ in range(3):
            assert (await pool.get(f"{url}/same")).status == 200
        assert parsed == [f"{url}/same"]
        for i in range(1030):
            assert (await pool.get(f"{url}/{i}")).status == 200
        assert len(parsed) == 1031
        assert (await pool.get(f"{url}/same")).status == 200  # forgotten at 1,024
        assert len(parsed) == 1032
        for _ in range(2):
            with pytest.raises(ValueError, match="not ftp"):
                await pool.get("ftp://example.com/x")
        assert parsed[-2:] == ["ftp://example.com/x"] * 2
        assert pool.stats().tokens[0].leases == 1034
