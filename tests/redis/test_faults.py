"""Redis misbehaving mid-run: the pool keeps working under its policy, nothing crashes,
and the limits hold (within the documented degraded bound while Redis is away).

Faults are injected at moments chosen with real sleeps; every assertion is on what was
recorded (the server's audit log, grant times, logged events), never on sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aurora_async import BackendUnavailable, Limit, TokenPool
from aurora_async._pool.core import core_of
from aurora_async._redis import RedisBackend

from .support import Events, RedisProcess, conforms, granted_at, until

pytestmark = pytest.mark.redis

TOKENS = ["aaaa-secret-0001", "bbbb-secret-0002"]
LIMIT = Limit(100, per=1, burst=10)


class Load:
    """Coroutines leasing back to back; records every grant and every error."""

    def __init__(self, pool: TokenPool, concurrency: int = 8) -> None:
        self.pool = pool
        self.concurrency = concurrency
        self.grants: list[tuple[float, str]] = []
        self.errors: list[BaseException] = []

    async def run(self, duration: float, *, hold: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        stop = loop.time() + duration

        async def worker() -> None:
            while loop.time() < stop:
                try:
                    async with self.pool.lease() as lease:
                        self.grants.append((granted_at(lease), lease.name))
                        await asyncio.sleep(hold)
                except BackendUnavailable as exc:
                    self.errors.append(exc)  # (the tests want none)
                    await asyncio.sleep(0.01)  # not spinning on a failing backend

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def between(self, start: float, end: float) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for at, name in self.grants:
            if start <= at <= end:
                found.setdefault(name, []).append(at)
        return found


async def during(load: Awaitable[None], *steps: tuple[float, Callable[[], Any]]) -> None:
    """Run ``load`` and, at the given seconds after its start, each step."""

    async def inject() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, step in steps:
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            result = step()
            if asyncio.iscoroutine(result):
                await result

    await asyncio.gather(load, inject())


async def server_times(backend: RedisBackend) -> dict[str, list[float]]:
    log = await backend.audit_log()
    t0 = min(e.at_us for e in log)
    times: dict[str, list[float]] = {}
    for e in log:
        assert e.cost == 1
        times.setdefault(e.id, []).append((e.at_us - t0) / 1e6)
    return times


def assert_within(times: dict[str, list[float]], limit: Limit, tolerance: float = 0.0) -> None:
    for series in times.values():
        assert conforms(series, [1.0] * len(series), limit, tolerance=tolerance)


async def test_script_flush_mid_run_reloads_the_scripts(
    make_pool: Callable[..., TokenPool], raw: Any, events: Events
) -> None:
    pool = make_pool(TOKENS, limits=LIMIT)
    load = Load(pool)
    async with pool:
        await during(load.run(0.5), (0.2, raw.script_flush))
        times = await server_times(core_of(pool).backend)  # type: ignore[arg-type]
    assert "aurora.redis.script_loaded" in events.names()
    assert "aurora.redis.degraded" not in events.names()
    assert not load.errors
    assert_within(times, LIMIT)
    assert len(load.grants) >= 0.9 * 2 * (10 + 100 * 0.5)


async def test_killed_connections_are_replaced_at_once(
    make_pool: Callable[..., TokenPool], raw: Any, events: Events
) -> None:
    pool = make_pool(TOKENS, limits=LIMIT)
    load = Load(pool)

    async def kill() -> None:
        assert await raw.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes") >= 1

    async with pool:
        await during(load.run(0.6), (0.15, kill), (0.3, kill), (0.45, kill))
        times = await server_times(core_of(pool).backend)  # type: ignore[arg-type]
    assert "aurora.redis.degraded" not in events.names()
    assert not load.errors
    assert_within(times, LIMIT)
    assert len(load.grants) >= 0.9 * 2 * (10 + 100 * 0.6)


async def degraded_run(
    own_redis: RedisProcess,
    backend: RedisBackend,
    events: Events,
    fault: tuple[float, Callable[[], Any]],
    repair: tuple[float, Callable[[], Any]],
    duration: float,
) -> tuple[Load, dict[str, list[float]]]:
    pool = TokenPool(TOKENS, limits=LIMIT, backend=backend, trial_in_flight=None)
    load = Load(pool)
    async with pool:
        await during(load.run(duration), fault, repair)
        assert backend.mode == "redis"
        times = await server_times(backend)
    assert not load.errors
    names = events.names()
    assert names.count("aurora.redis.degraded") == 1
    assert names.count("aurora.redis.recovered") == 1
    assert names.index("aurora.redis.degraded") < names.index("aurora.redis.recovered")
    return load, times


async def test_restarted_redis_degrades_then_recovers(
    own_redis: RedisProcess, events: Events
) -> None:
    backend = RedisBackend(
        own_redis.url, namespace="restart", timeout=0.1, degrade_share=0.5, audit=True
    )
    load, times = await degraded_run(
        own_redis,
        backend,
        events,
        (0.25, lambda: asyncio.to_thread(own_redis.stop)),
        (0.75, lambda: asyncio.to_thread(own_redis.start)),
        duration=3.5,  # back within a probe (1 s at most), then local for hold_for(0.1)
    )
    down = events.named("aurora.redis.degraded")[0]["at"]
    up = events.named("aurora.redis.recovered")[0]["at"]
    # While degraded: half of each limit, locally (tolerance: the loop's timer lateness).
    local = load.between(down + 0.2, up)
    assert sum(map(len, local.values())) >= 0.9 * 2 * 50 * (up - down - 0.2)
    assert_within(local, Limit(50, per=1, burst=5), tolerance=0.005)
    # Redis came back empty: the worker registered again, and what it reserved since
    # (all the restarted server knows) holds the full limit.
    assert sum(map(len, times.values())) >= 2 * 10
    assert_within(times, LIMIT)


async def test_paused_redis_degrades_and_two_workers_share_the_limit(
    own_redis: RedisProcess, events: Events
) -> None:
    """Two workers at a share of 1/2 each stay within the full limit while degraded,
    and the server's record holds the full limit throughout."""
    backends = [
        RedisBackend(own_redis.url, namespace="pause", timeout=0.1, audit=True) for _ in range(2)
    ]
    pools = [TokenPool(TOKENS, limits=LIMIT, backend=b, trial_in_flight=None) for b in backends]
    loads = [Load(p, concurrency=6) for p in pools]
    async with pools[0], pools[1]:
        await during(
            asyncio.gather(*(load.run(3.5) for load in loads)),
            (0.3, own_redis.pause),
            (0.9, own_redis.resume),
        )
        assert [b.mode for b in backends] == ["redis", "redis"]
        times = await server_times(backends[0])
    assert not any(load.errors for load in loads)
    assert events.names().count("aurora.redis.degraded") == 2
    assert events.names().count("aurora.redis.recovered") == 2
    downs = [e["at"] for e in events.named("aurora.redis.degraded")]
    ups = [e["at"] for e in events.named("aurora.redis.recovered")]
    both: dict[str, list[float]] = {}
    for load in loads:
        for name, series in load.between(max(downs) + 0.1, min(ups)).items():
            both.setdefault(name, []).extend(series)
    window = min(ups) - max(downs) - 0.1
    # Together at the full rate (each at half), and never over it.
    assert sum(map(len, both.values())) >= 0.85 * 2 * 100 * window
    assert_within(both, LIMIT, tolerance=0.005)
    assert_within(times, LIMIT)  # reservations on the server: before, after, reconciled


