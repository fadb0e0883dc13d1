"""``Calibrator``: each rule of issue 11 on hand-fed evidence, with exact figures.

A :class:`Feed` plays the pool: it ticks the calibrator every ``TICK`` seconds while a
token is granted (and served) at some rate, and reports 429s. Rates are per second.
The simulation against server models is in ``test_calibrate_sim.py``.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_async import Limit
from aurora_async._core.calibrate import TICK, Calibrator
from aurora_async._core.calibrate_grid import (
    grid_above,
    grid_floor,
    measured_rate,
    standard_window,
)
from aurora_async._core.calibrate_types import (
    LIMIT_FROM_HEADER,
    LIMIT_RAISED,
    CalibrationSnapshot,
    Change,
    LimitSource,
    RateLimitedDecision,
)
from aurora_async._core.calibrate_windows import header_level, quota_bucket

G10 = 10 ** (1 / 116)  # one grid step


class Feed:
    """A token's counters, fed to its calibrator the way the pool does."""

    def __init__(self, calibrator: Calibrator) -> None:
        self.cal = calibrator
        self.now = 0.0
        self.ok = 0
        self.units = 0.0
        self.changes: list[tuple[float, Change]] = []

    def serve(self, seconds: float, rate: float, served: float | None = None) -> list[Change]:
        """``rate`` units a second granted for ``seconds`` (``served`` of them served
        well, all unless given), ticking; returns the changes."""
        new: list[Change] = []
        ok = float(self.ok)
        for _ in range(round(seconds / TICK)):
            self.now = round(self.now + TICK, 9)
            self.units += rate * TICK
            ok += (rate if served is None else served) * TICK
            self.ok = math.floor(ok + 1e-9)
            change = self.cal.tick(self.now, self.ok, self.units)
            if change is not None:
                new.append(change)
                self.changes.append((self.now, change))
        return new

    def saturate(self, seconds: float) -> list[Change]:
        """Granted (and served) at whatever rate the limits allow, for ``seconds``."""
        new: list[Change] = []
        for _ in range(round(seconds / TICK)):
            new += self.serve(TICK, min(limit.per_second for limit in self.cal.effective))
        return new

    def refuse(
        self, *, after: float = 0.0, granted: float = 0.0, retry_after: float | None = None
    ) -> RateLimitedDecision:
        """A 429 heard ``after`` seconds from now for a lease granted ``granted``
        seconds before it."""
        self.now = round(self.now + after, 9)
        return self.cal.rate_limited(self.now, self.now - granted, self.ok, self.units, retry_after)


def rates(change: Change | None) -> tuple[float, ...]:
    assert change is not None
    return tuple(limit.per_second for limit in change.limits)


def bursts(change: Change | None) -> tuple[float, ...]:
    assert change is not None
    return tuple(limit.burst for limit in change.limits)


# -- Limit.burst_given --------------------------------------------------------------------


def test_limit_records_whether_its_burst_was_given_without_changing_equality() -> None:
    guessed, given_ = Limit(10), Limit(10, burst=10)
    assert (guessed.burst_given, given_.burst_given) == (False, True)
    assert guessed == given_
    assert hash(guessed) == hash(given_)
    assert repr(guessed) == repr(given_) == "Limit(rate=10.0, per=1.0, burst=10.0)"
    assert Limit.sliding_window(100).burst_given


# -- the grid and the measure -------------------------------------------------------------


def test_grid_rounds_down_in_two_percent_steps_with_decades_on_it() -> None:
    assert grid_floor(10.0) == 10.0
    assert grid_floor(100.0) == 100.0
    assert grid_floor(9.9999) == 10 ** (115 / 116)
    assert grid_above(10.0) == 10 ** (117 / 116) == grid_above(10.0 * G10 * 0.999)
    assert pytest.approx(1.02, abs=2e-4) == G10
    # tokens of one tier measured a little apart share one learned rate
    assert grid_floor(19.70) == grid_floor(19.75) == grid_floor(20.0) == 19.6382800192977


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-3, 1e5))
def test_grid_floor_is_the_largest_grid_rate_at_most_the_rate(rate: float) -> None:
    low = grid_floor(rate)
    assert low <= rate * (1 + 1e-12)
    assert grid_above(low) > rate
    assert grid_floor(low) == low  # stable: learned rates stay equal floats


