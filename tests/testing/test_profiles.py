"""Choosing profiles: per token next to ``Limit`` forms, for the whole server, for tokens
added at run time, and changing a token's profile while the server runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from aurora_async import Limit, Token
from aurora_async._core.tokens import mask
from aurora_async.testing import (
    FixedWindow,
    IetfRateLimit,
    LeakyBucket,
    MockAPI,
    MockTokenStats,
    NginxLimitReq,
)

from .support import OTHER, THIRD, TOKEN, call, now, serve, statuses


@pytest.mark.looptime
async def test_profiles_and_limits_side_by_side_per_token() -> None:
    tokens = {
        TOKEN: NginxLimitReq(1),
        OTHER: Limit(2, per=3600),
        THIRD: FixedWindow(1, window=60),
    }
    async with serve(tokens) as (api, session):
        assert await statuses(session, 2) == [200, 429]
        replies = [await call(session, token=OTHER) for _ in range(3)]
        assert [r.status for r in replies] == [200, 200, 429]
        assert replies[0].headers["X-RateLimit-Limit"] == "2"
        assert replies[2].headers["Retry-After"] == "1800.000"
        assert await statuses(session, 2, THIRD) == [200, 403]
        assert api.profile(OTHER) == LeakyBucket(Limit(2, per=3600))
        assert api.totals == MockTokenStats(requests=7, ok=4, rate_limited=3)


@pytest.mark.looptime
async def test_the_server_profile_is_for_tokens_without_their_own() -> None:
    listed = [Token(TOKEN, limits=Limit(3, per=3600)), OTHER]
    async with serve(listed, profile=NginxLimitReq(1), accept_unknown=True) as (api, session):
        assert await statuses(session, 4) == [200, 200, 200, 429]
        assert await statuses(session, 2, OTHER) == [200, 429]
        assert await statuses(session, 2, THIRD) == [200, 429]  # unknown, accepted
        api.add_token("sk-delta-secret-0004")
        assert api.profile("sk-delta-secret-0004") == NginxLimitReq(1)
        api.add_token("sk-echo-secret-0005", IetfRateLimit(1, 60))
        reply = await call(session, token="sk-echo-secret-0005")
        assert reply.headers["RateLimit"] == '"default";r=0;t=60'
        api.revoke("sk-fox-secret-0006")
        api.restore("sk-fox-secret-0006")
        assert api.profile("sk-fox-secret-0006") == NginxLimitReq(1)


@pytest.mark.looptime
async def test_a_leaky_bucket_keeps_its_own_options_over_the_servers() -> None:
    own = LeakyBucket(Limit(1, per=2), tolerance=0, retry_after="int", headers=False)
    async with serve({TOKEN: own, OTHER: Limit(1, per=2)}, tolerance=0.5) as (_, session):
        ok, refused = await call(session), await call(session)
        assert (ok.status, refused.status, refused.headers["Retry-After"]) == (200, 429, "2")
        assert "X-RateLimit-Limit" not in ok.headers
        await asyncio.sleep(1.6)  # 0.4 s early: the server's 0.5 s tolerance is not its
        assert await statuses(session, 1) == [429]
        # The other token inherits the server's tolerance.
        assert await statuses(session, 1, OTHER) == [200]
        await asyncio.sleep(1.6)
        assert await statuses(session, 1, OTHER) == [200]


@pytest.mark.looptime
async def test_halving_a_leaky_bucket_keeps_what_it_holds() -> None:
    async with serve({TOKEN: Limit(4, per=1)}, tolerance=0) as (api, session):
        start = now()
        assert await statuses(session, 5) == [200] * 4 + [429]
        api.set_profile(TOKEN, Limit(2, per=1))
        # Still 4 units in a bucket of 2 draining 2 a second: room for one at 1.5 s.
        await asyncio.sleep(1.499)
        assert await statuses(session, 1) == [429]
        await asyncio.sleep(0.001)
        assert await statuses(session, 2) == [200, 429]
        assert api.admitted_times(TOKEN)[-1] == pytest.approx(start + 1.5, abs=1e-9)
        assert api.profile(TOKEN) == LeakyBucket(Limit(2, per=1))


@pytest.mark.looptime
async def test_a_fixed_window_changed_mid_window_keeps_what_it_used() -> None:
    async with serve({TOKEN: FixedWindow(3, window=60)}) as (api, session):
        first = await call(session)
        assert await statuses(session, 3) == [200, 200, 403]
        api.set_profile(TOKEN, FixedWindow(5, window=60))
        replies = [await call(session) for _ in range(3)]
        assert [r.status for r in replies] == [200, 200, 403]
        assert replies[1].headers["X-RateLimit-Used"] == "5"
        reset = first.headers["X-RateLimit-Reset"]
        assert abs(int(replies[1].headers["X-RateLimit-Reset"]) - int(reset)) <= 1


@pytest.mark.looptime
async def test_a_change_of_kind_starts_the_token_afresh() -> None:
    async with serve({TOKEN: FixedWindow(1, window=3600)}) as (api, session):
        assert await statuses(session, 2) == [200, 403]
        api.set_profile(TOKEN, NginxLimitReq(1, burst=1))
        assert await statuses(session, 3) == [200, 200, 429]
        api.set_profile(TOKEN, [Limit(1, per=60)])
        assert await statuses(session, 2) == [200, 429]


def test_a_profile_can_be_set_before_the_server_starts() -> None:
    api = MockAPI([TOKEN])
    api.set_profile(TOKEN, NginxLimitReq(3))
    assert api.profile(TOKEN) == NginxLimitReq(3)


def test_a_shared_profile_instance_is_config_not_state() -> None:
    tier = NginxLimitReq(5, burst=2)
    api = MockAPI({TOKEN: tier, OTHER: tier})
    assert api._tokens[TOKEN].enforcer is not api._tokens[OTHER].enforcer
    with pytest.raises(TypeError, match=r"no leaky bucket: NginxLimitReq\(rate=5"):
        _ = api._tokens[TOKEN].bucket


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"default_limit": Limit(1), "profile": NginxLimitReq(1)},
            ValueError,
            "default_limit or profile",
        ),
        ({"profile": Limit(1)}, TypeError, "profile must be a Profile"),
        ({"tokens": {TOKEN: "5r/s"}}, TypeError, f"token {mask(TOKEN)}: limits must be Limit"),
        ({"tokens": {TOKEN: []}}, ValueError, "at least one Limit"),
        ({"tokens": {TOKEN: Limit(1, burst=0.5)}}, ValueError, "burst must be at least 1"),
    ],
)
def test_profile_arguments_are_checked_without_showing_a_secret(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as caught:
        MockAPI(**kwargs)  # type: ignore[arg-type]
    assert TOKEN not in str(caught.value)


def test_run_time_changes_are_checked_without_showing_a_secret() -> None:
    api = MockAPI([TOKEN])
    changes: list[tuple[Callable[[], object], type[Exception]]] = [
        (lambda: api.set_profile(TOKEN, None), TypeError),  # type: ignore[arg-type]
        (lambda: api.set_profile(OTHER, NginxLimitReq(1)), KeyError),
        (lambda: api.add_token(TOKEN, NginxLimitReq(1)), ValueError),
        (lambda: api.add_token(OTHER, "fast"), TypeError),  # type: ignore[arg-type]
        (lambda: api.profile(OTHER), KeyError),
    ]
    for change, error in changes:
        with pytest.raises(error) as caught:
            change()
        assert TOKEN not in str(caught.value)
        assert OTHER not in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limits": []}, "at least one Limit"),
        ({"limits": Limit(1, burst=0.5)}, "burst must be at least 1"),
        ({"limits": Limit(1), "tolerance": float("nan")}, "tolerance"),
        ({"limits": Limit(1), "tolerance": -1}, "tolerance"),
        ({"limits": Limit(1), "retry_after": "date"}, "retry_after"),
    ],
)
def test_invalid_leaky_bucket_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LeakyBucket(**kwargs)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_no_secret_in_nginx_pages_headers_or_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    profiles = [NginxLimitReq(1), FixedWindow(1), IetfRateLimit(1, 1), LeakyBucket(Limit(1))]
    secrets = [f"sk-live-secret-{n:04d}" for n in range(len(profiles))]
    seen: list[str] = []
    async with serve(dict(zip(secrets, profiles, strict=True))) as (api, session):
        for secret in secrets:
            for _ in range(2):
                reply = await call(session, token=secret)
                seen += [reply.text, *reply.headers.values()]
        seen += [repr(api), str(api.all_stats()), *(repr(api.profile(s)) for s in secrets)]
    captured = capsys.readouterr()
    haystack = "\n".join([*seen, caplog.text, captured.out, captured.err])
    for secret in secrets:
        assert secret not in haystack
        assert secret[4:-4] not in haystack
