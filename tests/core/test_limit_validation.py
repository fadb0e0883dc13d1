"""``Limit`` refuses, at construction, every limit a pool could not keep (issue 12).

Each accepted limit must give a pool that leases: no ``ZeroDivisionError``, overflow, or
inf/nan inside the scheduler, the calibration or the windows.
"""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from aurora_async import LeaseTimeout, Limit, Token, TokenPool
from aurora_async._core.limits import LARGEST, SMALLEST

SECRET = "tok-limit-probe-0001"


SANER = (
    ": beyond that the pool's arithmetic on the limit would overflow or lose it; "
    "choose a rate, per and burst of saner sizes"
)


@pytest.mark.parametrize(
    ("rate", "per", "burst", "message"),
    [
        (
            1e308,
            1e-10,
            None,
            "rate / per (units a second) must be between 1e-150 and 1e+150, "
            "got 1e+308 / 1e-10 = inf",
        ),
        (
            5e-324,
            2,
            None,
            "rate / per (units a second) must be between 1e-150 and 1e+150, got 5e-324 / 2.0 = 0.0",
        ),
        (
            1e-300,
            1e300,
            None,
            "per must be between 1e-150 and 1e+150, got 1e+300",
        ),
        (
            1e-300,
            1,
            1,
            "rate / per (units a second) must be between 1e-150 and 1e+150, "
            "got 1e-300 / 1.0 = 1e-300",
        ),
        (1, 1e-200, None, "per must be between 1e-150 and 1e+150, got 1e-200"),
        (1, 1, 1e151, "burst must be between 1e-150 and 1e+150, got 1e+151"),
        (1e100, 1, 1e-200, "burst must be between 1e-150 and 1e+150, got 1e-200"),
        (
            1e100,
            1e-100,
            None,
            "rate / per (units a second) must be between 1e-150 and 1e+150, "
            "got 1e+100 / 1e-100 = 1e+200",
        ),
        (
            1e-100,
            1e100,
            None,
            "rate / per (units a second) must be between 1e-150 and 1e+150, "
            "got 1e-100 / 1e+100 = 1e-200",
        ),
    ],
)
def test_limits_the_pool_cannot_keep_fail_at_construction(
    rate: float, per: float, burst: float | None, message: str
) -> None:
    full = f"Limit {message}{SANER}"
    with pytest.raises(ValueError, match=f"^{re.escape(full)}$"):
        Limit(rate, per=per, burst=burst)


def test_the_range_ends_are_accepted() -> None:
    assert Limit(SMALLEST, per=1, burst=SMALLEST).per_second == SMALLEST
    assert Limit(LARGEST, per=1, burst=LARGEST).per_second == LARGEST
    assert Limit(1, per=LARGEST, burst=LARGEST).per_second == SMALLEST
    assert Limit(SMALLEST**2, per=SMALLEST, burst=LARGEST).rate == SMALLEST**2
    assert Limit.sliding_window(3, per=1e12, burst=1) == Limit(2, per=1e12, burst=1)


async def test_a_fractional_burst_serves_fractional_costs_and_refuses_a_unit_at_once() -> None:
    async with TokenPool([SECRET], limits=Limit(5, burst=0.5), calibrate=False) as pool:
        async with pool.lease(cost=0.5, timeout=0) as lease:
            assert lease.cost == 0.5
        refused = (
            "cost 1 exceeds the burst of every token (largest: 0.5); no lease of that cost "
            "can ever be granted. Lower the cost or raise a Limit's burst."
        )
        with pytest.raises(ValueError, match=f"^{re.escape(refused)}$"):
            await pool.acquire(cost=1, timeout=0)


WIDE = st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False)
SCALED = st.builds(lambda m, e: m * 10.0**e, st.floats(1, 10), st.integers(-160, 160))
EDGES = st.sampled_from(
    [
        SMALLEST,
        LARGEST,
        math.nextafter(SMALLEST, 0),
        math.nextafter(LARGEST, math.inf),
        1.0,
        0.5,
        5e-324,
        1e300,
        1.7976931348623157e308,
    ]
)
POSITIVE = st.one_of(SCALED, EDGES, WIDE)


def _limit(rate: float, per: float, burst: float | None) -> Limit:
    try:
        return Limit(rate, per=per, burst=burst)
    except ValueError:
        reject()


async def _use(limits: list[Limit], own: bool, calibrate: bool, start_full: bool) -> None:
    """Lease, report a 429, lease again: each either granted or timed out, nothing else."""
    cost = min(1.0, *(limit.burst for limit in limits))
    token = Token(SECRET, limits=limits) if own else SECRET
    pool = TokenPool(
        [token], limits=limits, calibrate=calibrate, start_full=start_full, expiring_within=None
    )
    async with pool:
        for timeout in (0.001, 0.0, 0.001):
            try:
                async with pool.lease(cost=cost, timeout=timeout) as lease:
                    if timeout == 0.0:
                        lease.rate_limited()
            except LeaseTimeout:
                pass
        assert [t.name for t in pool.stats().tokens] == ["tok-…0001"]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.tuples(POSITIVE, POSITIVE, st.none() | POSITIVE), min_size=1, max_size=3),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_a_pool_of_any_accepted_limit_leases(
    specs: list[tuple[float, float, float | None]], own: bool, calibrate: bool, start_full: bool
) -> None:
    limits = [_limit(rate, per, burst) for rate, per, burst in specs]
    for limit in limits:
        assert SMALLEST <= limit.per_second <= LARGEST
        assert 0 < limit.burst / limit.per_second < math.inf
    asyncio.run(_use(limits, own, calibrate, start_full))