def test_the_measured_rate_is_the_least_bound_of_the_marks() -> None:
    # from (0 s, 0 ok): 21 / 2 s; from (1 s, 10 ok): 11 / 1 s
    assert measured_rate([(0.0, 0), (1.0, 10)], 2.0, 20) == 10.5
    assert measured_rate([(1.0, 10), (0.0, 0)], 2.0, 30) == 15.5
    assert measured_rate([], 2.0, 20) == math.inf
    assert measured_rate([(2.0, 5)], 2.0, 20) == math.inf  # no time has passed


def test_standard_windows_round_a_reset_up() -> None:
    assert [standard_window(s) for s in (0.4, 1.0, 9.7, 45, 3599, 5000)] == [
        1.0,
        1.0,
        10.0,
        60.0,
        3600.0,
        7200.0,
    ]
    assert standard_window(200000.0) == 200000.0


# -- starting points (rule 4) -------------------------------------------------------------


def test_declared_limits_start_as_given_and_are_the_same_objects() -> None:
    exact = Limit(20, burst=4)
    cal = Calibrator([exact], trusted=True, now=0.0)
    assert cal.effective == (exact,)
    assert cal.effective[0] is exact
    assert cal.source is LimitSource.DECLARED
    assert not cal.wants_ticks  # nothing may grow: no ticks needed
    assert cal.snapshot() == CalibrationSnapshot((exact,), (exact,), LimitSource.DECLARED, False, 0)


def test_a_defaulted_burst_starts_at_the_floor_and_the_largest_cost() -> None:
    assert Calibrator([Limit(20)], trusted=True, now=0.0).effective == (Limit(20, burst=1),)
    cal = Calibrator([Limit(20)], trusted=True, now=0.0, min_burst=3)
    assert cal.effective == (Limit(20, burst=3),)
    assert cal.wants_ticks  # the burst may grow back to 20
    # a declared burst below one unit stays (the pool refuses a cost above it anyway)
    assert Calibrator([Limit(0.5)], trusted=True, now=0.0).effective == (Limit(0.5),)


def test_the_default_limit_is_a_guess_that_wants_ticks() -> None:
    cal = Calibrator([Limit(10)], trusted=False, now=0.0)
    assert cal.effective == (Limit(10, burst=1),)
    assert cal.source is LimitSource.DEFAULT
    assert cal.wants_ticks
    assert not cal.limit_too_high


def test_a_calibrator_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="at least one limit"):
        Calibrator([], trusted=True, now=0.0)


def test_slow_start_doubles_a_guessed_rate_after_short_clean_saturated_periods() -> None:
    feed = Feed(Calibrator([Limit(10)], trusted=False, now=0.0))
    # a period is at least 0.5 s and 10 calls: 1 s at 10/s
    assert feed.serve(0.75, 10) == []
    (first,) = feed.serve(0.25, 10)
    assert first.event == LIMIT_RAISED
    assert first.reason == "slow start"
    assert rates(first) == (grid_floor(20.0),)
    assert first.old == (Limit(10, burst=1),)
    assert first.source is LimitSource.LEARNED is feed.cal.source
    # the next period is 10 calls at 19.6/s (0.51 s): the first tick after it
    assert feed.serve(0.5, 19.7) == []
    (second,) = feed.serve(0.25, 19.7)
    assert rates(second) == (grid_floor(2 * grid_floor(20.0)),)


def test_an_idle_token_learns_nothing() -> None:
    feed = Feed(Calibrator([Limit(10)], trusted=False, now=0.0))
    assert feed.serve(10.0, 5) == []  # half its rate: never saturated
    assert feed.cal.effective == (Limit(10, burst=1),)


# -- episodes (rule 1) --------------------------------------------------------------------


def test_a_429_for_a_lease_in_flight_when_the_episode_began_changes_nothing() -> None:
    feed = Feed(Calibrator([Limit(10)], trusted=True, now=0.0))
    feed.serve(1.0, 10)
    first = feed.refuse(granted=0.05)
    assert first.new_episode
    assert first.backoff_step == 0
    assert rates(first.change) == (grid_floor(9.7),)
    assert first.cooldown == 1 / grid_floor(9.7)  # one unit at the new rate
    in_flight = feed.refuse(after=0.02, granted=0.04)  # granted before the first came back
    assert in_flight == RateLimitedDecision(False, (1.0 + first.cooldown) - 1.02, None, 0)
    assert feed.refuse(after=1, granted=1.2).cooldown == 0.0  # long over
    with_retry = feed.refuse(granted=1.5, retry_after=3.0)
    assert with_retry == RateLimitedDecision(False, 3.0, None, 0)


