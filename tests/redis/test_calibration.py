"""Calibration with the Redis backend: the limits one worker learns for a token (from a
429, from rate-limit headers) are the token's limits for every worker of the namespace.

Two pools, each with its own ``RedisBackend``, stand for two processes. Reservations are
read from the audit log (the Redis server's clock, whole microseconds): a token of burst
1 that is saturated is reserved every ``e`` microseconds (``e = 1e6 / rate``), each
reservation at ``ceil(previous + e)``, so its limit shows exactly in the spacing.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable

import pytest

from aurora_async import Limit, TokenPool
from aurora_async._core.headers import RateLimitInfo
from aurora_async._core.policy import Outcome, Verdict
from aurora_async._pool.core import core_of
from aurora_async._pool.responses import account_response

from .support import Events, backend_of, conforms, limits_of, until

pytestmark = pytest.mark.redis

A = "aaaa-secret-0001"
NAME_A = "aaaa…0001"
#: Declared: 20 a second, one at a time (burst 1): every change shows in the spacing.
DECLARED = Limit(20, per=1, burst=1)


def written(pool: TokenPool) -> bool:
    """Every shared write of ``pool`` (limits, cooldowns) has landed in Redis."""
    backend = backend_of(pool)
    return not backend._members.limits.pending and backend._writes._task is None


def effective(pool: TokenPool) -> tuple[Limit, ...]:
    return limits_of(pool)[NAME_A]


async def saturate(pool: TokenPool, n: int) -> list[int]:
    """``n`` leases of ``pool`` at once: the server times (µs) of their reservations."""
    backend = backend_of(pool)
    before = len(await backend.audit_log())

    async def one() -> None:
        async with pool.lease():
            pass

    await asyncio.gather(*(one() for _ in range(n)))
    log = (await backend.audit_log())[before:]
    assert all((e.cost, e.worker) == (1, backend.worker) for e in log)
    return sorted(e.at_us for e in log)


def spaced_by(times: list[int], limit: Limit) -> bool:
    """Each reservation at ``ceil(previous + e)``: the GCRA of ``limit`` (burst 1),
    saturated, in the scripts' arithmetic."""
    e = 1_000_000 / limit.per_second
    return all(b == math.ceil(a + e) for a, b in itertools.pairwise(times))


async def test_a_429_in_one_worker_lowers_the_limit_for_the_other(
    make_pool: Callable[..., TokenPool], events: Events
) -> None:
    one, two = make_pool([A], limits=DECLARED), make_pool([A], limits=DECLARED)
    async with one, two:
        before = await saturate(two, 4)
        assert spaced_by(before, DECLARED)  # 50 ms apart
        async with one.lease() as lease:
            lease.rate_limited()
        lowered = effective(one)
        assert lowered[0].per_second < DECLARED.per_second  # the calibrator's answer
        await until(lambda: written(one))
        after = await saturate(two, 8)
        await until(lambda: effective(two) == lowered)  # adopted for its own view
        (stats,) = two.stats().tokens
    assert spaced_by(after, lowered[0])
    assert not spaced_by(after, DECLARED)
    assert conforms([(t - after[0]) / 1e6 for t in after], [1.0] * 8, lowered[0])
    # the other worker's calibrator believes what it adopted: learned, and too high
    assert (stats.limits, stats.limit_source) == ((str(lowered[0]),), "learned")
    assert stats.limit_too_high
    assert [e["token"] for e in events.named("aurora.redis.limits_adopted")] == [NAME_A]


