"""Quotas on the calendar (``Limit.daily``, ``Limit.monthly``): when they reset, the
window that keeps one, and the scheduler and pool serving it, with exact times."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import pytest

from aurora_async import Limit, Token, TokenPool
from aurora_async._core.buckets import CalendarWindow
from aurora_async._core.calendar import Calendar
from aurora_async._core.scheduler import INF, Scheduler
from aurora_async._pool import core as pool_core


def unix(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("calendar", "wall", "last", "following"),
    [
        (Calendar("day"), "2026-12-06T15:00Z", "2026-12-06T00:00Z", "2026-12-07T00:00Z"),
        (Calendar("day"), "2026-12-06T00:00Z", "2026-12-06T00:00Z", "2026-12-07T00:00Z"),
        (
            Calendar("day", "08:30"),
            "2026-12-06T08:29:59Z",
            "2026-12-05T08:30Z",
            "2026-12-06T08:30Z",
        ),
        # New York leaves daylight saving time on 2026-11-01: that day lasts 25 hours.
        (
            Calendar("day", "00:00", "America/New_York"),
            "2026-11-01T12:00:00-05:00",
            "2026-11-01T00:00-04:00",
            "2026-11-02T00:00-05:00",
        ),
        # Day 31 of a month: February's last day instead, March's 31st after it.
        (Calendar("month", day=31), "2026-02-15T00:00Z", "2026-01-31T00:00Z", "2026-02-28T00:00Z"),
        (Calendar("month", day=31), "2026-02-28T00:00Z", "2026-02-28T00:00Z", "2026-03-31T00:00Z"),
        (Calendar("month"), "2026-12-31T23:00Z", "2026-12-01T00:00Z", "2027-01-01T00:00Z"),
        (Calendar("month"), "2027-01-01T00:00Z", "2027-01-01T00:00Z", "2027-02-01T00:00Z"),
    ],
)
def test_resets_on_the_calendar(calendar: Calendar, wall: str, last: str, following: str) -> None:
    assert calendar.last_reset(unix(wall)) == unix(last)
    assert calendar.next_reset(unix(wall)) == unix(following)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"reset": "24:00"}, 'reset must be a time of day "HH:MM"'),
        ({"reset": "7:00"}, 'reset must be a time of day "HH:MM"'),
        ({"tz": "Mars/Olympus"}, "tz must name a time zone"),
        ({"tz": "../etc/passwd"}, "tz must name a time zone"),
        ({"unit": "Tokens"}, "lowercase letters"),
    ],
)
def test_daily_says_what_is_wrong(kwargs: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Limit.daily(100, **kwargs)  # type: ignore[arg-type]


def test_monthly_checks_its_day_and_limits_read_as_text() -> None:
    with pytest.raises(ValueError, match="day must be a day of the month from 1 to 31"):
        Limit.monthly(5, day=32)
    assert str(Limit.daily(1000)) == "1000/day, resets 00:00 UTC"
    assert str(Limit.monthly(9, day=15, unit="tokens")) == (
        "9 tokens/month, resets on day 15 at 00:00 UTC"
    )
    assert repr(Limit.daily(3, reset="08:30")) == "Limit.daily(3.0, reset='08:30', tz='UTC')"
    assert Limit.daily(3) != Limit(3, per=86_400)  # a calendar is not a leaky bucket


# -- the window ------------------------------------------------------------------------

NOON = unix("2026-12-06T12:00Z")  # 12 hours before the next midnight
HALF_DAY = 12 * 3600.0


def test_a_calendar_window_counts_until_the_reset() -> None:
    w = CalendarWindow(Limit.daily(3), 0.0, NOON)  # loop time 0 is noon
    assert w.resets_at == HALF_DAY
    for _ in range(3):
        assert w.ready_at(1) == -INF
        w.take(1, 10.0)
    assert w.level_at(10.0) == 3.0
    assert w.ready_at(1) == HALF_DAY
    assert w.ready_at(4) == INF  # more than the count: never
    assert w.level_at(HALF_DAY) == 0.0
    w.take(1, HALF_DAY + 5)
    assert w.level_at(HALF_DAY + 5) == 1.0
    assert w.resets_at == 3 * HALF_DAY


def test_settles_give_back_and_saved_states_on_a_calendar_window() -> None:
    w = CalendarWindow(Limit.daily(10), 0.0, NOON)
    w.take(4, 1.0)
    w.adjust(+9, 2.0)  # used 13 of 10: debt until the reset
    assert w.ready_at(0) == HALF_DAY
    w.adjust(-20, 3.0)
    assert w.level_at(3.0) == 0.0  # never below nothing
    w.take(2, 4.0)
    w.give_back(2, 4.0, 5.0)  # granted this period: back
    w.take(2, 6.0)
    w.give_back(2, -HALF_DAY - 1, 7.0)  # granted before the period began: nothing back
    assert w.level_at(7.0) == 2.0
    w.put(7.0, 8.0)
    assert w.level_at(8.0) == 7.0
    w.put(7.0, -HALF_DAY - 1)  # saved yesterday: counts for nothing today
    assert w.level_at(8.0) == 0.0
    w.shift(100.0)  # the loop's clock moves; the reset stays at midnight
    assert w.resets_at == HALF_DAY + 100.0


# -- the scheduler and the pool ---------------------------------------------------------


def test_the_scheduler_serves_a_daily_quota_then_waits_for_midnight() -> None:
    sched = Scheduler(trial_in_flight=None)
    sched.wall_offset = NOON
    slot = sched.add(Token("q-secret-value-0001"), "q", (Limit(100), Limit.daily(3)), None, 0.0)
    assert slot.mixed
    for t in (0.0, 1.0, 2.0):
        assert sched.try_take(1.0, t) is slot
    assert sched.try_take(1.0, 3.0) is None
    assert sched.best(1.0, 3.0) == (slot, HALF_DAY)
    assert sched.try_take(1.0, HALF_DAY) is slot


@pytest.mark.looptime
async def test_a_pool_parks_a_spent_daily_quota_until_its_reset_and_serves_others(
    monkeypatch: pytest.MonkeyPatch, clock: Callable[[], Callable[[], float]]
) -> None:
    """At 23:59 UTC: three calls left today on A; then B (no quota) serves, and A again
    from midnight, 60 s on."""
    monkeypatch.setattr(pool_core, "wall_clock", lambda: unix("2026-12-06T23:59:00Z"))
    loop = asyncio.get_running_loop()
    a = Token("quota-secret-aaaa", limits=[Limit(1, per=10), Limit.daily(3)])
    b = Token("other-secret-bbbb", limits=[Limit(1, per=25)])
    pool = TokenPool([a, b], trial_in_flight=None)
    async with pool:
        now = clock()
        offset = pool_core.core_of(pool).sched.wall_offset
        assert offset == unix("2026-12-06T23:59:00Z") - loop.time()
        served: list[tuple[float, str]] = []
        for _ in range(7):
            async with pool.lease() as lease:
                served.append((now(), lease.name))
        assert served == [
            (0.0, a.name), (0.0, b.name), (10.0, a.name), (20.0, a.name),
            (25.0, b.name), (50.0, b.name), (60.0, a.name),
        ]  # fmt: skip
        stats = pool.stats().token(a.name)
        assert stats.limits == ("1/10s", "3/day, resets 00:00 UTC")
        assert stats.headroom == 0.0  # the 1/10s window was just used


@pytest.mark.looptime
async def test_a_settle_after_the_reset_refunds_nothing_to_the_new_day(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reserved 800 of a 1,000-token day at 23:59:30, settled for 100 after midnight,
    when the new day has used 600: the new day never counted those 800, so it gets none
    of the 700 back (400 left, not 1,000); a debt is still charged to it."""
    monkeypatch.setattr(pool_core, "wall_clock", lambda: unix("2026-12-06T23:59:30Z"))
    key = Token("quota-secret-cccc", limits=[Limit(100), Limit.daily(1000, unit="tokens")])
    pool = TokenPool([key], trial_in_flight=None)
    async with pool:
        lease = await pool.acquire(cost={"tokens": 800})
        await asyncio.sleep(60)  # the answer comes after midnight ...
        (await pool.acquire(cost={"tokens": 600}, timeout=0)).release()  # the new day's
        lease.settle(tokens=100)
        lease.release()
        with pytest.raises(TimeoutError):
            await pool.acquire(cost={"tokens": 401}, timeout=0)
        late = await pool.acquire(cost={"tokens": 400}, timeout=0)
        late.settle(tokens=410)  # a debt in the same day still counts
        late.release()
        core = pool_core.core_of(pool)
        window = next(iter(core.sched.slots.values())).windows[1]
        assert window.level_at(core.now()) == 1010.0
