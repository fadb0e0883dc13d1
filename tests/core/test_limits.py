"""``Limit``: validation, its text, and the sliding-window recipe."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_async import Limit, Token
from aurora_async._core.scheduler import Scheduler


def test_burst_defaults_to_the_rate_and_equal_limits_compare_equal() -> None:
    assert Limit(10).burst == 10
    assert Limit(10) == Limit(10, per=1.0, burst=10)
    assert Limit(10, per=60).per_second == pytest.approx(1 / 6)
    assert str(Limit(10)) == "10/1s"
    assert str(Limit(3, per=0.5, burst=1)) == "3/0.5s (burst 1)"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rate": 0}, ValueError, "Limit rate must be a positive finite number"),
        ({"rate": -1}, ValueError, "Limit rate must be"),
        ({"rate": math.inf}, ValueError, "Limit rate must be"),
        ({"rate": math.nan}, ValueError, "Limit rate must be"),
        ({"rate": "10"}, TypeError, "Limit rate must be a number, not str"),
        ({"rate": True}, TypeError, "Limit rate must be a number, not bool"),
        ({"rate": 1, "per": 0}, ValueError, "Limit per must be"),
        ({"rate": 1, "burst": -2}, ValueError, "Limit burst must be"),
    ],
)
def test_bad_limits_say_which_field(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Limit(**kwargs)  # type: ignore[arg-type]


def test_sliding_window_is_a_small_bucket_draining_the_rest() -> None:
    assert Limit.sliding_window(100, per=60) == Limit(98, per=60, burst=2)
    assert Limit.sliding_window(10, burst=1) == Limit(9, per=1, burst=1)
    with pytest.raises(ValueError, match=r"burst \(5\) must be below count \(5\)"):
        Limit.sliding_window(5, burst=5)
    with pytest.raises(ValueError, match="Limit count must be"):
        Limit.sliding_window(0)


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(3, 40),
    per=st.sampled_from([0.5, 1.0, 2.0]),
    gaps=st.lists(st.integers(0, 40).map(lambda k: k / 64), min_size=1, max_size=200),
)
def test_sliding_window_never_exceeds_count_in_any_window(
    count: int, per: float, gaps: list[float]
) -> None:
    """Requests arrive at arbitrary moments; whatever the pool grants, no window of
    ``per`` seconds holds more than ``count`` grants (a closed interval: both ends)."""
    sched = Scheduler(trial_in_flight=None)
    slot = sched.add(
        Token("secret-sliding-window"), "t", (Limit.sliding_window(count, per),), None, 0.0
    )
    now = 0.0
    granted: list[float] = []
    for gap in gaps:
        now += gap
        if sched.try_take(1, now) is slot:
            granted.append(now)
            sched.release(slot)
    for i, start in enumerate(granted):
        inside = [t for t in granted[i:] if t <= start + per + 1e-9]
        assert len(inside) <= count, (start, inside)