def test_episodes_with_calls_served_between_lower_and_never_back_off() -> None:
    feed = Feed(Calibrator([Limit(10)], trusted=True, now=0.0))
    feed.serve(1.0, 10)
    steps = []
    for _ in range(4):
        decision = feed.refuse()
        steps.append((decision.new_episode, decision.backoff_step, decision.change is not None))
        feed.serve(0.25, 8)
    assert steps == [(True, 0, True)] * 4


def test_silent_episodes_back_off_doubling_once_each_after_the_first_second() -> None:
    feed = Feed(Calibrator([Limit(10)], trusted=True, now=0.0, backoff=(1.0, 5.0)))
    feed.serve(1.0, 10)
    assert feed.refuse().backoff_step == 0
    # nothing served since: within a second it is the rate (lower again), then backoff
    quick = feed.refuse(after=0.5)
    assert (quick.backoff_step, quick.change is not None) == (0, True)
    cooldowns = []
    for _ in range(5):
        decision = feed.refuse(after=1.0)
        assert decision.new_episode
        assert decision.change is None
        cooldowns.append((decision.backoff_step, decision.cooldown))
    assert cooldowns == [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (5, 5.0)]
    # Retry-After wins; the step still counts
    assert feed.refuse(after=10, retry_after=7.5).cooldown == 7.5
    # a call served ends the backoff (seen at the next tick, and at the next episode)
    feed.ok += 1
    feed.cal.tick(feed.now + TICK, feed.ok, feed.units)
    assert feed.cal.snapshot().backoff_step == 0
    assert feed.refuse(after=1.0).backoff_step == 0


def test_a_short_retry_after_sets_the_cooldown_of_a_new_episode_that_still_lowers() -> None:
    feed = Feed(Calibrator([Limit(10)], trusted=True, now=0.0))
    feed.serve(1.0, 10)
    decision = feed.refuse(retry_after=0.5)  # pacing: the time until a call would fit
    assert decision.cooldown == 0.5
    assert decision.change is not None
    assert feed.cal.cool_until == feed.now + 0.5


def test_a_long_retry_after_rests_the_token_and_learns_nothing() -> None:
    """Longer than the backoff's first step: a spent quota or a block (another client on
    the key), not this token's pacing."""
    feed = Feed(Calibrator([Limit(10)], trusted=True, now=0.0))
    feed.serve(1.0, 10)
    decision = feed.refuse(retry_after=2.5)
    assert decision.cooldown == 2.5
    assert decision.change is None
    assert feed.cal.effective == (Limit(10, burst=1),)
    assert feed.cal.cool_until == feed.now + 2.5
    assert not feed.cal.limit_too_high


# -- lowering (rule 2) --------------------------------------------------------------------


def test_the_rate_goes_to_the_measured_rate_at_most_halving() -> None:
    feed = Feed(Calibrator([Limit(20)], trusted=True, now=0.0))
    feed.serve(2.0, 20)
    first = feed.refuse()  # no stretch of the server's refusals yet: 3% down
    assert rates(first.change) == (grid_floor(0.97 * 20),)
    feed.serve(2.0, 18)  # served 36 calls in 2 s between two refusals
    second = feed.refuse()
    # bound: (36 + 1) / 2 s from the first refusal's mark = 18.5/s, then 0.97 of it
    assert rates(second.change) == (grid_floor(0.97 * 18.5),)
    assert second.change is not None
    assert second.change.reason == "rate refused"
    feed.serve(1.0, 17, served=2)  # the server let only 2 through in a second
    third = feed.refuse()
    assert rates(third.change) == (grid_floor(0.5 * grid_floor(0.97 * 18.5)),)
    assert feed.cal.limit_too_high


def test_a_burst_is_lowered_first_after_idle_and_both_when_refusals_go_on() -> None:
    cal = Calibrator([Limit(10, burst=8)], trusted=True, now=0.0)
    feed = Feed(cal)
    first = feed.refuse(after=0.1)  # the opening volley (a new token counts as idle)
    assert bursts(first.change) == (4.0,)
    assert rates(first.change) == (10.0,)
    assert first.change is not None
    assert first.change.reason == "burst refused"
    # the bucket held 8 units and now holds at most 4: the stretch waits for it
    assert cal.evidence.stretch_at == 0.1 + first.cooldown + (8 - 4) / 10
    feed.serve(0.5, 10)
    second = feed.refuse()  # no clean period since: both go down
    assert bursts(second.change) == (2.0,)
    assert rates(second.change) == (grid_floor(9.7),)
    assert second.change is not None
    assert second.change.reason == "burst and rate refused"
    assert cal.limit_too_high


