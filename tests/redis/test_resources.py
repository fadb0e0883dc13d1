"""Issue 13 across processes: limits of several resources (``Limit(unit=...)``), leases
that cost several (``cost={"requests": 1, "tokens": 1200}``), ``Lease.settle``, quotas on
the calendar and scopes, shared through Redis by every worker of a namespace.

Two pools, each on its own ``RedisBackend``, stand for two processes here;
``test_processes.py`` runs real ones. Waits are told by ``timeout=0``: a lease that
would have to wait fails at once (nothing reserved), so no test sleeps for its timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from aurora_async import BackendUnavailable, Costs, LeaseTimeout, Limit, Token, TokenPool
from aurora_async._pool import core
from aurora_async._pool.core import core_of
from aurora_async._redis import RedisBackend

from .support import RedisProcess, backend_of, conforms, landed

pytestmark = pytest.mark.redis

A, B = "aaaa-secret-0001", "bbbb-secret-0002"
#: 10 requests a second; 60 tokens a minute (1 a second) from a bucket of 1,000.
REQUESTS = Limit(10, per=1)
TOKENS = Limit(60, per=60, burst=1000, unit="tokens")


def llm(*secrets: str, limits: list[Limit] | None = None) -> list[str | Token]:
    return [Token(s, limits=limits or [REQUESTS, TOKENS]) for s in secrets]


async def test_one_workers_tokens_spend_is_every_workers(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool(llm(A)), make_pool(llm(A))
    async with one, two:
        async with one.lease(cost={"tokens": 1000}):
            pass
        # The tokens bucket is full for both workers: a lease naming tokens waits ...
        with pytest.raises(LeaseTimeout, match=r"in 0\.9\d\ds"):
            await two.lease(cost={"tokens": 1}, timeout=0).__aenter__()
        # ... and one that takes only requests does not (its window of requests has room).
        async with two.lease(cost=1, timeout=0):
            pass
        log = await backend_of(one).audit_log()
    assert [(e.cost, dict(e.parts)) for e in log] == [(1.0, {"tokens": 1000.0}), (1.0, {})]


async def test_a_cost_above_every_tokens_burst_of_a_resource_fails_at_once(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool(llm(A))
    async with pool:
        with pytest.raises(ValueError, match="1001 tokens exceeds the burst"):
            pool.lease(cost={"tokens": 1001})


async def test_two_pools_never_exceed_a_tokens_bound_in_any_resource(
    make_pool: Callable[..., TokenPool],
) -> None:
    # Requests bind for cheap leases, tokens for dear ones; both pools mix them.
    requests, tokens = Limit(40, per=1, burst=4), Limit(2000, per=1, burst=400, unit="tokens")
    limits = [requests, tokens]
    one, two = make_pool(llm(A, B, limits=limits)), make_pool(llm(A, B, limits=limits))
    async with one, two:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 0.5

        async def worker(pool: TokenPool, dear: bool) -> None:
            cost = {"requests": 1, "tokens": 300 if dear else 10}
            while loop.time() < stop:
                async with pool.lease(cost=cost):
                    pass

        await asyncio.gather(*(worker(p, i % 2 == 0) for p in (one, two) for i in range(6)))
        log = await backend_of(one).audit_log()
    assert {e.worker for e in log} == {backend_of(one).worker, backend_of(two).worker}
    t0 = min(e.at_us for e in log)
    for tid in {e.id for e in log}:
        mine = [e for e in log if e.id == tid]
        times = [(e.at_us - t0) / 1e6 for e in mine]
        assert conforms(times, [e.cost for e in mine], requests)
        assert conforms(times, [e.parts.get("tokens", 0.0) for e in mine], tokens)


async def test_a_refund_in_one_worker_lets_the_other_in_at_once(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool(llm(A)), make_pool(llm(A))
    async with one, two:
        async with one.lease(cost={"tokens": 1000}) as lease:
            lease.settle(tokens=100)  # the answer was short: 900 tokens come back
        await landed(one)
        async with two.lease(cost={"tokens": 890}, timeout=0):
            pass
        with pytest.raises(LeaseTimeout):  # ... and no more than that
            await two.lease(cost={"tokens": 20}, timeout=0).__aenter__()
        assert core_of(one).sched.slots[A].usage == {"tokens": 100.0}


async def test_a_debt_in_one_worker_delays_the_other(make_pool: Callable[..., TokenPool]) -> None:
    one, two = make_pool(llm(A)), make_pool(llm(A))
    async with one, two:
        async with one.lease(cost={"tokens": 100}) as lease:
            lease.settle(tokens=1500)  # 500 past the burst: debt
        await landed(one)
        # Even a lease that names no tokens waits while the window is in debt: from
        # 1,500 the bucket must drain to its burst of 1,000, at 1 token a second.
        with pytest.raises(LeaseTimeout, match=r"in 499\.9\d\ds"):
            await two.lease(cost=1, timeout=0).__aenter__()


async def test_settles_add_up_and_may_come_after_the_lease(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool(llm(A)), make_pool(llm(A))
    async with one, two:
        lease = await one.acquire(cost={"tokens": 600})
        lease.settle(tokens=200)
        lease.release()
        lease.settle(tokens=400)  # a stream that went on after the lease ended
        await landed(one)
        async with two.lease(cost={"tokens": 590}, timeout=0):
            pass
        with pytest.raises(LeaseTimeout):
            await two.lease(cost={"tokens": 20}, timeout=0).__aenter__()


# -- quotas on the calendar ----------------------------------------------------------------

MIDNIGHT = datetime(2026, 6, 2, tzinfo=UTC).timestamp()
DAILY = [Limit(10, per=1), Limit.daily(3)]


async def test_a_daily_quota_is_shared_and_resets_at_its_calendar_time(
    make_pool: Callable[..., TokenPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers' wall clocks read 100 s before midnight UTC (the pool reads it when
    # it is made; the loop's clock carries it on).
    monkeypatch.setattr(core, "wall_clock", lambda: MIDNIGHT - 100)
    one, two = make_pool([Token(A, limits=DAILY)]), make_pool([Token(A, limits=DAILY)])
    async with one, two:
        for _ in range(3):
            async with one.lease():
                pass
        # The day's quota is spent for every worker, until midnight.
        with pytest.raises(LeaseTimeout, match=r"in (99\.\d{3}|100\.000)s"):
            await two.lease(timeout=0).__aenter__()
        assert core_of(two).sched.slots[A].windows[1].level_at(0.0) == 0.0  # not seen yet
        # A worker whose wall clock is past midnight starts the new day for everyone.
        monkeypatch.setattr(core, "wall_clock", lambda: MIDNIGHT + 1)
        three = make_pool([Token(A, limits=DAILY)])
        async with three:
            async with three.lease(timeout=0):
                pass
            # The others' clocks still read the old day: the namespace's day never goes
            # back, and they count in the new one.
            async with two.lease(timeout=0):
                pass
            assert core_of(two).sched.slots[A].windows[1].level_at(0.0) == 2.0  # shared
            async with one.lease(timeout=0):
                pass
            # The new day's quota is spent: the next reset is a day after the last.
            with pytest.raises(LeaseTimeout, match=r"in 86398\.\d{3}s"):
                await three.lease(timeout=0).__aenter__()


async def test_a_settle_counts_in_the_days_quota(
    make_pool: Callable[..., TokenPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "wall_clock", lambda: MIDNIGHT - 100)
    limits = [Limit(10, per=1), Limit.daily(1000, unit="tokens")]
    one, two = make_pool([Token(A, limits=limits)]), make_pool([Token(A, limits=limits)])
    async with one, two:
        async with one.lease(cost={"tokens": 100}) as lease:
            lease.settle(tokens=1200)  # 200 past the day's quota
        await landed(one)
        with pytest.raises(LeaseTimeout, match=r"in (99\.\d{3}|100\.000)s"):
            await two.lease(timeout=0).__aenter__()  # in debt until the reset


@pytest.mark.parametrize("yesterday", [True, False])
async def test_a_refund_goes_back_only_to_the_period_the_lease_was_granted_in(
    make_pool: Callable[..., TokenPool], monkeypatch: pytest.MonkeyPatch, yesterday: bool
) -> None:
    # A lease granted 50 s after midnight reserves 800 of the day's 1,000 tokens and
    # settles at 100. Granted today, its 700 come back. Said to be granted 100 s earlier
    # (yesterday: a lease reserved before midnight and settled after it), nothing comes
    # back: yesterday's count is gone, and today's never held its reservation.
    monkeypatch.setattr(core, "wall_clock", lambda: MIDNIGHT + 50)
    limits = [Limit(10, per=1), Limit.daily(1000, unit="tokens")]
    one, two = make_pool([Token(A, limits=limits)]), make_pool([Token(A, limits=limits)])
    async with one, two:
        async with one.lease(cost={"tokens": 800}, timeout=0) as lease:
            granted_at = core_of(one).now() - (100.0 if yesterday else 0.0)
            reserved = lease.cost
        await landed(one)
        slot = core_of(one).sched.slots[A]
        backend_of(one).settled(slot, reserved, Costs(1, {"tokens": 100}), granted_at)
        await landed(one)
        if yesterday:
            with pytest.raises(LeaseTimeout):  # 800 + 300 > 1,000
                await two.lease(cost={"tokens": 300}, timeout=0).__aenter__()
        else:
            async with two.lease(cost={"tokens": 300}, timeout=0):
                pass  # 100 + 300


async def test_while_redis_is_away_calendar_quotas_refuse_what_they_would_count(
    own_redis: RedisProcess,
) -> None:
    backend = RedisBackend(own_redis.url, namespace="quota", timeout=0.1, degrade_share=0.5)
    tokens = [Token(A, limits=[Limit(10, per=1), Limit.daily(1000, unit="tokens")])]
    pool = TokenPool(tokens, backend=backend, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        # A lease that names no tokens is served locally (full as of the switch: it
        # waits for the local bucket of requests) ...
        async with pool.lease(cost=1):
            assert backend.mode == "degrade"
        # ... one the quota would count fails at once, saying why.
        with pytest.raises(BackendUnavailable, match="quota on the calendar"):
            await pool.lease(cost={"tokens": 10}).__aenter__()


# -- scopes ----------------------------------------------------------------------------------


async def test_a_429_in_one_scope_cools_that_scope_for_every_worker_and_no_other(
    make_pool: Callable[..., TokenPool],
) -> None:
    limit = Limit(100, per=1, burst=100)
    one, two = make_pool([A], limits=limit), make_pool([A], limits=limit)
    async with one, two:
        async with one.lease(scope="search") as lease:
            lease.rate_limited(retry_after=30)
        await landed(one)
        async with two.lease(scope="core", timeout=0):
            pass
        async with two.lease(timeout=0):  # no scope: the token itself is not cooling
            pass
        with pytest.raises(LeaseTimeout, match=r"in 29\.9\d\ds"):
            await two.lease(scope="search", timeout=0).__aenter__()
        assert core_of(one).sched.slots[A].scope_cool is not None
        log = await backend_of(one).audit_log()
    assert [e.scope for e in log] == ["search", "core", None]


async def test_a_scopes_windows_count_only_its_leases_for_every_worker(
    make_pool: Callable[..., TokenPool],
) -> None:
    limits = [Limit(100, per=1), Limit(2, per=60, scope="search")]
    one, two = make_pool(llm(A, limits=limits)), make_pool(llm(A, limits=limits))
    async with one, two:
        for _ in range(2):
            async with one.lease(scope="search"):
                pass
        with pytest.raises(LeaseTimeout, match=r"in 29\.9\d\ds"):  # 2 a minute: one in 30 s
            await two.lease(scope="search", timeout=0).__aenter__()
        async with two.lease(scope="core", timeout=0):
            pass
        async with two.lease(cost={"tokens": 5}, timeout=0):
            pass


async def test_two_pools_never_exceed_a_scopes_bound(make_pool: Callable[..., TokenPool]) -> None:
    token, search = Limit(60, per=1, burst=6), Limit(20, per=1, burst=2, scope="search")
    limits = [token, search]
    one, two = make_pool(llm(A, limits=limits)), make_pool(llm(A, limits=limits))
    async with one, two:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 0.5

        async def worker(pool: TokenPool, scope: str | None) -> None:
            while loop.time() < stop:
                async with pool.lease(scope=scope):
                    pass

        scopes = ["search", "search", "core", None]
        await asyncio.gather(*(worker(p, s) for p in (one, two) for s in scopes))
        log = await backend_of(one).audit_log()
    t0 = min(e.at_us for e in log)
    times = [(e.at_us - t0) / 1e6 for e in log]
    assert conforms(times, [1.0] * len(log), token)
    searches = [t for t, e in zip(times, log, strict=True) if e.scope == "search"]
    assert conforms(searches, [1.0] * len(searches), search)
    assert {e.scope for e in log} == {"search", "core", None}


async def test_a_settle_on_redis_dates_its_lease_from_when_it_asked(
    make_pool: Callable[..., TokenPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shared reservation is made after the lease asked and granted here a round trip
    # later: the settle dates it from when it asked, so a refund never reaches a quota
    # period the reservation was not counted in.
    pool = make_pool(llm(A))
    dated: list[float] = []
    async with pool:
        backend = backend_of(pool)
        real = backend.settled

        def spy(slot: object, reserved: float, actual: float, granted_at: float) -> None:
            dated.append(granted_at)
            real(slot, reserved, actual, granted_at)  # type: ignore[arg-type]

        monkeypatch.setattr(backend, "settled", spy)
        async with pool.lease(cost={"tokens": 100}) as lease:
            lease.settle(tokens=50)
        assert dated == [lease._enqueued_at]
        assert lease._enqueued_at < lease._granted_at
