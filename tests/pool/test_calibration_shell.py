"""The pool's side of calibration: effective limits in stats, events, episodes on the
clock, costs that stay possible, shared-nothing defaults, and ``calibrate=False``.

The decisions themselves (how far to lower, when to raise) are the pure calibrator's,
tested in ``tests/core/test_calibrate*.py``; here, what a pool does with them.
"""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from aurora_async import Limit, Token, TokenPool
from aurora_async._pool.core import core_of

pytestmark = pytest.mark.looptime

A = "tok-aaaa-calibration-0001"
B = "tok-bbbb-calibration-0002"
NAME_A = Token(A).name


async def test_a_default_burst_starts_at_one_unit_and_stats_say_so() -> None:
    pool = TokenPool([A], limits=Limit(20))
    async with pool:
        token = pool.stats().token(NAME_A)
        assert token.limits == ("20/1s (burst 1)",)
        assert token.declared_limits == ("20/1s",)
        assert token.limit_source == "declared"
        assert not token.limit_too_high


async def test_an_explicit_burst_is_trusted_from_the_start() -> None:
    pool = TokenPool([A], limits=Limit(20, burst=5), trial_in_flight=None)
    async with pool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(5):
            (await pool.acquire()).release()
        assert loop.time() == start  # five at once: the declared burst
        assert pool.stats().token(NAME_A).limits == ("20/1s (burst 5)",)


async def test_nothing_declared_is_the_default_guess() -> None:
    pool = TokenPool([A])
    async with pool:
        token = pool.stats().token(NAME_A)
        assert token.limit_source == "default"
        assert token.declared_limits == ("10/1s",)


async def test_calibrate_false_enforces_the_declared_limits_exactly() -> None:
    pool = TokenPool([A], limits=Limit(20), calibrate=False, trial_in_flight=None)
    async with pool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(20):
            (await pool.acquire()).release()
        assert loop.time() == start  # the default burst: 20 at once
        token = pool.stats().token(NAME_A)
        assert token.limits == token.declared_limits == ("20/1s",)
        assert token.limit_source == "declared"


async def test_a_429_the_limiter_allowed_lowers_at_once_and_is_logged() -> None:
    pool = TokenPool([A, B], limits=Limit(20, burst=4), trial_in_flight=None)
    async with pool:
        with capture_logs() as logs:
            lease = await pool.acquire()
            name = lease.name
            lease.rate_limited()
            lease.release()
        token = pool.stats().token(name)
        assert token.limit_too_high  # decided at once, not by a sweep
        assert token.limit_source == "learned"
        assert token.limits != token.declared_limits
        assert token.rate_limited == 1
        lowered = [e for e in logs if e["event"] == "aurora.token.limit_lowered"]
        assert [e["token"] for e in lowered] == [name]
        assert lowered[0]["was"] == ["20/1s (burst 4)"]
        cooling = [e for e in logs if e["event"] == "aurora.token.cooling"]
        assert [e["why"] for e in cooling] == ["calibrating"]
        assert cooling[0]["seconds"] < 1.0  # one unit's drain, not the old 1 s backoff


async def test_429s_of_calls_in_flight_when_the_episode_began_change_nothing_more() -> None:
    pool = TokenPool([A], limits=Limit(20, burst=4), trial_in_flight=None)
    async with pool:
        leases = [await pool.acquire() for _ in range(4)]  # a volley, all in flight
        with capture_logs() as logs:
            for lease in leases:
                lease.rate_limited()
                lease.release()
        token = pool.stats().token(NAME_A)
        assert token.rate_limited == 4  # every 429 counted...
        events = [e["event"] for e in logs]
        assert events.count("aurora.token.limit_lowered") == 1  # ...one episode answered
        assert events.count("aurora.token.cooling") == 1


async def test_a_cost_above_the_effective_burst_stays_possible() -> None:
    """A default burst starts at one unit; a lease of 5 widens it (up to the declared 20)
    instead of failing as larger than every burst."""
    pool = TokenPool([A], limits=Limit(20), trial_in_flight=None)
    async with pool:
        lease = await pool.acquire(cost=5)
        lease.release()
        assert pool.stats().token(NAME_A).limits == ("20/1s (burst 5)",)
        with pytest.raises(ValueError, match="exceeds the burst of every token"):
            await pool.acquire(cost=21)  # beyond the declared burst: impossible, as before


async def test_a_busy_token_grows_its_default_burst_back() -> None:
    pool = TokenPool([A], limits=Limit(20), trial_in_flight=None)
    async with pool:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 30

        async def worker() -> None:
            while loop.time() < stop:
                async with pool.lease():
                    await asyncio.sleep(0.01)

        with capture_logs() as logs:
            await asyncio.gather(*(worker() for _ in range(10)))
        raised = [e for e in logs if e["event"] == "aurora.token.limit_raised"]
        assert raised  # clean saturated service: the burst grows back
        token = pool.stats().token(NAME_A)
        assert token.limits != ("20/1s (burst 1)",)
        assert token.rate_limited == 0
        # never above the declared ceiling: 20 a second over the 30 s
        assert token.leases <= 20 * 30 + 20


async def test_a_long_window_keeps_its_burst_so_the_fast_one_sets_the_pace() -> None:
    """``[Limit(3), Limit(5000, per=3600)]``: only the fast window starts at one unit;
    an hourly window at burst 1 would cap the token at 1.39/s for good."""
    pool = TokenPool([A], limits=[Limit(3), Limit(5000, per=3600)], trial_in_flight=None)
    async with pool:
        assert pool.stats().token(NAME_A).limits == ("3/1s (burst 1)", "5000/3600s")
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(31):
            (await pool.acquire()).release()
        assert round(loop.time() - start, 3) == 10.0  # 3 a second, from the first


async def test_a_429_lowers_the_fast_window_from_its_own_rate_and_leaves_the_hour_alone() -> None:
    # 20/s beside 5000/h, paced at 20/s when a 429 comes: the per-second window is the
    # one to lower (by at most half an episode), and the hourly one keeps what it holds
    # (filled, it would hold the token to the hour's 1.4/s for up to the hour).
    pool = TokenPool([A], limits=[Limit(20), Limit(5000, per=3600)], trial_in_flight=None)
    async with pool:
        loop = asyncio.get_running_loop()
        for _ in range(4):
            (await pool.acquire()).release()
        async with pool.lease() as lease:
            lease.rate_limited()
        (slot,) = core_of(pool).sched.slots.values()
        fast, hourly = slot.windows
        assert hourly.limit == Limit(5000, per=3600)
        assert hourly.level_at(loop.time()) <= 5.0  # the five leases, less what drained
        assert 10.0 <= fast.limit.rate < 20.0
        # rested one unit's drain time at the new rate, not the hour's (0.72 s)
        assert pool.stats().token(NAME_A).cooldown_left == pytest.approx(1 / fast.limit.rate)
        start, served = loop.time(), 0
        while loop.time() < start + 10.0:
            (await pool.acquire()).release()
            served += 1
        assert served >= 10 * 10  # at least the halved rate, not the hour's 1.4/s