async def test_fail_closed_raises_until_redis_is_back(
    own_redis: RedisProcess, events: Events
) -> None:
    backend = RedisBackend(own_redis.url, namespace="closed", timeout=0.1, on_failure="fail-closed")
    pool = TokenPool(TOKENS, limits=LIMIT, backend=backend, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        await asyncio.to_thread(own_redis.stop)
        with pytest.raises(BackendUnavailable, match="fail-closed"):
            await pool.acquire()
        assert backend.mode == "fail-closed"
        with pytest.raises(BackendUnavailable):
            await pool.acquire()  # at once, while the probe waits
        await asyncio.to_thread(own_redis.start)
        await until(lambda: backend.mode == "redis", what="the probe to find Redis back")
        async with pool.lease() as lease:
            assert lease.name
    assert events.names().count("aurora.redis.failing_closed") == 1
    assert events.names().count("aurora.redis.recovered") == 1


async def test_fail_open_grants_without_limits(own_redis: RedisProcess, events: Events) -> None:
    backend = RedisBackend(own_redis.url, namespace="open", timeout=0.1, on_failure="fail-open")
    pool = TokenPool(TOKENS, limits=Limit(1, per=10), backend=backend, trial_in_flight=None)
    async with pool:
        for _ in range(2):
            async with pool.lease():
                pass
        await asyncio.to_thread(own_redis.stop)
        loop = asyncio.get_running_loop()
        start = loop.time()
        names = []
        for _ in range(20):
            async with pool.lease() as lease:
                names.append(lease.name)
        assert loop.time() - start < 1.0  # 20 leases of a 1-per-10-s limit
        assert backend.mode == "fail-open"
    assert set(names) == {"aaaa…0001", "bbbb…0002"}
    assert events.names().count("aurora.redis.failing_open") == 1
