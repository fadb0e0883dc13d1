"""``NginxLimitReq``: nginx's ``limit_req`` arithmetic, on explicit milliseconds and through
MockAPI on virtual time.

The expected figures are worked out by hand from ngx_http_limit_req_module.c: a key's
first request creates its node with ``excess = 0``; each later one computes
``excess = max(0, excess - rate * ms / 1000 + 1000)`` in milli-requests and is refused,
changing nothing, when that is above ``burst * 1000``.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora_async._core.tokens import mask
from aurora_async.testing import MockAPI, MockTokenStats, NginxLimitReq
from aurora_async.testing._nginx import NginxNode, error_page, msec
from aurora_async.testing._profile import ServerOptions, enforcer

from .support import OTHER, TOKEN, WALL, call, now, serve, statuses

PAGE_429 = (
    "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    "<center><h1>429 Too Many Requests</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
LIMIT_HEADERS = ("Retry-After", "X-RateLimit-Limit", "RateLimit", "RateLimit-Policy")


def node(profile: NginxLimitReq) -> NginxNode:
    state = enforcer(profile, ServerOptions())
    assert isinstance(state, NginxNode)
    return state


def admits(state: NginxNode, at_ms: int) -> bool:
    return state.decide(at_ms / 1000, WALL).admitted


# -- the arithmetic, on explicit milliseconds ------------------------------------------------


def test_rate_5_burst_2_admits_3_at_once_then_one_every_200_ms() -> None:
    state = node(NginxLimitReq(5, burst=2))
    assert [admits(state, 0) for _ in range(4)] == [True, True, True, False]
    assert (state.excess, state.last) == (2000, 0)
    assert not admits(state, 199)  # 2000 - 995 + 1000 = 2005 > 2000
    assert admits(state, 200)  # 2000 - 1000 + 1000 = 2000
    assert not admits(state, 200)
    assert not admits(state, 399)
    assert admits(state, 400)
    assert (state.excess, state.last) == (2000, 400)


def test_refused_requests_change_nothing_and_delay_no_later_one() -> None:
    hammered, quiet = node(NginxLimitReq(5, burst=2)), node(NginxLimitReq(5, burst=2))
    for state in (hammered, quiet):
        assert [admits(state, 0) for _ in range(3)] == [True] * 3
    assert not any(admits(hammered, at) for at in range(200))
    assert (hammered.excess, hammered.last) == (quiet.excess, quiet.last) == (2000, 0)
    assert admits(hammered, 200)
    assert admits(quiet, 200)


def test_a_new_node_starts_at_excess_zero_and_an_idle_one_drains_to_zero() -> None:
    state = node(NginxLimitReq(5))  # burst 0: one request per 200 ms
    assert admits(state, 1000)
    assert state.excess == 0
    assert not admits(state, 1199)
    assert admits(state, 1200)
    # Idle for long: the excess is floored at 0 after the +1000, so one request passes
    # and the next must wait a whole interval again.
    assert admits(state, 60_000)
    assert state.excess == 0
    assert not admits(state, 60_199)


def test_the_rate_is_integer_milli_requests_and_the_drain_truncates() -> None:
    per_minute = NginxLimitReq(7, unit="r/m")
    assert per_minute.milli_rate == 116  # 7 * 1000 / 60, truncated
    state = node(per_minute)
    assert admits(state, 0)
    # 116 * 8620 // 1000 = 999: one milli-request short; the nominal interval is 8571 ms.
    assert not admits(state, 8620)
    assert admits(state, 8621)

    state = node(NginxLimitReq(3))
    assert admits(state, 0)
    assert not admits(state, 333)  # 3000 * 333 // 1000 = 999
    assert admits(state, 334)


def test_time_is_whole_milliseconds() -> None:
    assert [msec(t) for t in (0.0, 0.2, 0.3, 0.0009, 0.7999999)] == [0, 200, 300, 0, 799]
    state = node(NginxLimitReq(5))
    assert state.decide(0.0, WALL).admitted
    assert not state.decide(0.1999, WALL).admitted  # still 199 ms
    assert state.decide(0.2, WALL).admitted


def test_a_clock_that_goes_back_is_clamped_as_nginx_does() -> None:
    state = node(NginxLimitReq(5, burst=1))
    assert admits(state, 100_000)
    assert admits(state, 99_000)  # 1 s back counts as 0 ms: excess 1000, last kept
    assert (state.excess, state.last) == (1000, 100_000)
    state = node(NginxLimitReq(5, burst=1))
    assert admits(state, 100_000)
    assert admits(state, 100_000 - 60_001)  # over a minute back counts as 1 ms
    assert (state.excess, state.last) == (995, 39_999)


def test_without_nodelay_the_burst_is_admitted_late() -> None:
    state = node(NginxLimitReq(5, burst=3, nodelay=False))
    decisions = [state.decide(0.0, WALL) for _ in range(5)]
    assert [d.admitted for d in decisions] == [True, True, True, True, False]
    assert [d.delay for d in decisions[:4]] == [0.0, 0.2, 0.4, 0.6]  # (excess) * 1000 / rate

    two_stage = node(NginxLimitReq(5, burst=3, nodelay=False, delay=1))
    assert [two_stage.decide(0.0, WALL).delay for _ in range(4)] == [0.0, 0.0, 0.2, 0.4]

    odd = node(NginxLimitReq(3, burst=2, nodelay=False))
    assert [odd.decide(0.0, WALL).delay for _ in range(3)] == [0.0, 0.333, 0.666]


def test_a_refusal_is_the_configured_status_with_nginx_page_and_no_headers() -> None:
    state = node(NginxLimitReq(1))
    admitted = state.decide(0.0, WALL)
    refused = state.decide(0.0, WALL)
    assert (admitted.admitted, admitted.headers, admitted.page) == (True, {}, None)
    assert (refused.admitted, refused.status, refused.headers) == (False, 429, {})
    assert refused.page == PAGE_429
    assert node(NginxLimitReq(1, status=503)).exhausted(0.0, 1.0, WALL).status == 503
    assert "<title>503 Service Unavailable</title>" in error_page(503)
    assert "<title>499</title>" in error_page(499)


rates = st.sampled_from([1, 2, 3, 5, 7, 20, 50])
units = st.sampled_from(["r/s", "r/m"])
gaps_ms = st.lists(st.integers(0, 700), min_size=1, max_size=60)


@given(rate=rates, unit=units, burst=st.integers(0, 5), gaps=gaps_ms)
def test_never_more_than_one_plus_burst_plus_rate_times_span(
    rate: int, unit: str, burst: int, gaps: list[int]
) -> None:
    profile = NginxLimitReq(rate, burst=burst, unit=unit)  # type: ignore[arg-type]
    state, at, times = node(profile), 0, []
    for gap in gaps:
        at += gap
        if admits(state, at):
            times.append(at)
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            span_ms = times[j] - first
            assert j - i + 1 <= 1 + burst + profile.milli_rate * span_ms / 1_000_000


@given(rate=rates, unit=units, burst=st.integers(0, 5), gaps=gaps_ms)
def test_refusals_change_nothing(rate: int, unit: str, burst: int, gaps: list[int]) -> None:
    profile = NginxLimitReq(rate, burst=burst, unit=unit)  # type: ignore[arg-type]
    state, twin, at = node(profile), node(profile), 0
    for gap in gaps:
        at += gap
        if admits(state, at):
            assert admits(twin, at)  # the twin never saw the refusals
        assert (state.excess, state.last) == (twin.excess, twin.last)


@given(rate=rates, unit=units, count=st.integers(1, 30))
def test_a_client_spaced_one_interval_apart_is_never_refused(
    rate: int, unit: str, count: int
) -> None:
    profile = NginxLimitReq(rate, unit=unit)  # type: ignore[arg-type]
    interval = -(-1_000_000 // profile.milli_rate)  # whole ms that drain at least 1000
    state = node(profile)
    assert all(admits(state, n * interval) for n in range(count))


# -- through MockAPI, on virtual time --------------------------------------------------------


@pytest.mark.looptime
async def test_the_server_answers_the_burst_then_nginx_429s_and_one_per_interval() -> None:
    async with serve({TOKEN: NginxLimitReq(5, burst=2)}) as (api, session):
        start = now()
        replies = [await call(session) for _ in range(5)]
        assert [r.status for r in replies] == [200, 200, 200, 429, 429]
        for reply in replies:
            assert not any(name in reply.headers for name in LIMIT_HEADERS)
        refused = replies[-1]
        assert refused.text == PAGE_429
        assert refused.headers["Content-Type"] == "text/html"
        assert replies[0].json()["token"] == mask(TOKEN)

        # Refused requests every 10 ms do not push the next slot back.
        for _ in range(19):
            await asyncio.sleep(0.01)
            assert (await call(session)).status == 429
        await asyncio.sleep(0.009)
        assert (await call(session)).status == 429  # 199 ms
        await asyncio.sleep(0.001)
        assert await statuses(session, 2) == [200, 429]  # 200 ms
        await asyncio.sleep(0.2)
        assert await statuses(session, 2) == [200, 429]  # 400 ms
        assert [round(t - start, 6) for t in api.admitted_times(TOKEN)] == [0, 0, 0, 0.2, 0.4]
        assert api.stats(TOKEN) == MockTokenStats(requests=29, ok=5, rate_limited=24)


@pytest.mark.looptime
async def test_the_refusal_status_is_configurable_like_limit_req_status() -> None:
    async with serve({TOKEN: NginxLimitReq(1, status=503)}) as (api, session):
        first, second = await call(session), await call(session)
        assert (first.status, second.status) == (200, 503)
        assert "<title>503 Service Unavailable</title>" in second.text
        assert api.stats(TOKEN) == MockTokenStats(requests=2, ok=1, rate_limited=1)


@pytest.mark.looptime
async def test_without_nodelay_the_server_holds_the_burst_back() -> None:
    async with serve({TOKEN: NginxLimitReq(5, burst=3, nodelay=False)}) as (api, session):
        start = now()

        async def timed() -> tuple[int, float]:
            reply = await call(session)
            return reply.status, round(now() - start, 6)

        answers = await asyncio.gather(*(timed() for _ in range(5)))
        assert sorted(answers) == [(200, 0.0), (200, 0.2), (200, 0.4), (200, 0.6), (429, 0.0)]
        assert api.admitted_times(TOKEN) == [start] * 4  # accounted when they arrived
        assert api.stats(TOKEN) == MockTokenStats(requests=5, ok=4, rate_limited=1, delayed=3)


@pytest.mark.looptime
async def test_tiers_per_token_each_with_its_own_node() -> None:
    tiers = {TOKEN: NginxLimitReq(5, burst=2), OTHER: NginxLimitReq(50, burst=5)}
    async with serve(tiers) as (api, session):
        assert await statuses(session, 4) == [200] * 3 + [429]
        assert await statuses(session, 7, OTHER) == [200] * 6 + [429]
        await asyncio.sleep(0.02)
        assert await statuses(session, 1) == [429]
        assert await statuses(session, 2, OTHER) == [200, 429]
        assert api.totals == MockTokenStats(requests=14, ok=10, rate_limited=4)


@pytest.mark.looptime
async def test_one_profile_for_the_whole_server_gives_each_token_its_own_node() -> None:
    async with serve([TOKEN, OTHER], profile=NginxLimitReq(1)) as (api, session):
        assert await statuses(session, 2) == [200, 429]
        assert await statuses(session, 2, OTHER) == [200, 429]
        assert api.profile(TOKEN) is api.profile(OTHER)


@pytest.mark.looptime
async def test_halving_the_rate_at_run_time_keeps_the_node_as_a_reload_does() -> None:
    async with serve({TOKEN: NginxLimitReq(10)}) as (api, session):
        for _ in range(10):
            assert await statuses(session, 2) == [200, 429]
            await asyncio.sleep(0.1)
        api.set_profile(TOKEN, NginxLimitReq(5))
        assert api.profile(TOKEN) == NginxLimitReq(5)
        # 1.0 s: the node was last charged at 0.9 s, and 100 ms now drains only half.
        assert await statuses(session, 1) == [429]
        await asyncio.sleep(0.1)
        assert await statuses(session, 2) == [200, 429]  # 1.1 s
        await asyncio.sleep(0.1)
        assert await statuses(session, 1) == [429]
        await asyncio.sleep(0.1)
        assert await statuses(session, 2) == [200, 429]  # 1.3 s
        assert len(api.admitted_times(TOKEN)) == 12


@pytest.mark.looptime
async def test_an_exhausted_nginx_token_gets_the_bare_refusal_then_its_node_as_it_was() -> None:
    async with serve({TOKEN: NginxLimitReq(5, burst=1)}) as (api, session):
        api.exhaust(TOKEN, 3.0)
        refused = await call(session)
        assert (refused.status, refused.text) == (429, PAGE_429)
        assert "Retry-After" not in refused.headers
        await asyncio.sleep(3)
        assert await statuses(session, 3) == [200, 200, 429]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rate": 0}, ValueError, "rate must be at least 1"),
        ({"rate": 2.5}, TypeError, "rate must be an int"),
        ({"rate": True}, TypeError, "rate must be an int"),
        ({"rate": 5, "burst": -1}, ValueError, "burst must be at least 0"),
        ({"rate": 5, "status": 200}, ValueError, "status must be at least 400"),
        ({"rate": 5, "status": 600}, ValueError, "status must be 400 to 599"),
        ({"rate": 5, "unit": "r/h"}, ValueError, "unit must be one of 'r/s', 'r/m'"),
        ({"rate": 5, "delay": 2}, ValueError, "nodelay and delay= are exclusive"),
        ({"rate": 5, "nodelay": None}, ValueError, "nodelay must be one of"),
    ],
)
def test_invalid_nginx_settings_are_refused(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        NginxLimitReq(**kwargs)  # type: ignore[arg-type]


def test_a_profile_is_frozen_and_shows_its_settings() -> None:
    profile = NginxLimitReq(5, burst=2)
    assert repr(profile) == (
        "NginxLimitReq(rate=5, burst=2, nodelay=True, delay=0, status=429, unit='r/s')"
    )
    with pytest.raises(AttributeError):
        profile.rate = 6  # type: ignore[misc]
    assert MockAPI({TOKEN: profile}).profile(TOKEN) is profile
