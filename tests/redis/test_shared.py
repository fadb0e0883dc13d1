"""What workers of one namespace share: limits, cooldowns, disabled tokens, membership.

Two pools, each with its own ``RedisBackend`` (its own connections, queue and worker
id), stand for two processes; ``test_processes.py`` runs real ones.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from redis.crc import key_slot

from aurora_async import Limit, NoTokensAvailable, Token, TokenPool, TokenState
from aurora_async._redis import RedisBackend
from aurora_async._redis.keys import token_id

from .support import Events, backend_of, conforms, landed, reserved

pytestmark = pytest.mark.redis

A, B, C = "aaaa-secret-0001", "bbbb-secret-0002", "cccc-secret-0003"
NAME_A, NAME_B, NAME_C = "aaaa…0001", "bbbb…0002", "cccc…0003"


async def reservations(pool: TokenPool) -> dict[str, list[float]]:
    """Seconds (server clock, from the first) of every reservation in the namespace, by token id."""
    log = await backend_of(pool).audit_log()
    t0 = min(e.at_us for e in log)
    times: dict[str, list[float]] = {}
    for entry in log:
        assert entry.cost > 0
        times.setdefault(entry.id, []).append((entry.at_us - t0) / 1e6)
    return times


async def test_two_pools_share_one_limit(make_pool: Callable[..., TokenPool]) -> None:
    limit = Limit(50, per=1, burst=5)
    one, two = make_pool([A, B], limits=limit), make_pool([A, B], limits=limit)
    async with one, two:

        async def hammer(pool: TokenPool) -> int:
            n = 0
            loop = asyncio.get_running_loop()
            stop = loop.time() + 0.4

            async def worker() -> None:
                nonlocal n
                while loop.time() < stop:
                    async with pool.lease():
                        n += 1

            await asyncio.gather(*(worker() for _ in range(8)))
            return n

        counts = await asyncio.gather(hammer(one), hammer(two))
        times = await reservations(one)
    assert all(counts)
    for tid in (token_id(backend_of(one).namespace, s) for s in (A, B)):
        assert conforms(times[tid], [1.0] * len(times[tid]), limit)
    span = max(max(t) for t in times.values()) - min(min(t) for t in times.values())
    # Back to back: the two tokens' bursts, then 100 a second between them.
    assert sum(counts) >= 0.95 * (10 + 100 * span)


async def test_a_429_cools_the_token_for_every_worker(make_pool: Callable[..., TokenPool]) -> None:
    limit = Limit(100, per=1)
    one, two = make_pool([A], limits=limit), make_pool([A], limits=limit)
    async with one, two:
        async with one.lease() as lease:
            lease.rate_limited(retry_after=0.3)
        loop = asyncio.get_running_loop()
        await landed(one)  # the write is in the background: until it landed
        start = loop.time()
        async with two.lease():
            waited = loop.time() - start
        times = await reservations(one)
    assert waited >= 0.2
    first, second = sorted(next(iter(times.values())))
    assert second - first >= 0.3


async def test_a_cooling_token_is_skipped_for_another(make_pool: Callable[..., TokenPool]) -> None:
    one, two = make_pool([A, B]), make_pool([A, B])
    async with one, two:
        async with one.lease() as lease:
            cooled = lease.name
            lease.rate_limited(retry_after=5)
        await landed(one)
        names = []
        for _ in range(4):
            async with two.lease() as lease:
                names.append(lease.name)
    assert cooled not in names


async def test_a_401_disables_the_token_for_every_worker(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool([A, B]), make_pool([A, B])
    async with one, two:
        async with two.lease():
            pass  # two is registered and has seen the namespace's state
        async with one.lease() as lease:
            dead = lease.name
            lease.revoked("401 Unauthorized")
        await landed(one)
        names = []
        for _ in range(4):
            async with two.lease() as lease:
                names.append(lease.name)
        await landed(two)  # the state refresh its replies asked for (a new version)
        stats = two.stats().token(dead)
        inspected = {t.name: t for t in await backend_of(two).inspect()}
    assert dead not in names
    assert (stats.state, stats.reason) == (TokenState.DISABLED, "401 Unauthorized")
    assert inspected[dead].state == "disabled"
    assert inspected[dead].reason == "401 Unauthorized"


async def test_waiters_of_another_worker_fail_when_the_last_token_dies(
    make_pool: Callable[..., TokenPool],
) -> None:
    slow = Limit(1, per=1, burst=1)
    one, two = make_pool([A], limits=slow), make_pool([A], limits=slow)
    async with one, two:
        held = await one.acquire()
        waiter = asyncio.create_task(two.acquire())  # reserved a second from now
        await reserved(two)
        held.revoked("revoked")
        held.release()
        with pytest.raises(NoTokensAvailable):
            await asyncio.wait_for(two.acquire(timeout=5), 2)
        with pytest.raises(NoTokensAvailable):
            await waiter


async def test_enable_is_shared_too(make_pool: Callable[..., TokenPool]) -> None:
    one, two = make_pool([A]), make_pool([A])
    async with one, two:
        one.disable(NAME_A, "by hand")
        await landed(one)
        with pytest.raises(NoTokensAvailable):
            await two.acquire()  # on its first sync it adopts the disabled state
        one.enable(NAME_A)
        await landed(one)
        async with two.lease() as lease:  # all disabled here: it asks Redis first
            assert lease.name == NAME_A
    assert two.stats().token(NAME_A).state is TokenState.ACTIVE


async def test_workers_with_different_token_files_are_warned_about(
    make_pool: Callable[..., TokenPool], events: Events
) -> None:
    one, two = make_pool([A, B]), make_pool([A, C])
    async with one, two:
        async with one.lease():
            pass
        async with two.lease():
            pass
    warned = events.named("aurora.redis.membership_differs")
    assert warned
    assert warned[0]["differing"] == 1
    assert not any(A in str(e) or B in str(e) or C in str(e) for e in events.entries)


async def test_a_worker_only_gets_its_own_tokens(make_pool: Callable[..., TokenPool]) -> None:
    one, two = make_pool([A, B]), make_pool([C])
    async with one, two:
        names = set()
        for _ in range(6):
            async with two.lease() as lease:
                names.add(lease.name)
        async with one.lease() as lease:
            assert lease.name in {NAME_A, NAME_B}
    assert names == {NAME_C}


async def test_token_reload_updates_the_shared_membership(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A, B])
    async with pool:
        async with pool.lease():
            pass
        pool.replace_tokens([B, C])
        async with pool.lease() as lease:
            assert lease.name in {NAME_B, NAME_C}
        state = {t.name: t.state for t in await backend_of(pool).inspect()}
    assert state[NAME_B] == state[NAME_C] == "active"
    assert state[None] == "idle"  # A: nobody holds it any more, so it left the index


async def test_changed_limits_restart_full_and_are_logged(
    make_pool: Callable[..., TokenPool], events: Events
) -> None:
    one = make_pool([A], limits=Limit(100, per=1))
    async with one, one.lease():
        pass
    three = make_pool([A], limits=Limit(50, per=1, burst=1))  # same namespace
    async with three:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with three.lease():
            pass
        waited = loop.time() - start
    assert events.named("aurora.redis.limits_differ")[0]["tokens"] == 1
    assert waited >= 0.015  # the new window starts full: one unit drains in 20 ms


async def test_keys_share_one_hash_tag_expire_and_hide_secrets(
    make_pool: Callable[..., TokenPool], raw: Any
) -> None:
    pool = make_pool([A, Token(B, limits=[Limit(5), Limit(100, per=60)])])
    backend = backend_of(pool)
    async with pool:
        for _ in range(3):
            async with pool.lease() as lease:
                lease.rate_limited(0.5)
        pool.disable(NAME_B, f"revoked (token {B})")
        await landed(pool)
        keys = [k.decode() async for k in raw.scan_iter(match=f"{backend.hash_tag}*")]
        dump = []
        for key in keys:
            kind = (await raw.type(key)).decode()
            if kind == "hash":
                dump.append(repr(await raw.hgetall(key)))
            elif kind == "zset":
                dump.append(repr(await raw.zrange(key, 0, -1, withscores=True)))
            elif kind == "set":
                dump.append(repr(await raw.smembers(key)))
            elif kind == "list":
                dump.append(repr(await raw.lrange(key, 0, -1)))
            assert 0 < await raw.pttl(key) <= 86400_000 + 10_000, key
        slots = {key_slot(key.encode()) for key in keys}
    assert len(keys) >= 8
    assert all(key.startswith("{aurora:" + backend.namespace + "}:") for key in keys)
    assert len(slots) == 1
    text = "\n".join(keys + dump)
    assert A not in text
    assert B not in text
    assert repr(NAME_B.encode())[2:-1] in text  # the reason shows the masked name


async def test_reset_forgets_everything_and_workers_register_again(
    make_pool: Callable[..., TokenPool], raw: Any
) -> None:
    pool = make_pool([A, B])
    backend = backend_of(pool)
    async with pool:
        async with pool.lease():
            pass
        assert await backend.reset() >= 5
        assert [k async for k in raw.scan_iter(match=f"{backend.hash_tag}*")] == []
        async with pool.lease():  # registers again on its own
            pass
        assert {t.name for t in await backend.inspect()} == {NAME_A, NAME_B}
        assert await backend.reset(backend.namespace) > 0


async def test_idle_keys_expire(make_backend: Callable[..., RedisBackend], raw: Any) -> None:
    backend = make_backend(key_ttl=1.0, audit=False)
    pool = TokenPool([A], backend=backend, trial_in_flight=None)
    async with pool:
        async with pool.lease():
            pass
        ttls = [await raw.pttl(k) async for k in raw.scan_iter(match=f"{backend.hash_tag}*")]
    assert ttls
    assert all(0 < t <= 2000 for t in ttls)  # gone within two seconds of idling


async def test_a_worker_whose_registration_vanished_registers_again(
    make_pool: Callable[..., TokenPool], raw: Any
) -> None:
    one, two = make_pool([A, B]), make_pool([A, B])
    async with one, two:
        async with one.lease(), two.lease():
            pass
        backend = backend_of(two)
        await raw.delete(backend._keys.proc(backend.worker))
        version = backend._version
        one.disable(NAME_A, "gone")  # a change two reads about in its next reply
        await landed(one)
        async with two.lease():
            pass
        await landed(two)  # the state refresh its reply asked for, then registering again
        assert backend._version != version
        assert await raw.exists(backend._keys.proc(backend.worker))
        assert two.stats().token(NAME_A).state is TokenState.DISABLED


async def test_versions_never_repeat_after_redis_lost_the_namespace(
    make_pool: Callable[..., TokenPool],
) -> None:
    pool = make_pool([A])
    backend = backend_of(pool)
    async with pool:
        async with pool.lease():
            pass
        before = backend._version
        await backend.reset()
        async with pool.lease():
            pass
    # Same counter (one registration each time), another epoch.
    assert before.split(".")[1] == backend._version.split(".")[1]
    assert before != backend._version


async def test_stats_show_the_shared_buckets(make_pool: Callable[..., TokenPool]) -> None:
    limit = Limit(10, per=1, burst=4)
    one, two = make_pool([A], limits=limit), make_pool([A], limits=limit)
    async with one, two:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(3):
            async with one.lease():
                pass
        async with two.lease():
            pass
        # two leased once, but the bucket it saw held all four units: its headroom is
        # only what drained since (10 units a second of real time), not 3 units.
        drained = 10 * (loop.time() - start) + 1e-6
        assert two.stats().token(NAME_A).headroom <= drained < 1
        assert one.stats().token(NAME_A).headroom <= 1 + drained


async def test_requests_at_full_speed_do_not_cool_their_tokens(
    make_pool: Callable[..., TokenPool], events: Events
) -> None:
    from aurora_async.testing import MockAPI

    limit = Limit(50, per=1, burst=2)
    # A generous arrival tolerance: this is about headers, not about a busy CPU's jitter
    # (requests granted 20 ms apart can reach the server bunched on a loaded machine;
    # 0.05 s failed now and then at a load of 4-5).
    async with MockAPI({A: limit, B: limit}, tolerance=0.25) as api:
        pool = make_pool([A, B], limits=limit)
        async with pool:

            async def client() -> None:
                for _ in range(10):
                    resp = await pool.get(f"{api.url}/item")
                    assert resp.status == 200

            await asyncio.gather(*(client() for _ in range(4)))
        assert api.totals.rate_limited == 0
    # "Remaining: 0" after nearly every response says nothing the shared limiter did
    # not know already: no cooldowns for it, no extra writes to Redis.
    assert [e for e in events.named("aurora.token.cooling") if e["why"] == "exhausted"] == []


async def test_after_a_429_every_worker_resumes_the_token_at_its_steady_rate(
    make_pool: Callable[..., TokenPool],
) -> None:
    limit = Limit(20, per=1, burst=4)  # one every 50 ms, four at once when idle
    one, two = make_pool([A], limits=limit), make_pool([A], limits=limit)
    async with one, two:
        async with one.lease() as lease:
            lease.rate_limited(retry_after=0.2)  # the API says the quota is spent
        await landed(one)
        leases = await asyncio.gather(*(two.acquire() for _ in range(4)))
        for lease in leases:
            lease.release()
        times = next(iter((await reservations(one)).values()))
    after = sorted(times)[1:]
    # Not four at once when the cooldown ends: one then, then one every 50 ms.
    assert after[0] - times[0] >= 0.2
    assert [round(b - a, 6) for a, b in itertools.pairwise(after)] == [0.05, 0.05, 0.05]


async def test_a_cooldown_by_hand_leaves_the_buckets_alone(
    make_pool: Callable[..., TokenPool],
) -> None:
    limit = Limit(20, per=1, burst=4)
    one, two = make_pool([A], limits=limit), make_pool([A], limits=limit)
    async with one, two:
        async with one.lease():
            pass
        one.cool(NAME_A, 0.2)
        await landed(one)
        leases = await asyncio.gather(*(two.acquire() for _ in range(3)))
        for lease in leases:
            lease.release()
        times = sorted(next(iter((await reservations(one)).values())))
    assert times[1] - times[0] >= 0.2
    assert times[1] == times[2] == times[3]  # the bucket's room, at once
