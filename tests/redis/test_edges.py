"""Corner cases of one worker: waiters that leave at awkward moments, tokens that change
under a reservation, caps, Redis refusing a script, and what happens across an outage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from aurora_async import (
    BackendUnavailable,
    Lease,
    Limit,
    NoTokensAvailable,
    TokenPool,
    TokenState,
)
from aurora_async._redis import RedisBackend

from .support import Events, RedisProcess, backend_of, granted_at, landed, reserved, until

pytestmark = pytest.mark.redis

A, B, C = "aaaa-secret-0001", "bbbb-secret-0002", "cccc-secret-0003"
NAME_A, NAME_B = "aaaa…0001", "bbbb…0002"
SLOW = Limit(10, per=1, burst=1)  # one every 0.1 s


async def test_a_reservation_followed_by_another_stays_spent(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A], limits=SLOW)
    async with pool:
        first = await pool.acquire()
        second = asyncio.create_task(pool.acquire())  # reserved at 0.1
        third = asyncio.create_task(pool.acquire())  # reserved at 0.2, same call
        await reserved(pool, 2)
        second.cancel()
        fourth = await pool.acquire()  # cannot take 0.1: the one at 0.2 followed it
        log = await backend_of(pool).audit_log()
        granted = await third
    times = [(e.at_us - log[0].at_us) / 1e6 for e in log]
    assert times == [0.0, 0.1, 0.2, 0.3]  # no give-back entry
    assert granted_at(first) < granted_at(granted) < granted_at(fourth)


async def test_a_grant_cancelled_before_it_resumed_is_given_back(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A], limits=SLOW)
    backend = backend_of(pool)
    async with pool:
        task = asyncio.create_task(pool.acquire())
        apply = backend._apply

        def apply_then_cancel(batch: Any, reply: Any) -> None:
            apply(batch, reply)  # grants it (the reservation was due at once)...
            task.cancel()  # ...and its task is cancelled before it runs again

        backend._apply = apply_then_cancel  # type: ignore[method-assign]
        with pytest.raises(asyncio.CancelledError):
            await task
        backend._apply = apply  # type: ignore[method-assign]
        stats = pool.stats().token(NAME_A)
        assert (stats.leases, stats.in_flight, pool.stats().granted) == (0, 0, 0)
        async with pool.lease() as lease:
            assert lease.name == NAME_A
        log = await backend.audit_log()
    assert [e.cost for e in log] == [1.0, -1.0, 1.0]
    assert log[2].at_us == log[0].at_us or log[2].at_us - log[0].at_us < 100_000


async def test_a_waiter_that_leaves_during_the_call_gives_its_reservation_back(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A], limits=SLOW)
    backend = backend_of(pool)
    async with pool:
        async with pool.lease():
            pass
        task = asyncio.create_task(pool.acquire())
        call = backend._redis.call

        async def call_then_cancel(script: Any, keys: Any, args: Any) -> Any:
            reply = await call(script, keys, args)
            if script.name == "reserve" and not task.done():
                task.cancel()
            return reply

        backend._redis.call = call_then_cancel  # type: ignore[method-assign]
        with pytest.raises(asyncio.CancelledError):
            await task
        backend._redis.call = call  # type: ignore[method-assign]
        async with pool.lease():
            pass
        log = await backend.audit_log()
    assert [e.cost for e in log] == [1.0, 1.0, -1.0, 1.0]
    assert log[3].at_us == log[1].at_us  # the slot it gave back


async def test_a_reserved_token_disabled_meanwhile_sends_the_waiter_elsewhere(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A, B], limits=SLOW)
    backend = backend_of(pool)
    async with pool:
        await pool.acquire()
        await pool.acquire()  # both tokens used: the next waits 0.1 s for one
        task = asyncio.create_task(pool.acquire())
        await reserved(pool)  # (polling for it could miss it coming due, under load)
        ticket = next(t for _, t in backend._timeline.reserved())
        assert ticket.slot is not None
        dead = ticket.slot.name
        pool.disable(dead, "by hand")
        lease = await task
    assert lease.name != dead


async def test_a_reserved_token_cooled_meanwhile_sends_the_waiter_elsewhere(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A, B], limits=SLOW)
    backend = backend_of(pool)
    async with pool:
        one, two = await pool.acquire(), await pool.acquire()
        task = asyncio.create_task(pool.acquire())
        await reserved(pool)
        ticket = next(t for _, t in backend._timeline.reserved())
        held = one if one.name == ticket.slot.name else two  # type: ignore[union-attr]
        held.rate_limited(retry_after=10)
        lease = await task
    assert lease.name != held.name


async def test_the_trial_cap_holds_each_token_to_one_lease_until_it_proves_itself(
    make_backend: Callable[..., RedisBackend],
) -> None:
    pool = TokenPool([A, B], limits=Limit(1000), backend=make_backend())  # trial: 1
    peaks: list[int] = []

    async def one(fail: bool) -> None:
        async with pool.lease() as lease:
            peaks.append(max(t.in_flight for t in pool.stats().tokens))
            await asyncio.sleep(0.01)  # the call, 10 ms of real time: the six overlap
            if fail:
                lease.failed()

    async with pool:
        await asyncio.gather(*(one(True) for _ in range(6)))  # no call goes well
        first_round = max(peaks)
        peaks.clear()
        await asyncio.gather(*(one(False) for _ in range(6)))
    assert first_round == 1
    assert max(peaks) > 1  # proven: the cap is lifted


async def test_a_script_refused_by_redis_fails_the_lease_without_hanging(
    make_pool: Callable[..., TokenPool], raw: Any, events: Events
) -> None:
    pool = make_pool([A])
    backend = backend_of(pool)
    async with pool:
        async with pool.lease():
            pass
        await raw.delete(backend._keys.ready)
        await raw.set(backend._keys.ready, "not a sorted set")
        with pytest.raises(BackendUnavailable, match="WRONGTYPE"):
            await pool.acquire()
        await raw.delete(backend._keys.ready)
        async with pool.lease() as lease:  # registers again and carries on
            assert lease.name
    assert "aurora.redis.reserve_failed" in events.names()
    assert "aurora.redis.degraded" not in events.names()


async def test_a_sync_refused_by_redis_is_logged_and_leases_fail_cleanly(
    make_pool: Callable[..., TokenPool], raw: Any, events: Events
) -> None:
    pool = make_pool([A])
    backend = backend_of(pool)
    await raw.set(backend._keys.ids, "not a set")
    async with pool:
        with pytest.raises((NoTokensAvailable, BackendUnavailable)):
            await asyncio.wait_for(pool.acquire(), 5)
        await raw.delete(backend._keys.ids)
        async with pool.lease():
            pass
    assert "aurora.redis.sync_failed" in events.names()


async def test_workers_gone_quiet_are_forgotten_with_their_tokens(
    make_backend: Callable[..., RedisBackend], raw: Any
) -> None:
    one = TokenPool([A, B], backend=make_backend(key_ttl=1.0), trial_in_flight=None)
    two = TokenPool([C], backend=make_backend(key_ttl=1.0), trial_in_flight=None)
    async with one, two:
        async with one.lease():
            pass
        # One is silent for longer than its liveness (0.5 s). Real time: the liveness is
        # judged by the Redis server's clock. A loaded machine only sleeps longer, and
        # an idle worker sends no heartbeat meanwhile, so one is forgotten either way.
        await asyncio.sleep(0.6)
        async with two.lease():
            pass  # two's registration forgets one, and one's tokens leave the index
        states = {t.id: t.state for t in await backend_of(two).inspect()}
        assert sorted(states.values()) == ["active", "idle", "idle"]
        names = set()
        for _ in range(3):  # one registers again when it finds itself forgotten
            async with one.lease() as lease:
                names.add(lease.name)
        assert names <= {NAME_A, NAME_B}
        assert await raw.zscore(backend_of(one)._keys.procs, backend_of(one).worker)


async def test_busy_workers_keep_their_heartbeat(
    make_backend: Callable[..., RedisBackend], raw: Any
) -> None:
    backend = make_backend(key_ttl=1.0)
    pool = TokenPool([A], backend=backend, limits=Limit(1000), trial_in_flight=None)
    async with pool:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 0.35
        while loop.time() < stop:
            async with pool.lease():
                await asyncio.sleep(0.005)  # busy: a lease after another, for 0.35 s
        seen = await raw.zscore(backend._keys.procs, backend.worker)
        seconds, micros = await raw.time()
        now_ms = seconds * 1000 + micros // 1000
    # Touched within the last heartbeat period (0.1 s), with 0.15 s for a late loop; a
    # worker that stopped beating after registering would be 0.35 s old or more.
    assert now_ms - seen < 250


async def test_remote_disables_reach_waiters_and_stats(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool([A, B]), make_pool([A, B])
    async with one, two:
        async with one.lease(), two.lease():
            pass
        one.disable(NAME_A, "expired")
        one.disable(NAME_B, "expired")
        await landed(one)
        with pytest.raises(NoTokensAvailable):
            await two.acquire()
        assert {t.state for t in two.stats().tokens} == {TokenState.DISABLED}


async def test_closing_gives_back_reservations_and_flushes_shared_writes(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool([A], limits=SLOW), make_pool([A], limits=SLOW)
    async with two:
        async with one:
            await one.acquire()
            waiter = asyncio.create_task(one.acquire())
            await reserved(one)
            one.cool(NAME_A, 0.3)
        with pytest.raises(Exception, match="closed"):
            await waiter
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with two.lease():
            waited = loop.time() - start
        log = await backend_of(two).audit_log()
    assert [e.cost for e in log] == [1.0, 1.0, -1.0, 1.0]
    assert waited >= 0.2  # the cooldown reached Redis before one closed


async def test_lease_timeouts_are_validated(make_pool: Callable[..., TokenPool]) -> None:
    pool = make_pool([A])
    async with pool:
        with pytest.raises(TypeError):
            await pool.acquire(timeout="soon")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            await pool.acquire(timeout=-1)
        with pytest.raises(TypeError):
            await pool.acquire(cost="one")  # type: ignore[arg-type]


# -- across an outage -------------------------------------------------------------------


async def test_degraded_mode_times_out_blocks_and_caps(
    own_redis: RedisProcess, events: Events
) -> None:
    backend = RedisBackend(own_redis.url, namespace="local", timeout=0.1, degrade_share=0.5)
    pool = TokenPool([A], limits=SLOW, backend=backend, max_in_flight=1, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        # Degraded: half the rate, locally, from a bucket full as of the switch plus the
        # timeout (one unit, 5 a second: 0.3 s after the switch).
        held = await pool.acquire()
        assert backend.mode == "degrade"
        with pytest.raises(Exception, match="in-flight cap"):
            await pool.acquire(timeout=0.05)  # blocked by the cap until its deadline
        held.release()
        with pytest.raises(Exception, match="soonest token"):
            await pool.acquire(timeout=0)  # the local bucket is empty for 0.2 s
        waiter = asyncio.create_task(pool.acquire())
        # (Served by the local limiter: no reply to hook, so polled; it is due in 0.2 s.)
        holding = backend._queue.holding
        await until(lambda: len(holding()) == 1, what="a local reservation")
        waiter.cancel()  # its local reservation goes back
        with pytest.raises(asyncio.CancelledError):
            await waiter
        lease = await pool.acquire()
        assert lease.waited < 0.25
        lease.release()
    assert "aurora.redis.degraded" in events.names()


async def test_writes_made_while_redis_is_away_reach_it_when_it_is_back(
    own_redis: RedisProcess, events: Events
) -> None:
    backends = [RedisBackend(own_redis.url, namespace="replay", timeout=0.1) for _ in range(2)]
    one, two = (TokenPool([A, B], backend=b, trial_in_flight=None) for b in backends)
    async with one, two:
        async with one.lease(), two.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        async with one.lease():
            pass  # one notices: degraded
        one.disable(NAME_A, "401 while Redis was away")
        one.cool(NAME_B, 0.5)
        await asyncio.to_thread(own_redis.start)
        await until(lambda: backends[0].mode == "redis")
        async with two.lease() as lease:
            assert lease.name == NAME_B  # two registers again; A is disabled for all
        await until(lambda: two.stats().token(NAME_A).state is TokenState.DISABLED)
        assert two.stats().token(NAME_A).reason == "401 while Redis was away"
    assert events.names().count("aurora.redis.recovered") >= 1


async def test_a_failing_probe_is_logged_and_retried(
    own_redis: RedisProcess, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisBackend(own_redis.url, namespace="probe", timeout=0.1)
    pool = TokenPool([A], backend=backend, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        own_redis.pause()
        sync = backend._sync
        failures = []

        async def broken_once() -> None:
            if not failures:
                failures.append(1)
                raise RuntimeError("boom")
            await sync()

        monkeypatch.setattr(backend, "_sync", broken_once)
        async with pool.lease():
            pass  # times out: degraded
        own_redis.resume()
        await until(lambda: backend.mode == "redis")
    assert "aurora.redis.probe_failed" in events.names()


async def test_fail_open_respects_caps_and_prefers_tokens_not_cooling(
    own_redis: RedisProcess,
) -> None:
    backend = RedisBackend(own_redis.url, namespace="open", timeout=0.1, on_failure="fail-open")
    pool = TokenPool([A, B], backend=backend, max_in_flight=1, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        pool.cool(NAME_A, 60)
        names = []
        for _ in range(3):
            async with pool.lease() as lease:
                names.append(lease.name)
        assert names == [NAME_B] * 3
        pool.cool(NAME_B, 60)
        first = await pool.acquire()  # everything cools: granted anyway (fail-open)
        second = await pool.acquire()
        assert {first.name, second.name} == {NAME_A, NAME_B}
        third = asyncio.create_task(pool.acquire())  # both at their cap: it waits
        await until(lambda: len(backend._queue.blocked) == 1, what="the third to block at the caps")
        assert not third.done()
        first.release()
        lease: Lease = await third
        assert lease.name == first.name
        lease.release()
        second.release()


async def test_all_disabled_and_redis_away_fails_at_once(own_redis: RedisProcess) -> None:
    backend = RedisBackend(own_redis.url, namespace="gone", timeout=0.1)
    pool = TokenPool([A], backend=backend, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        async with pool.lease():
            pass
        pool.disable(NAME_A, "by hand")
        with pytest.raises(NoTokensAvailable):
            await pool.acquire()


async def test_a_waiter_cancelled_in_the_middle_of_its_own_call_leaves_nothing_behind(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A], limits=SLOW)
    backend = backend_of(pool)
    async with pool:
        call = backend._redis.call
        started, gate = asyncio.Event(), asyncio.Event()

        async def slow_call(script: Any, keys: Any, args: Any) -> Any:
            started.set()
            await gate.wait()  # the waiter is cancelled here, mid-call
            return await call(script, keys, args)

        backend._redis.call = slow_call  # type: ignore[method-assign]
        task = asyncio.create_task(pool.acquire())  # an idle worker: it calls itself
        await started.wait()
        others = [asyncio.create_task(pool.acquire()) for _ in range(2)]  # queue behind
        await until(lambda: backend.waiting == 3, what="the two others to queue")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        backend._redis.call = call  # type: ignore[method-assign]
        gate.set()  # (a call made meanwhile goes on)
        leases = await asyncio.gather(*others)
        assert backend.waiting == 0
        assert pool.stats().token(NAME_A).in_flight == 2
        for lease in leases:
            lease.release()


async def test_a_429_while_degraded_cools_and_fills_the_local_limiter(
    own_redis: RedisProcess,
) -> None:
    backend = RedisBackend(own_redis.url, namespace="local429", timeout=0.1, degrade_share=0.5)
    pool = TokenPool([A], limits=Limit(20, per=1, burst=4), backend=backend, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        async with pool.lease() as lease:
            assert backend.mode == "degrade"
            lease.rate_limited(retry_after=0.1)
        first, second = await pool.acquire(), await pool.acquire()
        # After the cooldown: one, then the local steady rate (10 a second), no burst.
        assert first.waited >= 0.09
        assert granted_at(second) - granted_at(first) >= 0.09
        first.release()
        second.release()