def test_no_burst_goes_below_the_largest_cost() -> None:
    cal = Calibrator([Limit(10, burst=8)], trusted=True, now=0.0, min_burst=3)
    feed = Feed(cal)
    assert bursts(feed.refuse(after=0.1).change) == (4.0,)
    feed.serve(0.5, 10)
    assert bursts(feed.refuse().change) == (3.0,)
    assert cal.set_min_burst(2) is None  # lower than the floor: nothing to do
    raised = cal.set_min_burst(5)
    assert bursts(raised) == (5.0,)
    assert raised is not None
    assert raised.event == LIMIT_RAISED


# -- raising (rule 3) ---------------------------------------------------------------------


def test_a_defaulted_burst_grows_one_unit_a_period_while_the_rate_is_at_its_ceiling() -> None:
    feed = Feed(Calibrator([Limit(20)], trusted=True, now=0.0))
    # a burst period is at least 1 s and 50 calls: 2.5 s at 20/s
    assert feed.serve(2.25, 20) == []
    (grown,) = feed.serve(0.25, 20)
    assert bursts(grown) == (2.0,)
    assert grown.reason == "burst probe"
    (again,) = feed.serve(2.5, 20)
    assert bursts(again) == (3.0,)
    # the server refuses the grown burst: undone, and never tried again
    undone = feed.refuse(after=0.01)
    assert bursts(undone.change) == (2.0,)
    assert rates(undone.change) == (20.0,)
    assert undone.change is not None
    assert undone.change.reason == "burst probe refused"
    assert feed.serve(60, 20) == []
    assert not feed.cal.wants_ticks
    assert feed.cal.effective == (Limit(20, burst=2),)


def test_after_a_decrease_the_rate_climbs_halfway_then_probes_up_to_the_ceiling() -> None:
    cal = Calibrator([Limit(100, burst=2)], trusted=True, now=0.0)
    feed = Feed(cal)
    feed.serve(2.0, 100)  # more than a second in: not the opening volley
    lowered = feed.refuse()  # 3% down, then down to the grid: 96.1/s, 100 refused
    r0 = grid_floor(97)
    assert rates(lowered.change) == (r0,)
    assert r0 == 10 ** (230 / 116)
    # a climb period is at least 2 s and 60 calls: from 2.01 s, the tick at 4.25 s
    assert feed.serve(2.0, r0) == []
    (climb,) = feed.serve(0.25, r0)
    assert climb.reason == "halfway to a refused rate"
    r1 = grid_floor(math.sqrt(r0 * 100))
    assert rates(climb) == (r1,)
    assert r1 == 10 ** (231 / 116)
    # within 4% of the refused rate: a probe, after at least 5 s and 400 calls
    assert feed.serve(4.75, r1) == []
    (probe,) = feed.serve(0.25, r1)
    assert probe.reason == "rate probe"
    assert rates(probe) == (100.0,)
    # refused: undone, and the next probe waits twice as long (10 s from 9.36 s)
    undone = feed.refuse(after=0.1)
    assert rates(undone.change) == (r1,)
    assert undone.change is not None
    assert undone.change.reason == "rate probe refused"
    assert feed.serve(10.0, r1) == []
    assert rates(feed.serve(0.25, r1)[0]) == (100.0,)
    assert not cal.wants_ticks  # at the ceiling again


def test_rate_probes_add_two_percent_of_the_rate_at_the_last_decrease() -> None:
    cal = Calibrator([Limit(1000, burst=2)], trusted=True, now=0.0)
    feed = Feed(cal)
    feed.serve(2.0, 1000)
    feed.refuse()
    feed.serve(0.25, 970, served=800)  # refused again: 200 served in 0.25 s
    low = rates(feed.refuse().change)[0]
    assert low == grid_floor(0.97 * 201 / 0.25)  # the bound (200 + 1) / 0.25 s
    changes = feed.saturate(120.0)
    probes = [rates(c)[0] for c in changes if c.reason == "rate probe"]
    climbs = [rates(c)[0] for c in changes if c.reason == "halfway to a refused rate"]
    assert climbs
    assert probes
    step = 0.02 * low  # 15.5/s: less than a grid step up there, so a grid step it is

    def probe(rate: float) -> float:
        up = grid_floor(rate + step)
        return min(1000.0, up if up > rate else grid_above(rate))

    assert probes[0] == probe(climbs[-1]) == grid_above(climbs[-1])
    assert all(b == probe(a) for a, b in itertools.pairwise(probes))
    assert probes[-1] == 1000.0
    assert cal.effective == (Limit(1000, burst=2),)


