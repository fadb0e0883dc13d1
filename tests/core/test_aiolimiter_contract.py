"""aurora_async reads aiolimiter's private bucket state. These tests fail loudly if a
release of aiolimiter changes what those fields mean (see aurora_async/_core/buckets.py)."""

from __future__ import annotations

import asyncio

import aiolimiter
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_async import Limit
from aurora_async._core import buckets
from aurora_async._core.buckets import Window, check_aiolimiter


class FakeClockLoop:
    """Just enough of a loop for AsyncLimiter.has_capacity(): a settable clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def is_closed(self) -> bool:
        return False


def _bind(window: Window, loop: FakeClockLoop) -> None:
    window._event_loop = loop  # aiolimiter caches its loop here


def test_window_is_a_real_aiolimiter_bucket() -> None:
    window = Window(Limit(4, per=2, burst=6), now=10.0)
    assert isinstance(window, aiolimiter.AsyncLimiter)
    assert window.max_rate == 6  # the bucket's size is the burst
    assert window._rate_per_sec == 2  # it drains rate / per a second
    assert window.time_period == 3  # aiolimiter's own reading: 6 units per 3 s
    assert window._last_check == 10.0
    assert window._level == 0


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from([1, 2, 3, 10, 0.5]),
    per=st.sampled_from([1, 2, 0.25, 60]),
    burst=st.sampled_from([None, 1, 2, 5]),
    steps=st.lists(
        st.tuples(st.integers(0, 200).map(lambda k: k / 64), st.sampled_from([0.5, 1, 2])),
        max_size=30,
    ),
)
def test_our_arithmetic_agrees_with_aiolimiter(
    rate: float, per: float, burst: float | None, steps: list[tuple[float, float]]
) -> None:
    """Drive a Window with take() and compare, at every step, our ready_at() with
    aiolimiter's own has_capacity() on the same state and clock."""
    limit = Limit(rate, per=per, burst=burst)
    window = Window(limit, now=0.0)
    loop = FakeClockLoop()
    _bind(window, loop)
    now = 0.0
    for gap, cost in steps:
        now += gap
        if cost > window.burst:
            assert window.ready_at(cost) == float("inf")
            continue
        ready = window.ready_at(cost)
        # aiolimiter's verdict at `now` must match ours (away from the exact boundary,
        # where float rounding may fall either way)
        if abs(ready - now) > 1e-9:
            loop.now = now
            shadow = Window(limit, now=0.0)
            shadow._level, shadow._last_check = window._level, window._last_check
            _bind(shadow, loop)
            assert shadow.has_capacity(cost) == (ready <= now)
        if ready <= now + 1e-9:
            window.take(cost, now)
            # aiolimiter's own leak then add gives the same state
            loop.now = now


def test_take_matches_aiolimiter_acquire_bookkeeping() -> None:
    async def scenario() -> tuple[float, float]:
        limiter = aiolimiter.AsyncLimiter(5, 1)
        await limiter.acquire(3)
        return limiter._level, limiter._last_check

    loop = asyncio.new_event_loop()
    try:
        level, last = loop.run_until_complete(scenario())
    finally:
        loop.close()
    window = Window(Limit(5, per=1), now=last)
    window.take(3, last)
    assert (window._level, window._last_check) == (level, last)


def test_give_back_is_exact_at_the_same_instant_and_never_generous_later() -> None:
    window = Window(Limit(2, per=1, burst=2), now=0.0)  # drains 2 units a second
    window.take(1, 0.0)
    window.take(1, 0.0)
    window.give_back(1, granted_at=0.0, now=0.0)
    assert window.level_at(0.0) == 1
    # a lease granted at 0.25 and abandoned at 0.5: only the undrained part returns
    window.take(1, 0.25)  # level 0.5 + 1 = 1.5
    window.give_back(1, granted_at=0.25, now=0.5)  # 1 - 2 * 0.25 = 0.5 comes back
    assert window.level_at(0.5) == 0.5  # 1.5 - 0.5 drained - 0.5 back


def test_check_fails_loudly_when_internals_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(buckets, "_STATE", (*buckets._STATE, "_bucket_renamed"))
    with pytest.raises(ImportError, match=r"aiolimiter>=1\.1,<1\.4"):
        check_aiolimiter()


@pytest.mark.looptime
async def test_a_window_still_works_as_a_plain_async_limiter() -> None:
    """Windows share aiolimiter's per-limiter heap until someone acquires on one."""
    loop = asyncio.get_running_loop()
    a = Window(Limit(2, per=1, burst=1), now=loop.time())
    b = Window(Limit(2, per=1, burst=1), now=loop.time())
    start = loop.time()
    times = []
    for _ in range(3):
        await a.acquire()
        times.append(loop.time() - start)
    assert times == [0.0, 0.5, 1.0]
    assert b._waiters == []
    assert a._waiters is not b._waiters
