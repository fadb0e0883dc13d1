"""The rules written once: which windows a spent quota fills (``spent_levels``) and the
cost check (``Scheduler.fits`` and ``Scheduler.check_cost``)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora_async import Limit, NoTokensAvailable, Token
from aurora_async._core.buckets import spent_levels
from aurora_async._core.scheduler import Scheduler

SECOND, HOUR = Limit(3, per=1), Limit(5000, per=3600)


@pytest.mark.parametrize(
    ("seconds", "levels"),
    [
        (0.5, (2.0, None)),  # shorter than every window: the shortest one
        (1.0, (2.0, None)),
        (60.0, (2.0, None)),  # the hour may still have room
        (3600.0, (2.0, 4999.0)),  # as long as the longest: every window
        (7200.0, (2.0, 4999.0)),
    ],
)
def test_windows_no_longer_than_the_cooldown_end_it_full_but_for_the_key_cost(
    seconds: float, levels: tuple[float | None, ...]
) -> None:
    assert spent_levels([SECOND, HOUR], 1.0, seconds) == levels


def test_the_shortest_window_is_spent_whatever_the_order() -> None:
    assert spent_levels([HOUR, SECOND], 1.0, 0.1) == (None, 2.0)
    assert spent_levels([Limit(2, per=1, burst=0.5)], 0.5, 3.0) == (0.0,)


limits = st.builds(
    Limit,
    rate=st.sampled_from([1, 2, 3, 10, 100]),
    per=st.sampled_from([0.5, 1, 2, 60, 3600]),
    burst=st.sampled_from([None, 1, 2, 5]),
)


@given(
    windows=st.lists(limits, min_size=1, max_size=3),
    before=st.lists(st.floats(0, 1), min_size=3, max_size=3),
    seconds=st.sampled_from([0.25, 1.0, 30.0, 3600.0]) | st.floats(0.001, 10_000),
    now=st.floats(0, 1e6),
)
def test_cool_applies_the_rule_to_the_slots_windows(
    windows: list[Limit], before: list[float], seconds: float, now: float
) -> None:
    sched = Scheduler(trial_in_flight=None)
    slot = sched.add(Token("secret-token-value-00"), "t0", tuple(windows), None, now)
    for w, part in zip(slot.windows, before, strict=False):
        w.take(part * w.burst, now)  # some of each bucket used already
    levels_before = [w.level_at(now) for w in slot.windows]
    until = now + seconds
    sched.cool(slot, until, now)
    assert slot.cool_until == until
    rule = spent_levels(windows, slot.key_cost, until - now)
    for w, level, old in zip(slot.windows, rule, levels_before, strict=True):
        if level is None:
            assert w.level_at(now) == old  # left alone
        else:
            # At the cooldown's end: the rule's level, or more if more was in the bucket
            # (up to float crumbs of the drain over the cooldown).
            drained = (until - now) * w.rate
            expected = max(level, old - drained)
            assert math.isclose(w.level_at(until), expected, abs_tol=1e-12 * (1 + drained))


def test_cool_without_a_spent_quota_leaves_the_windows_alone() -> None:
    sched = Scheduler(trial_in_flight=None)
    slot = sched.add(Token("secret-token-value-00"), "t0", (SECOND, HOUR), None, 0.0)
    sched.cool(slot, 10.0)
    assert [w.level_at(0.0) for w in slot.windows] == [0.0, 0.0]
    assert slot.cool_until == 10.0


#: Costs of every kind but bools: ``0 < True <= max_cost`` holds, so a bool passes the
#: guard (and the fast paths inlined from it); ``check_cost``, which the pool runs on a
#: lease before any fast path, refuses it.
costs = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 10),
    st.sampled_from([0.5, 1.0, 2.0, 3.0, 4.0, 5.0]),
    st.none(),
    st.text(max_size=2),
)


@given(cost=costs)
def test_the_guard_lets_through_exactly_the_costs_the_check_accepts(cost: object) -> None:
    sched = Scheduler(trial_in_flight=None)
    sched.add(Token("secret-token-value-00"), "t0", (Limit(4, per=1, burst=3),), None, 0.0)
    sched.disable(sched.add(Token("secret-token-value-01"), "t1", (Limit(5),), None, 0.0), "x")
    try:
        sched.check_cost(cost)  # type: ignore[arg-type]
    except (TypeError, ValueError, NoTokensAvailable):
        accepted = False
    else:
        accepted = True
    assert sched.fits(cost) == accepted


def test_what_the_check_says_when_the_guard_refuses() -> None:
    sched = Scheduler(trial_in_flight=None)
    with pytest.raises(NoTokensAvailable, match="no tokens"):
        sched.check_cost(1)
    slot = sched.add(Token("secret-token-value-00"), "t0", (Limit(4, per=1, burst=3),), None, 0.0)
    other = sched.add(Token("secret-token-value-01"), "t1", (Limit(5),), None, 0.0)
    sched.disable(other, "revoked")
    assert [sched.fits(c) for c in (3, 4, 6)] == [True, False, False]
    with pytest.raises(NoTokensAvailable, match="those whose burst allows it"):
        sched.check_cost(4)
    with pytest.raises(ValueError, match="exceeds the burst of every token"):
        sched.check_cost(6)
    sched.disable(slot, "revoked")
    with pytest.raises(NoTokensAvailable, match="every token is disabled or removed"):
        sched.check_cost(1)