# -- visible (rule 6) ---------------------------------------------------------------------


def test_limit_too_high_only_for_trusted_limits_lowered_by_evidence() -> None:
    for trusted in (True, False):
        feed = Feed(Calibrator([Limit(10)], trusted=trusted, now=0.0))
        feed.serve(1.0, 10)
        feed.refuse()
        assert feed.cal.limit_too_high is trusted
    snapshot = feed.cal.snapshot()
    assert snapshot.source is LimitSource.LEARNED
    assert snapshot.declared == (Limit(10),)
    assert snapshot.effective == feed.cal.effective


# -- headers ------------------------------------------------------------------------------


def test_a_stated_quota_replaces_the_guess_as_a_bucket_that_cannot_overrun_it() -> None:
    cal = Calibrator([Limit(10)], trusted=False, now=0.0)
    change = cal.from_headers(0.0, limit=100, remaining=60, reset_after=5.0, window=10.0)
    assert change is not None
    assert change.event == LIMIT_FROM_HEADER
    assert change.limits == (Limit(99, per=10, burst=1),) == cal.effective
    assert change.source is LimitSource.HEADER is cal.source
    assert change.old == (Limit(10, burst=1),)
    # the bucket admits 60 until the reset: 1 - 60 + 9.9/s * 5 s = -9.5, nothing asked
    assert change.levels is None
    # 95 used: 1 - 5 + 49.5 = 45.5 units in the bucket at least
    later = cal.from_headers(1.0, limit=100, remaining=5, reset_after=5.0, window=10.0)
    assert later is not None
    assert later.limits == later.old
    assert later.levels == (45.5,)
    assert cal.from_headers(2.0, limit=100, remaining=90, reset_after=5.0, window=10.0) is None
    assert cal.from_headers(2.0, limit=None, remaining=0, reset_after=5.0, window=None) is None


def test_a_quota_without_a_window_takes_the_standard_window_of_its_longest_reset() -> None:
    cal = Calibrator([Limit(10)], trusted=False, now=0.0)
    first = cal.from_headers(0.0, limit=5000, remaining=4000, reset_after=40.0, window=None)
    assert first is not None
    assert first.limits == (Limit(4999, per=60, burst=1),)
    # a longer reset shows the window is longer: the guess grows, never shrinks
    longer = cal.from_headers(1.0, limit=5000, remaining=3999, reset_after=3000.0, window=None)
    assert longer is not None
    assert longer.limits == (Limit(4999, per=3600, burst=1),)
    shorter = cal.from_headers(2.0, limit=5000, remaining=3998, reset_after=20.0, window=None)
    assert shorter is None or shorter.limits == (Limit(4999, per=3600, burst=1),)
    assert cal.from_headers(3.0, limit=7, remaining=1, reset_after=None, window=None) is None


@pytest.mark.parametrize(
    ("resets", "window"),
    [
        ([60.4], 60),  # GitHub's whole-second reset, up to a second past the window's end
        ([59.2, 60.99], 60),
        ([61.5], 120),  # more than a second past: a longer window
        ([1.4], 2),  # the rounding allowed is at most 2% of the reset: a short one is exact
        ([1.01], 1),
        ([0.3], 1),
        ([3600.7], 3600),
    ],
)
def test_a_reset_in_whole_seconds_is_not_taken_for_a_longer_window(
    resets: list[float], window: float
) -> None:
    cal = Calibrator([Limit(10)], trusted=False, now=0.0)
    first = cal.from_headers(0.0, limit=30, remaining=29, reset_after=resets[0], window=None)
    assert first is not None
    for n, reset in enumerate(resets[1:], start=1):
        cal.from_headers(float(n), limit=30, remaining=29 - n, reset_after=reset, window=None)
    assert [limit.per for limit in cal.effective] == [window]


