"""``FixedWindow`` (GitHub's ``X-RateLimit-*``) and ``IetfRateLimit`` (the IETF
``RateLimit``/``RateLimit-Policy`` drafts): exact headers on explicit times, what the
library's header parser reads from them, and the server on virtual time."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from aurora_async._core.headers import RateLimitInfo, parse_rate_limit_headers
from aurora_async._core.tokens import mask
from aurora_async.testing import FixedWindow, IetfRateLimit, MockTokenStats
from aurora_async.testing._profile import Decision, Enforcer, Profile, ServerOptions, enforcer

from .support import TOKEN, WALL, call, now, serve, statuses

GITHUB = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Used",
    "X-RateLimit-Reset",
    "X-RateLimit-Resource",
)


def state(profile: Profile) -> Enforcer:
    return enforcer(profile, ServerOptions())


def at(limiter: Enforcer, seconds: float) -> Decision:
    """The decision for a request ``seconds`` after the start (``WALL`` then)."""
    return limiter.decide(seconds, WALL + seconds)


def github(limit: int, remaining: int, used: int, reset: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Used": str(used),
        "X-RateLimit-Reset": str(int(WALL + reset)),
        "X-RateLimit-Resource": "core",
    }


# -- FixedWindow ----------------------------------------------------------------------------


def test_fixed_window_counts_from_the_first_request_with_github_headers() -> None:
    limiter = state(FixedWindow(3, window=60))
    assert at(limiter, 0) == Decision(True, headers=github(3, 2, 1, reset=60))
    assert at(limiter, 10) == Decision(True, headers=github(3, 1, 2, reset=60))
    assert at(limiter, 20) == Decision(True, headers=github(3, 0, 3, reset=60))
    # Spent: 403 with the window's end, no Retry-After; refusals count nothing.
    assert at(limiter, 30) == Decision(False, 403, github(3, 0, 3, reset=60))
    assert at(limiter, 59.999) == Decision(False, 403, github(3, 0, 3, reset=60))
    assert at(limiter, 60) == Decision(True, headers=github(3, 2, 1, reset=120))
    # The next window opens at the first request after this one ends, not at 120.
    assert at(limiter, 200) == Decision(True, headers=github(3, 2, 1, reset=260))


def test_fixed_window_reset_is_a_whole_unix_second_rounded_up() -> None:
    limiter = state(FixedWindow(1, window=1))
    decision = limiter.decide(0.0, WALL + 0.25)
    assert decision.headers["X-RateLimit-Reset"] == str(int(WALL) + 2)  # ceil(WALL + 1.25)


def test_aligned_windows_follow_the_clock() -> None:
    limiter = state(FixedWindow(2, window=10, aligned=True))
    assert at(limiter, 7).headers["X-RateLimit-Reset"] == str(int(WALL + 10))
    assert at(limiter, 9).admitted
    assert not at(limiter, 9.5).admitted
    assert at(limiter, 10).headers == github(2, 1, 1, reset=20)


def test_fixed_window_options() -> None:
    bare = state(FixedWindow(1, window=5, headers=None, status=429))
    assert at(bare, 0) == Decision(True)
    assert at(bare, 1) == Decision(False, 429)
    search = state(FixedWindow(1, window=60, resource="search"))
    assert at(search, 0).headers["X-RateLimit-Resource"] == "search"


def test_the_library_reads_github_headers_as_the_window_states_them() -> None:
    limiter = state(FixedWindow(3, window=60))
    for seconds in (0, 1, 2):
        at(limiter, seconds)
    refused = at(limiter, 30)
    info, problems = parse_rate_limit_headers(refused.headers, now=WALL + 30)
    assert problems == ()
    assert info == RateLimitInfo(limit=3, remaining=0, reset_after=30)
    assert info.exhausted


@pytest.mark.looptime
async def test_fixed_window_through_the_server() -> None:
    async with serve({TOKEN: FixedWindow(3, window=60)}) as (api, session):
        start = now()
        before = time.time()
        replies = [await call(session) for _ in range(4)]
        after = time.time()
        assert [r.status for r in replies] == [200, 200, 200, 403]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
        assert [r.headers["X-RateLimit-Used"] for r in replies] == ["1", "2", "3", "3"]
        for reply in replies:
            assert reply.headers["X-RateLimit-Limit"] == "3"
            assert reply.headers["X-RateLimit-Resource"] == "core"
            reset = int(reply.headers["X-RateLimit-Reset"])
            assert math.ceil(before + 60) <= reset <= math.ceil(after + 60)
            assert "Retry-After" not in reply.headers
        assert replies[3].json() == {"error": "rate_limited", "token": mask(TOKEN)}

        await asyncio.sleep(59.999)
        assert await statuses(session, 1) == [403]
        await asyncio.sleep(0.001)
        fresh = await call(session)
        assert (fresh.status, fresh.headers["X-RateLimit-Used"]) == (200, "1")
        assert [round(t - start, 6) for t in api.admitted_times(TOKEN)] == [0, 0, 0, 60]
        assert api.stats(TOKEN) == MockTokenStats(requests=6, ok=4, rate_limited=2)


@pytest.mark.looptime
async def test_an_exhausted_fixed_window_token_says_when_it_resets() -> None:
    async with serve({TOKEN: FixedWindow(5, window=60)}) as (api, session):
        api.exhaust(TOKEN, 12.0)
        before = time.time()
        refused = await call(session)
        assert refused.status == 403
        assert (refused.headers["X-RateLimit-Remaining"], refused.headers["X-RateLimit-Used"]) == (
            "0",
            "5",
        )
        assert int(refused.headers["X-RateLimit-Reset"]) >= math.ceil(before + 12)
        await asyncio.sleep(12)
        assert (await call(session)).headers["X-RateLimit-Remaining"] == "4"


# -- IetfRateLimit ---------------------------------------------------------------------------


def test_structured_fields_name_the_policy_and_count_down() -> None:
    limiter = state(IetfRateLimit(100, 10))
    assert at(limiter, 0).headers == {
        "RateLimit-Policy": '"default";q=100;w=10',
        "RateLimit": '"default";r=99;t=10',
    }
    assert at(limiter, 2.5).headers["RateLimit"] == '"default";r=98;t=8'  # 7.5 s, rounded up
    assert at(limiter, 10).headers["RateLimit"] == '"default";r=99;t=10'  # a new window


def test_a_spent_ietf_quota_is_refused_with_retry_after() -> None:
    limiter = state(IetfRateLimit(2, 10, policy="burst"))
    assert [at(limiter, t).admitted for t in (0, 1, 2.5)] == [True, True, False]
    refused = at(limiter, 2.5)
    assert refused == Decision(
        False,
        429,
        {
            "RateLimit-Policy": '"burst";q=2;w=10',
            "RateLimit": '"burst";r=0;t=8',
            "Retry-After": "8",
        },
    )
    quiet = state(IetfRateLimit(1, 10, retry_after=False, status=503))
    at(quiet, 0)
    refusal = at(quiet, 1)
    assert (refusal.status, "Retry-After" in refusal.headers) == (503, False)


def test_draft_07_dictionary_and_older_separate_fields() -> None:
    dictionary = state(IetfRateLimit(100, 60, form="dictionary"))
    assert at(dictionary, 0).headers == {
        "RateLimit-Policy": "100;w=60",
        "RateLimit": "limit=100, remaining=99, reset=60",
    }
    separate = state(IetfRateLimit(100, 60, form="separate"))
    assert at(separate, 30.5).headers == {
        "RateLimit-Policy": "100;w=60",
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "99",
        "RateLimit-Reset": "60",
    }


@pytest.mark.parametrize("form", ["structured", "dictionary", "separate"])
def test_the_library_reads_every_ietf_form_the_mock_writes(form: str) -> None:
    limiter = state(IetfRateLimit(2, 10, form=form))  # type: ignore[arg-type]
    admitted = at(limiter, 0)
    info, problems = parse_rate_limit_headers(admitted.headers, now=WALL)
    window = 10 if form == "structured" else None  # only draft-08+ ties a window to a quota
    assert (info, problems) == (
        RateLimitInfo(limit=2, remaining=1, reset_after=10, window=window),
        (),
    )
    at(limiter, 1)
    refused = at(limiter, 4)
    info, problems = parse_rate_limit_headers(refused.headers, now=WALL + 4)
    assert (info, problems) == (
        RateLimitInfo(limit=2, remaining=0, reset_after=6, retry_after=6, window=window),
        (),
    )


@pytest.mark.looptime
async def test_ietf_quota_through_the_server() -> None:
    async with serve({TOKEN: IetfRateLimit(2, 5)}) as (api, session):
        replies = [await call(session) for _ in range(3)]
        assert [r.status for r in replies] == [200, 200, 429]
        assert [r.headers["RateLimit"] for r in replies] == [
            '"default";r=1;t=5',
            '"default";r=0;t=5',
            '"default";r=0;t=5',
        ]
        assert replies[2].headers["Retry-After"] == "5"
        await asyncio.sleep(4.999)
        assert await statuses(session, 1) == [429]
        await asyncio.sleep(0.001)
        assert await statuses(session, 3) == [200, 200, 429]
        assert api.stats(TOKEN) == MockTokenStats(requests=7, ok=4, rate_limited=3)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: FixedWindow(0), ValueError, "FixedWindow limit must be at least 1"),
        (lambda: FixedWindow(1.5), TypeError, "limit must be an int"),  # type: ignore[arg-type]
        (lambda: FixedWindow(5, window=0), ValueError, "positive finite number of seconds"),
        (lambda: FixedWindow(5, window=math.inf), ValueError, "window must be a positive"),
        (lambda: FixedWindow(5, window="60"), TypeError, "window must be a number"),  # type: ignore[arg-type]
        (lambda: FixedWindow(5, headers="ietf"), ValueError, "headers must be one of"),  # type: ignore[arg-type]
        (lambda: FixedWindow(5, status=302), ValueError, "status must be at least 400"),
        (lambda: FixedWindow(5, resource="a b"), ValueError, "resource must be a name"),
        (lambda: IetfRateLimit(5, 0), ValueError, "IetfRateLimit window must be at least 1"),
        (lambda: IetfRateLimit(5, 1.5), TypeError, "window must be an int"),  # type: ignore[arg-type]
        (lambda: IetfRateLimit(5, 1, form="draft-10"), ValueError, "form must be one of"),  # type: ignore[arg-type]
        (lambda: IetfRateLimit(5, 1, policy='a"b'), ValueError, "policy must be a name"),
        (lambda: IetfRateLimit(5, 1, status=700), ValueError, "status must be 400 to 599"),
    ],
)
def test_invalid_window_settings_are_refused(make: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()  # type: ignore[operator]