async def test_limits_stated_by_headers_in_one_worker_bind_the_other(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool([A], limits=DECLARED), make_pool([A], limits=DECLARED)
    async with one, two:
        await saturate(two, 1)  # registered
        lease = await one.acquire()
        info = RateLimitInfo(limit=10, remaining=9, reset_after=1.0, window=1.0)
        account_response(core_of(one), lease, Outcome(Verdict.OK), info, 0.0)
        lease.release()
        stated = effective(one)
        assert stated != (DECLARED,)
        assert stated[0].per_second <= 10
        await until(lambda: written(one))
        after = await saturate(two, 6)
        await until(lambda: effective(two) == stated)
    assert spaced_by(after, stated[0])
    assert not spaced_by(after, DECLARED)


async def test_a_restarted_worker_adopts_the_learned_limits(
    make_pool: Callable[..., TokenPool], events: Events
) -> None:
    one = make_pool([A], limits=DECLARED)
    async with one:
        async with one.lease() as lease:
            lease.rate_limited()
        lowered = effective(one)
        await until(lambda: written(one))
    again = make_pool([A], limits=DECLARED)  # the same worker, restarted
    async with again:
        assert effective(again) == (DECLARED,)
        times = await saturate(again, 6)
        assert effective(again) == lowered  # adopted when it registered
        (stats,) = again.stats().tokens
    assert spaced_by(times, lowered[0])
    assert not spaced_by(times, DECLARED)
    assert stats.limits == (str(lowered[0]),)
    assert "aurora.redis.limits_differ" not in events.names()


async def test_other_declared_limits_replace_the_learned_ones(
    make_pool: Callable[..., TokenPool], events: Events
) -> None:
    one = make_pool([A], limits=DECLARED)
    async with one:
        async with one.lease() as lease:
            lease.rate_limited()
        await until(lambda: written(one))
    other = Limit(5, per=1, burst=1)  # the token file changed: a new ceiling
    again = make_pool([A], limits=other)
    async with again:
        times = await saturate(again, 4)
        assert effective(again) == (other,)
    assert spaced_by(times, other)
    assert [e["tokens"] for e in events.named("aurora.redis.limits_differ")] == [1]


async def test_a_decision_from_stale_limits_may_lower_but_not_raise(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool([A], limits=DECLARED), make_pool([A], limits=DECLARED)
    async with one, two:
        await saturate(two, 1)
        async with one.lease() as lease:
            lease.rate_limited()
        lowered = effective(one)
        await until(lambda: written(one))
        slot = core_of(two).slot(NAME_A)
        # Two has not seen the change; its calibration decides a raise from the declared
        # limit: refused, and two takes the shared limit instead.
        backend_of(two).relimited(slot, (Limit(21, per=1, burst=1),), (DECLARED,))
        await until(lambda: written(two) and effective(two) == lowered)
        refused = await saturate(one, 4)
        # A lower one decided from the same stale belief is safe: taken.
        lower = Limit(4, per=1, burst=1)
        backend_of(two).relimited(slot, (lower,), (DECLARED,))
        await until(lambda: written(two))
        taken = await saturate(one, 4)
        await until(lambda: effective(one) == (lower,))
    assert spaced_by(refused, lowered[0])
    assert spaced_by(taken, lower)


async def test_a_changed_window_admits_nothing_among_what_was_reserved_before(
    make_pool: Callable[..., TokenPool],
) -> None:
    """Reservations made under the old limits still count. Ten at 10 a second (burst 1)
    are reserved 100 ms apart, up to 900 ms ahead; raised to 20 a second meanwhile, the
    next reservation comes right after them (1000 ms), not among them (a fresh window
    at the new rate would admit one every 50 ms from now on)."""
    old, new = Limit(10, per=1, burst=1), Limit(20, per=1, burst=1)
    pool = make_pool([A], limits=old, calibrate=False)
    async with pool:
        backend = backend_of(pool)
        leases = [asyncio.create_task(pool.acquire()) for _ in range(10)]

        async def all_reserved() -> bool:  # (most not due)
            return len(await backend.audit_log()) == 10

        await until(all_reserved, what="the ten reservations")
        backend.relimited(core_of(pool).slot(NAME_A), (new,), (old,))
        await until(lambda: written(pool))
        (state,) = await backend.inspect()
        after = await saturate(pool, 4)
        for lease in await asyncio.gather(*leases):
            lease.release()
        first = [e.at_us for e in await backend.audit_log()][:10]
    assert spaced_by(first, old)
    assert first[-1] - first[0] == 900_000
    assert state.limits == ("20/s (burst 1)",)
    assert after[0] == first[0] + 1_000_000
    assert spaced_by(after, new)
