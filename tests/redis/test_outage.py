"""Redis away and back (issue 12): the degraded bound holds from the first moment.

Four worker processes with the backend's default settings send requests as fast as the
shared limits let them, to a loopback API that records each arrival by token
(``outage.py``); Redis is paused (``SIGSTOP``) or killed (``kill -9``) and restarted
empty. Over every arrival, no token gets a unit over ``burst + rate * t`` in any window
of length ``t`` (granting each window ``outage.JITTER`` for the arrivals' own jitter).
Then each rule that makes it so, on its own: the local buckets start full, Redis
reservations go to the local limiter, no Redis reservation is granted unconfirmed, the
share comes from the worker count, the way back holds the shared buckets full, and a
state Redis lost comes back full.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from aurora_async import BackendUnavailable, LeaseTimeout, Limit, TokenPool
from aurora_async._core.buckets import Window
from aurora_async._redis import RedisBackend
from aurora_async._redis.degrade import LocalLimiter
from aurora_async._redis.wire import parse_reply

from .outage import LIMIT, TOKENS, run
from .support import Events, RedisProcess, backend_of, free_port, granted_at, reserved, until

pytestmark = pytest.mark.redis

A = "aaaa-secret-0001"
#: The loop's timer may fire within its clock's resolution of the time it was set for.
TICK = 1e-6


# -- four processes, default settings: no unit over the bound ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["stop", "kill"])
async def test_an_outage_costs_no_unit_over_any_tokens_bound(
    own_redis: RedisProcess, fault: str
) -> None:
    """``stop``: ``SIGSTOP`` for 1.5 s (the timeout is 0.25 s), then ``SIGCONT``;
    ``kill``: ``kill -9``, and 1.5 s later a new, empty server on the same port."""
    outcome = await run(own_redis, fault, workers=4, before=1.0, down=1.5, after=4.0)
    # Before, during and after the outage, never a unit over any token's bound.
    assert outcome.worst(LIMIT) == {token[-4:]: (0.0, 0.0, 0.0) for token in TOKENS}
    for result in outcome.results:
        assert result["errors"] == {}
        assert result["modes"] == ["redis", "degrade", "redis"]
        assert result["workers"] == 4  # each served on a quarter of each limit
    # And they served while Redis was away: the bound was not kept by idling.
    start, end = outcome.marks["fault"] + 1.0, outcome.marks["repair"]
    for token in TOKENS:
        assert any(start <= t < end for t in outcome.arrivals[token])


# -- the rules, one by one ------------------------------------------------------------------


def test_local_windows_start_full_as_of_the_switch_plus_the_margin() -> None:
    """A quarter of Limit(10): burst 2.5, 2.5 a second. Full at 5.0, the first unit fits
    once one has drained (5.4), then one every 0.4 s: no burst on top of what the shared
    bucket had just let through."""
    limits = [Window(Limit(10, per=1, burst=10), 0.0)]
    local = LocalLimiter(0.25, 5.0)
    assert local.ready("t", limits, 1) == 5.0 + 2.5 / 2.5 + (1 - 2.5) / 2.5
    local.take("t", limits, 1, local.ready("t", limits, 1))
    assert local.ready("t", limits, 1) == pytest.approx(5.8)


def test_a_relimit_before_the_local_windows_are_full_keeps_them_full_until_then() -> None:
    local = LocalLimiter(0.5, 10.0)
    local.windows("t", [Window(Limit(10, per=1, burst=2), 0.0)])  # burst 1, 5 a second
    local.relimit("t", [Window(Limit(10, per=1, burst=4), 0.0)], 9.0)  # burst 2
    (w,) = local.windows("t", ())
    # What the old window holds at 9.0 (6 units) lasts until 10.2; full as of 10.0 is
    # later: the bigger bucket does not start with room the old one did not have.
    assert w.tat == 10.0 + 2 / 5


async def test_the_default_share_is_one_over_the_workers_counted() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", namespace="share")
    own = RedisBackend("redis://127.0.0.1:1/0", namespace="share", degrade_share=0.1)
    try:
        assert backend._share is None  # no count yet: no share is safe
        backend._members.workers = 4
        assert backend._share == 0.25
        backend._members.workers = 1
        assert backend._share == 1.0
        own._members.workers = 2
        assert own._share == 0.1
    finally:
        await backend.aclose()
        await own.aclose()


def test_reserve_replies_count_the_workers() -> None:
    version, resync, workers, leases = parse_reply(b"17.3 0 0 4|3 0")
    assert (version, resync, workers, leases) == ("17.3", False, 4, [["3", "0"]])


async def test_each_reserve_reply_tells_the_worker_count(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = (make_pool([A], limits=Limit(100)) for _ in range(2))
    async with one:
        (await one.acquire()).release()
        assert (backend_of(one)._workers, backend_of(one)._share) == (1, 1.0)
        async with two:
            (await two.acquire()).release()
            assert backend_of(two)._workers == 2
            (await one.acquire()).release()
            # From that reply, at once (no read of the namespace's state needed).
            assert (backend_of(one)._workers, backend_of(one)._share) == (2, 0.5)


async def test_a_worker_that_never_reached_redis_serves_nothing_by_default() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    blind = RedisBackend(url, namespace="blind", timeout=0.05)
    async with TokenPool([A], backend=blind, trial_in_flight=None) as pool:
        with pytest.raises(BackendUnavailable, match="degrade_share="):
            await pool.acquire()
        assert blind.mode == "degrade"
    # With a share of its own, it serves on it.
    own = RedisBackend(url, namespace="blind", timeout=0.05, degrade_share=1.0)
    limit = Limit(10, per=1, burst=1)
    async with TokenPool([A], limits=limit, backend=own, trial_in_flight=None) as pool:
        (await pool.acquire()).release()
        assert own.mode == "degrade"


async def test_redis_reservations_not_granted_yet_are_served_locally_after_the_switch(
    own_redis: RedisProcess, events: Events
) -> None:
    """Two leases wait on reservations made in Redis (due 0.5 s and 1 s later) when
    Redis stops answering. Neither is granted from its Redis reservation: when the
    first comes due, Redis has answered no call for longer than the timeout, so the
    worker asks first, finds Redis away, and serves both on its local limiter, full as
    of the switch plus the timeout."""
    backend = RedisBackend(
        own_redis.url, namespace="requeue", timeout=0.1, degrade_share=1.0, audit=True
    )
    pool = TokenPool([A], limits=Limit(2, per=1, burst=1), backend=backend, trial_in_flight=None)
    async with pool:
        (await pool.acquire()).release()
        waiters = [asyncio.create_task(pool.acquire()) for _ in range(2)]
        await reserved(pool, 2)
        log = await backend.audit_log()
        own_redis.pause()
        try:
            leases = await asyncio.gather(*waiters)
            local = backend._failover.local
            assert local is not None
        finally:
            own_redis.resume()
        (down,) = (e["at"] for e in events.named("aurora.redis.degraded"))
        assert all(granted_at(lease) > down for lease in leases)
        # One unit, 2 a second: the first once it has drained, the next 0.5 s later.
        assert granted_at(leases[0]) >= local.full_at + 1 / 2 - TICK
        assert granted_at(leases[1]) >= local.full_at + 2 / 2 - TICK
        for lease in leases:
            lease.release()
    assert [e.cost for e in log] == [1.0, 1.0, 1.0]  # (the two stay spent in Redis: safe)


async def test_a_reservation_due_long_after_the_last_call_waits_for_redis_to_answer(
    make_backend: Callable[..., RedisBackend],
) -> None:
    backend = make_backend(timeout=0.1)
    pool = TokenPool([A], limits=Limit(2, per=1, burst=1), backend=backend, trial_in_flight=None)
    loop = asyncio.get_running_loop()
    real = backend._redis.call
    reserves: list[float] = []

    async def recording(script: Any, keys: Any, args: Any) -> Any:
        if script.name == "reserve":
            reserves.append(loop.time())
        return await real(script, keys, args)

    backend._redis.call = recording  # type: ignore[method-assign]
    async with pool:
        (await pool.acquire()).release()
        second = await pool.acquire()  # reserved 0.5 s ahead, granted once Redis answers
        second.release()
    # One call for each lease, and one more when the second came due, with nothing in it.
    assert len(reserves) == 3
    assert reserves[2] - reserves[1] > backend._redis.timeout
    assert granted_at(second) > reserves[2]


async def test_a_reply_slower_than_the_timeout_is_confirmed_before_its_grant(
    make_backend: Callable[..., RedisBackend],
) -> None:
    backend = make_backend(timeout=0.1)
    pool = TokenPool([A], limits=Limit(100), backend=backend, trial_in_flight=None)
    redis = backend._redis
    run_script = redis._run
    slow: list[bool] = []
    reserves = 0

    async def run_slowly(script: Any, keys: Any, args: Any) -> Any:
        nonlocal reserves
        reserves += script.name == "reserve"
        if slow and script.name == "reserve":
            slow.clear()
            # Sent, then answered later than the timeout (0.1 s): real time, since the
            # backend dates a reply by when its call was sent, on the loop's clock. A
            # loaded machine only sleeps longer: the reply is always too old to trust.
            await asyncio.sleep(0.15)
        return await run_script(script, keys, args)

    redis._run = run_slowly  # type: ignore[method-assign]
    async with pool:
        (await pool.acquire()).release()
        slow.append(True)
        before = reserves
        (await pool.acquire()).release()  # due at once, but from a call 0.15 s old
        assert reserves == before + 2  # its own, and the one that confirmed it


async def test_a_reservation_that_comes_back_after_the_switch_is_served_locally(
    make_backend: Callable[..., RedisBackend],
) -> None:
    """Another call (a write, say) finds Redis away while a reserve call is out; the
    reservation it comes back with is given up, and the local limiter serves the lease.
    (The namespace is new: its first reserve call ended a "gap", so the worker, back
    at its first probe, holds and goes on serving locally.)"""
    backend = make_backend(timeout=0.1, degrade_share=1.0)
    pool = TokenPool([A], limits=Limit(100), backend=backend, trial_in_flight=None)
    real = backend._redis.call
    out, gate = asyncio.Event(), asyncio.Event()

    async def held(script: Any, keys: Any, args: Any) -> Any:
        if script.name == "reserve" and not gate.is_set():
            out.set()
            await gate.wait()
        return await real(script, keys, args)

    async with pool:
        (await pool.acquire()).release()  # registered
        backend._redis.call = held  # type: ignore[method-assign]
        task = asyncio.create_task(pool.acquire())
        await out.wait()
        backend._failover.went_down(BackendUnavailable("a write found Redis away"))
        local = backend._failover.local
        assert local is not None
        gate.set()
        lease = await task
        assert granted_at(lease) >= local.full_at + 1 / 100 - TICK  # not at once
        lease.release()


async def test_back_from_one_slow_call_while_redis_answered_the_worker_holds_nothing(
    make_backend: Callable[..., RedisBackend], raw: Any, events: Events
) -> None:
    """Redis ran a reserve call of the namespace less than a timeout before the worker
    came back, and no silence longer than that ended within the hold: nobody else can
    be serving locally, so the worker comes back at once and holds nothing."""
    backend = make_backend(degrade_share=0.5)
    pool = TokenPool([A], limits=Limit(100), backend=backend, trial_in_flight=None)
    async with pool:
        (await pool.acquire()).release()
        await raw.delete(f"{backend.hash_tag}:gap")  # (as in a namespace busy for a while)
        backend._failover.went_down(BackendUnavailable("one call was slow"))
        assert backend.mode == "degrade"
        await until(lambda: backend.mode == "redis", timeout=backend._failover.hold / 2)
        (await pool.acquire(timeout=0)).release()  # not held full
    assert "aurora.redis.resuming" not in events.names()


async def test_back_from_an_outage_redis_reserves_nothing_until_the_hold_ends(
    own_redis: RedisProcess, events: Events
) -> None:
    """The worker that served locally keeps doing so for ``hold_for(timeout)`` after it
    is back, and keeps the shared bucket full that long: a worker that never saw the
    outage (it started after it) waits for the hold to end."""
    limit = Limit(10, per=1, burst=10)
    backend = RedisBackend(own_redis.url, namespace="hold", timeout=0.1, degrade_share=1.0)
    pool = TokenPool([A], limits=limit, backend=backend, trial_in_flight=None)
    async with pool:
        (await pool.acquire()).release()
        await asyncio.to_thread(own_redis.stop)
        (await pool.acquire()).release()
        assert backend.mode == "degrade"
        await asyncio.to_thread(own_redis.start)  # empty
        await until(lambda: "aurora.redis.resuming" in events.names())
        assert backend.mode == "degrade"  # still on its local limiter
        other = RedisBackend(own_redis.url, namespace="hold", timeout=0.1)
        async with TokenPool([A], limits=limit, backend=other, trial_in_flight=None) as late:
            with pytest.raises(LeaseTimeout) as raised:
                await late.acquire(timeout=0.5)  # at once: nothing comes sooner
        assert backend.mode == "degrade"  # still
        hold = backend._failover.hold  # hold_for(0.1): the probes' cap and 4 timeouts
        await until(lambda: backend.mode == "redis", timeout=hold + 1.0)
    # Full until the hold ends, then a unit drains (0.1 s): without the hold the token
    # would come in 0.1 s (a lost state comes back full), with nothing in Redis at once.
    found = re.search(r"soonest token can take it in ([\d.]+)s", str(raised.value))
    assert found is not None
    assert 0.5 < float(found.group(1)) <= hold + 0.1


async def test_a_state_redis_lost_comes_back_full(make_pool: Callable[..., TokenPool]) -> None:
    pool = make_pool([A], limits=Limit(10, per=1, burst=10))
    async with pool:
        (await pool.acquire(timeout=0)).release()  # a new token starts empty
        await backend_of(pool).reset()  # (as a restart or a flush would)
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0)  # registered again, full: its use is unknown
        (await pool.acquire()).release()  # once a unit has drained
