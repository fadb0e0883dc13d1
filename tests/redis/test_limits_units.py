"""Shared limits without a server: the local limiter's carry-over (the same rule as the
scripts' ``carry``) and the text that carries limits between workers."""

from __future__ import annotations

import math

import pytest

from aurora_async import Limit
from aurora_async._core.buckets import Window
from aurora_async._redis.degrade import LocalLimiter
from aurora_async._redis.limits import declared_digest, parse_shared, relimit_args


def windows(*limits: Limit) -> tuple[Window, ...]:
    return tuple(Window(limit, 0.0) for limit in limits)


def test_a_relimit_keeps_unchanged_windows_and_fills_changed_ones_above_reservations() -> None:
    local = LocalLimiter(0.5, -math.inf)  # half of each rate and burst, empty
    fast, slow = Limit(10, per=1, burst=4), Limit(100, per=60)
    local.take("t", windows(fast, slow), 1.0, 0.0)
    local.take("t", windows(fast, slow), 1.0, 0.0)  # fast tat 0.4 (5/s), slow 2 * 1.2 = 2.4
    local.relimit("t", windows(Limit(5, per=1, burst=4), slow), 0.1)
    new_fast, same_slow = local.windows("t", ())
    assert same_slow.tat == 2.4  # unchanged: kept
    # Changed (2.5/s, burst 2): full at 0.1 is 0.1 + 2 / 2.5 = 0.9; what the old fast
    # window still holds (1.5 units) is less; the slow one's bound is later.
    assert new_fast.tat == 0.1 + 2 / 2.5


def test_a_raise_never_admits_among_what_was_reserved() -> None:
    local = LocalLimiter(1.0, -math.inf)
    old = windows(Limit(10, per=1, burst=1))
    for at in (0.0, 0.1, 0.2, 0.3):
        local.take("t", old, 1.0, at)  # tat 0.4
    local.relimit("t", windows(Limit(20, per=1, burst=1)), 0.05)
    (w,) = local.windows("t", ())
    assert w.tat == 0.4  # not 0.05 + 0.05: the old reservations run until 0.4
    assert w.ready(1.0) == 0.4


def test_limits_travel_as_text_and_come_back_equal() -> None:
    limits = (Limit(19.2523061240002, per=1, burst=1), Limit(5000, per=3600))
    args = relimit_args("id", 1000, limits, (Limit(20, per=1, burst=1),))
    text = args[2]
    assert args[3:] == [2, "1.0", "51941.82938704604", "5000.0", "720000.0", 1, "1.0", "50000.0"]
    back, be = parse_shared(f"{text}|1 51941.82938704604 5000 720000")
    assert back == limits
    assert be == [(1.0, 51941.82938704604), (5000.0, 720000.0)]
    # Registered limits (no text) come back as rates per second.
    assert parse_shared("|2 100000")[0] == (Limit(10, per=1, burst=2),)


def test_the_declared_digest_tells_declared_limits_apart_and_hides_nothing() -> None:
    a = declared_digest((Limit(10),), True)
    assert a == declared_digest((Limit(10),), True)
    assert (
        len(
            {a, declared_digest((Limit(10, burst=10),), True), declared_digest((Limit(10),), False)}
        )
        == 3
    )


def test_the_local_limiter_takes_each_windows_own_part_of_a_lease() -> None:
    from aurora_async._core.costs import as_costs

    local = LocalLimiter(0.5, 0.0)  # half of each limit, full as of 0
    limits = windows(Limit(10, per=1), Limit(1000, per=1, burst=400, unit="tokens"))
    cost = as_costs({"requests": 1, "tokens": 100})
    # Full at 0: tokens burst' 200 at 500/s, so 100 tokens fit at 0.2; requests at 0.2.
    assert local.ready("t", limits, cost) == pytest.approx(0.2)
    assert local.ready("t", limits, 1.0) == pytest.approx(0.2)  # tokens' bucket: no debt
    local.take("t", limits, cost, 0.2)
    assert local.ready("t", limits, 1.0) == pytest.approx(0.4)
    local.adjust("t", limits, {"tokens": 400.0}, None, 0.2)  # debt: 400 past the brim
    assert local.ready("t", limits, 1.0) == pytest.approx(0.2 + 400 / 500)
    local.adjust("t", limits, {"tokens": -1000.0}, None, 0.2)  # a refund: never below empty
    assert local.ready("t", limits, cost) == pytest.approx(0.4)  # (requests bind again)


def test_a_scopes_local_window_counts_only_that_scopes_leases() -> None:
    from aurora_async._core.costs import scoped

    local = LocalLimiter(1.0, -math.inf)  # the whole limit, empty
    limits = windows(Limit(10, per=1), Limit(1, per=1, scope="search"))
    search = scoped(1.0, "search")
    local.take("t", limits, search, 0.0)
    assert local.ready("t", limits, search) == pytest.approx(1.0)  # its scope's window
    assert local.ready("t", limits, scoped(1.0, "core")) <= 0.0  # another scope: room
    assert local.ready("t", limits, 1.0) <= 0.0