def test_a_quota_caps_a_trusted_window_of_its_length_and_adds_others() -> None:
    declared = Limit(10, burst=5)
    cal = Calibrator([declared], trusted=True, now=0.0)
    same = cal.from_headers(0.0, limit=8, remaining=8, reset_after=1.0, window=1.0)
    assert same is not None
    assert same.limits == (Limit(7, burst=1),)
    assert cal.limit_too_high  # the server says less than the user declared
    hourly = cal.from_headers(0.0, limit=5000, remaining=5000, reset_after=3600, window=3600)
    assert hourly is not None
    assert hourly.limits == (Limit(7, burst=1), Limit(4999, per=3600, burst=1))
    # a quota the user declared exactly is no evidence against them
    cal = Calibrator([Limit(100, per=60)], trusted=True, now=0.0)
    assert cal.from_headers(0.0, limit=100, remaining=100, reset_after=60, window=None)
    assert cal.effective == (Limit(99, per=60, burst=1),)
    assert not cal.limit_too_high


def test_the_quota_bucket_and_its_level() -> None:
    assert quota_bucket(100, 10, 1.0) == (9.9, 1.0)
    assert quota_bucket(100, 10, 2.0) == (9.8, 2.0)
    assert quota_bucket(1, 10, 1.0) == (0.05, 1)  # one a window: over two windows
    assert header_level(9.9, 1.0, None, 5.0) is None
    assert header_level(9.9, 1.0, 0, None) == 1.0
    assert header_level(9.9, 1.0, 0, 2.0) == 1.0 + 19.8


def test_change_levels_must_match_the_limits() -> None:
    with pytest.raises(ValueError, match="1 entries for 2 limits"):
        Change((Limit(1), Limit(2)), LimitSource.HEADER, LIMIT_FROM_HEADER, (), (1.0,))
    with pytest.raises(ValueError, match="cooldown must be >= 0"):
        RateLimitedDecision(True, -1.0, None, 0)


# -- invariants ---------------------------------------------------------------------------

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["serve", "refuse", "refuse_in_flight", "header"]),
        st.floats(0.0, 3.0),
        st.floats(0.0, 120.0),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(
    declared=st.sampled_from([Limit(10), Limit(50, burst=5), Limit(3, per=0.5)]),
    trusted=st.booleans(),
    events=EVENTS,
)
def test_learned_limits_stay_within_their_bounds(
    declared: Limit, trusted: bool, events: list[tuple[str, float, float]]
) -> None:
    """Whatever the evidence: a trusted rate never exceeds its declaration, no burst
    goes below a unit, learned rates sit on the grid, and every change reports the
    limits it replaced."""
    feed = Feed(Calibrator([declared], trusted=trusted, now=0.0))
    for kind, seconds, rate in events:
        before = feed.cal.effective
        change: Change | None = None
        if kind == "serve":
            feed.serve(seconds, rate)
        elif kind == "refuse":
            change = feed.refuse(after=seconds).change
        elif kind == "refuse_in_flight":
            change = feed.refuse(after=seconds * 0.01, granted=seconds).change
        else:
            change = feed.cal.from_headers(feed.now, rate + 1, rate / 2, seconds, None)
        if change is not None:
            assert change.old == before
            assert change.limits == feed.cal.effective
    for _, change in feed.changes:
        assert change.event == LIMIT_RAISED
    for limit in feed.cal.effective:
        assert limit.burst >= min(1.0, declared.burst)
        if trusted and limit.per == declared.per:
            assert limit.per_second <= declared.per_second * (1 + 1e-9)
        learned = feed.cal.source is LimitSource.LEARNED and limit.per == declared.per
        if learned and limit.per_second not in (declared.per_second,):
            assert grid_floor(limit.per_second) == pytest.approx(limit.per_second, rel=1e-12)


def test_adopt_takes_another_process_s_limits_window_for_window() -> None:
    cal = Calibrator([Limit(20), Limit(1000, per=3600)], trusted=True, now=0.0)
    shared = (Limit(12, burst=2), Limit(900, per=3600, burst=900))
    assert cal.adopt(shared)
    assert cal.effective == shared
    assert cal.source is LimitSource.LEARNED
    assert cal.limit_too_high  # below what the user declared, by another's evidence
    assert not cal.adopt((Limit(5),))  # windows that do not match: nothing moves
    assert not cal.adopt((Limit(5, per=2), Limit(900, per=3600)))
    assert cal.effective == shared
