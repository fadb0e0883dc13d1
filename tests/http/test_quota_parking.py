"""A spent quota parks its token until the reset: one refusal, not one a minute.

MockAPI's ``LlmApi`` answers OpenAI's ``429 insufficient_quota`` once a key's token quota
is spent (it states no reset: the pool parks the key for ``quota.DEFAULT_PARK``); and
``GitHubApi`` answers its primary limit with 403 and the reset time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from aurora_async import LeaseTimeout, Limit, Token, TokenPool
from aurora_async._core.quota import DEFAULT_PARK
from aurora_async.testing import GitHubApi, LlmApi, MockAPI

A, B = "sk-secret-quota-aaaa0001", "sk-secret-quota-bbbb0002"
BODY = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}  # 10 tokens in
OUT = {"X-Mock-Output-Tokens": "20"}  # and 20 out: 30 a request


@pytest.mark.looptime
async def test_a_spent_quota_costs_one_refusal_then_parks_the_key() -> None:
    limits = [Limit(600, per=60, burst=600)]
    spent = MockAPI([A], profile=LlmApi(rpm=600, tpm=100_000, max_tokens=20, quota_tokens=300))
    fine = MockAPI([B], profile=LlmApi(rpm=600, tpm=100_000, max_tokens=20))
    async with spent as api_a, fine as api_b:
        # One pool, two keys on two servers: a gateway in front would route the same.
        pool = TokenPool([Token(A, limits=limits)], base_url=api_a.url)
        async with pool:
            with capture_logs() as logs:
                for _ in range(11):  # 30 tokens each: the 11th finds the quota spent
                    await pool.post("/v1/chat/completions", json=BODY, headers=OUT, max_attempts=1)
            stats = pool.stats().tokens[0]
            with pytest.raises(LeaseTimeout):  # parked: nothing more goes out for an hour
                await pool.post("/v1/chat/completions", json=BODY, lease_timeout=3000)
        assert api_a.stats(A).ok == 10
        assert api_a.stats(A).rate_limited == 1  # one refusal, then parked
        assert api_a.stats(A).requests == 11
        assert stats.cooldown_left == pytest.approx(DEFAULT_PARK, abs=1.0)
        events = [e for e in logs if e["event"] == "aurora.token.quota_exhausted"]
        assert [e["reason"] for e in events] != []
        assert len(events) == 1
        assert "secret" not in repr(events)
        assert "secret" not in repr(stats)
        assert api_b.totals.requests == 0


@pytest.mark.looptime
async def test_the_request_goes_to_a_key_with_quota_left(
    clock: Callable[[], Callable[[], float]],
) -> None:
    profile = LlmApi(rpm=600, tpm=100_000, max_tokens=20, quota_tokens=300)
    async with MockAPI([A, B], profile=profile) as api:
        pool = TokenPool(
            [Token(k, limits=Limit(600, per=60, burst=600)) for k in (A, B)], base_url=api.url
        )
        async with pool:
            now = clock()
            statuses = [
                (await pool.post("/v1/chat/completions", json=BODY, headers=OUT)).status
                for _ in range(20)
            ]
            assert now() < 60  # nobody waited for a park to end
        assert statuses == [200] * 20  # each key serves 10, the refusal is retried
        assert api.stats(A).rate_limited + api.stats(B).rate_limited <= 2


@pytest.mark.looptime
async def test_githubs_primary_limit_parks_until_its_reset(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """Declared too high (10/s where GitHub allows 3 per 60 s window): the third answer's
    ``x-ratelimit-remaining: 0`` parks the token until the reset it names: the fourth
    call waits for the new window instead of drawing a 403."""
    profile = GitHubApi(core=3, core_window=60.0)  # the window opens at the first call
    async with MockAPI([A], profile=profile) as api:
        key = Token(A, limits=Limit(10, burst=10))
        pool = TokenPool([key], base_url=api.url, calibrate=False)
        async with pool:
            now = clock()
            for n in range(5):
                assert (await pool.get(f"/repos/o/r/{n}")).status == 200
            # The reset is stated in whole epoch seconds of the real wall clock (up to 1 s
            # later than the window's end), which moves on a little while virtual time runs.
            assert 55 <= now() < 62
        assert api.totals.rate_limited == 0


#: 22:00 UTC on 2026-12-06: two hours before the next midnight.
EVENING = 1_796_594_400.0


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("limits", "parked"),
    [
        # a daily quota declared: the park ends at its reset, two hours away
        ([Limit(600, per=60, burst=600), Limit.daily(10**6, unit="tokens")], 7200.0),
        # its reset at 23:30: an hour and a half away
        ([Limit(600, per=60, burst=600), Limit.daily(10**6, reset="23:30")], 5400.0),
        # a daily quota in another scope does not speak for this one
        ([Limit(600, per=60, burst=600), Limit.daily(10**6, reset="23:30", scope="s")], None),
        ([Limit(600, per=60, burst=600)], None),  # none declared: DEFAULT_PARK
    ],
)
async def test_a_spent_quota_naming_no_reset_parks_until_the_declared_calendar_reset(
    monkeypatch: pytest.MonkeyPatch, limits: list[Limit], parked: float | None
) -> None:
    """OpenAI's ``insufficient_quota`` names no reset; a token with a calendar quota of
    its own is parked until that quota's reset (on the pool's wall clock), not probed
    again an hour later."""
    from aurora_async._pool import core as pool_core

    monkeypatch.setattr(pool_core, "wall_clock", lambda: EVENING)
    profile = LlmApi(rpm=600, tpm=100_000, max_tokens=20, quota_tokens=60)
    async with MockAPI([A], profile=profile) as api:
        pool = TokenPool([Token(A, limits=limits)], base_url=api.url, calibrate=False)
        async with pool:
            for _ in range(3):  # 30 tokens each: the third finds the quota spent
                await pool.post("/v1/chat/completions", json=BODY, headers=OUT, max_attempts=1)
            left = pool.stats().tokens[0].cooldown_left
        assert api.stats(A).rate_limited == 1
        assert left == pytest.approx(DEFAULT_PARK if parked is None else parked, abs=1e-3)


@pytest.mark.looptime
async def test_default_calibration_reads_githubs_whole_second_reset_as_its_window(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """Nothing declared: GitHub's ``x-ratelimit-limit: 3`` with a reset in whole epoch
    seconds (60.x s away) is a 60 s window, not a 120 s one: the pool keeps a bucket
    that never overruns 3 in any 60 s (2 a minute with the 1-unit burst it needs), so 5
    calls take two minutes, not four, and none is refused."""
    profile = GitHubApi(core=3, core_window=60.0)
    async with MockAPI([A], profile=profile) as api:
        pool = TokenPool([A], base_url=api.url)
        async with pool:
            now = clock()
            for n in range(5):
                assert (await pool.get(f"/repos/o/r/{n}")).status == 200
            assert 119 < now() < 122
            assert pool.stats().tokens[0].limits == ("2/60s (burst 1)",)
        assert api.totals.rate_limited == 0
