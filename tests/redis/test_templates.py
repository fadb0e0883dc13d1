"""Scope templates (``Limit(..., scope="*")``) through Redis: each scope a lease names gets
windows of its own made from the token's templates, in the token's shared state, for
every worker of the namespace; bounded as in one process (``SCOPES_KEPT``,
``SCOPES_MAX``). The tests of declared scopes (``test_resources.py``), mirrored.

Two pools, each on its own ``RedisBackend``, stand for two processes. Waits are told by
``timeout=0``: a lease that would have to wait fails at once (nothing reserved).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from aurora_async import Costs, LeaseTimeout, Limit, Token, TokenPool
from aurora_async._core.slot import SCOPES_MAX
from aurora_async._pool import core
from aurora_async._pool.core import core_of
from aurora_async._redis import RedisBackend
from aurora_async._redis.degrade import LocalLimiter
from aurora_async._redis.keys import Keys
from aurora_async._redis.lua import PRELUDE
from aurora_async._redis.scripts import RESUME

from .support import RedisProcess, backend_of, conforms, landed, reserved

pytestmark = pytest.mark.redis

A = "aaaa-secret-0001"
#: 100 a second over every lease; 2 a minute in each scope.
EACH = [Limit(100, per=1), Limit(2, per=60, scope="*")]


async def refused(
    pool: TokenPool, scope: str | None = None, cost: float | Mapping[str, float] = 1
) -> str:
    """The reason a lease in ``scope`` must wait (it fails at once with ``timeout=0``)."""
    with pytest.raises(LeaseTimeout) as caught:
        await pool.lease(scope=scope, cost=cost, timeout=0).__aenter__()
    return str(caught.value)


def now() -> float:
    return asyncio.get_running_loop().time()


def fits_in(reason: str, seconds: float, since: float) -> bool:
    """Whether a refusal says the lease fits in ``seconds`` counted from when the window
    filled, which came after ``since`` (the loop's time, read before the leases that
    filled it): at most ``seconds``, at least ``seconds`` less the time gone since (to
    the message's ms). Under load the calls between take what they take."""
    said = re.search(r"can take it in (\d+\.\d+)s", reason)
    if said is None:
        return False
    gone = now() - since
    return seconds - gone - 0.002 <= float(said[1]) <= seconds + 0.002


def tokens(limits: list[Limit]) -> list[str | Token]:
    return [Token(A, limits=limits)]


async def test_a_templates_scope_windows_count_only_its_leases_for_every_worker(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool(tokens(EACH)), make_pool(tokens(EACH))
    async with one, two:
        since = now()
        for _ in range(2):
            async with one.lease(scope="gpt-4o", timeout=0):
                pass
        # 2 a minute in gpt-4o, for both workers: the next one in 30 s.
        assert fits_in(await refused(two, "gpt-4o"), 30.0, since)
        assert fits_in(await refused(one, "gpt-4o"), 30.0, since)
        since = now()
        for _ in range(2):  # another scope has windows of its own, for both too
            async with two.lease(scope="o1", timeout=0):
                pass
        assert fits_in(await refused(one, "o1"), 30.0, since)
        for _ in range(10):  # no scope: the templates count nothing
            async with one.lease(timeout=0):
                pass
        log = await backend_of(one).audit_log()
    assert [e.scope for e in log] == ["gpt-4o"] * 2 + ["o1"] * 2 + [None] * 10


async def test_a_scope_the_token_declares_is_not_made_from_its_template(
    make_pool: Callable[..., TokenPool],
) -> None:
    limits = [*EACH, Limit(4, per=60, scope="search")]
    one, two = make_pool(tokens(limits)), make_pool(tokens(limits))
    async with one, two:
        since = now()
        for pool in (one, two, one, two):  # 4 a minute, not the template's 2
            async with pool.lease(scope="search", timeout=0):
                pass
        assert fits_in(await refused(two, "search"), 15.0, since)


async def test_a_429_in_a_templates_scope_cools_that_scope_for_every_worker_and_no_other(
    make_pool: Callable[..., TokenPool],
) -> None:
    limits = [Limit(100, per=1, burst=100), Limit(50, per=60, scope="*")]
    one, two = make_pool(tokens(limits)), make_pool(tokens(limits))
    async with one, two:
        since = now()
        async with one.lease(scope="search") as lease:
            lease.rate_limited(retry_after=30)
        await landed(one)
        async with two.lease(scope="core", timeout=0):
            pass
        async with two.lease(timeout=0):  # no scope: the token itself is not cooling
            pass
        assert fits_in(await refused(two, "search"), 30.0, since)
        log = await backend_of(one).audit_log()
    assert [e.scope for e in log] == ["search", "core", None]


async def test_a_429_that_says_a_scopes_quota_is_spent_fills_that_scopes_window(
    make_pool: Callable[..., TokenPool],
) -> None:
    """The spent rule for a scope made from a template: once the cooldown ends, the
    scope's window fires at its steady rate (10 a second: 0.1 s apart) for every worker,
    not with a fresh burst of 4; another scope keeps its burst."""
    limits = [Limit(1000, per=1), Limit(10, per=1, burst=4, scope="*")]
    one = make_pool(tokens(limits), calibrate=False)
    two = make_pool(tokens(limits), calibrate=False)
    async with one, two:
        async with one.lease(scope="search") as lease:
            lease.rate_limited(retry_after=0.2)
        await landed(one)
        others = [await two.acquire(scope="core", timeout=0) for _ in range(4)]
        searches = await asyncio.gather(*(two.acquire(scope="search") for _ in range(4)))
        for lease in [*others, *searches]:
            lease.release()
        log = await backend_of(one).audit_log()
    times = [e.at_us / 1e6 for e in log if e.scope == "search"]
    assert [round(b - a, 6) for a, b in itertools.pairwise(times[1:])] == [0.1] * 3
    core_times = [e.at_us for e in log if e.scope == "core"]
    assert times[1] - times[0] >= 0.2  # nothing before the cooldown's end
    assert (core_times[-1] - core_times[0]) / 1e6 < 0.1  # its burst: at once


async def test_a_settle_in_a_templates_scope_moves_only_that_scopes_window(
    make_pool: Callable[..., TokenPool],
) -> None:
    # 1,000 tokens an hour in each scope: one more token every 3.6 s.
    limits = [Limit(100, per=1), Limit(1000, per=3600, unit="tokens", scope="*")]
    one, two = make_pool(tokens(limits)), make_pool(tokens(limits))
    async with one, two:
        since = now()
        async with one.lease(scope="gpt-4o", cost={"tokens": 100}) as lease:
            lease.settle(tokens=1000)  # the answer was long: gpt-4o's window is full
        async with one.lease(scope="o1", cost={"tokens": 900}) as lease:
            lease.settle(tokens=100)  # and short: 800 come back to o1
        await landed(one)
        assert fits_in(await refused(two, "gpt-4o", cost={"tokens": 1}), 3.6, since)
        async with two.lease(scope="o1", cost={"tokens": 900}, timeout=0):  # (on the 100 left)
            pass
        assert fits_in(await refused(two, "o1", cost={"tokens": 1}), 3.6, since)  # 1,000 of 1,000
        async with two.lease(scope="o3", cost={"tokens": 1000}, timeout=0):
            pass  # a third scope: its own window, untouched


async def test_a_cancelled_waiter_gives_back_its_scopes_part(
    make_pool: Callable[..., TokenPool],
) -> None:
    """A reservation in a scope made from a template, given back by a waiter that left,
    comes back exactly (nothing followed it): the scope is as it was, for every worker."""
    one, two = make_pool(tokens(EACH)), make_pool(tokens(EACH))
    async with one, two:
        since = now()
        for _ in range(2):
            async with one.lease(scope="gpt-4o", timeout=0):
                pass
        waiter = asyncio.create_task(one.acquire(scope="gpt-4o"))  # reserved in 30 s
        await reserved(one)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        async with one.lease(timeout=0):  # (its reserve call gives the other back first)
            pass
        # Back to 2 of 2: the next in 30 s, not 60 s.
        assert fits_in(await refused(two, "gpt-4o"), 30.0, since)
        log = await backend_of(one).audit_log()
    assert [(e.cost, e.scope) for e in log][2:4] == [(1.0, "gpt-4o"), (-1.0, None)]


async def test_two_pools_never_exceed_a_templates_bound_in_any_scope(
    make_pool: Callable[..., TokenPool],
) -> None:
    token, each = Limit(60, per=1, burst=6), Limit(20, per=1, burst=2, scope="*")
    limits = [token, each]
    one, two = make_pool(tokens(limits)), make_pool(tokens(limits))
    async with one, two:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 0.5

        async def worker(pool: TokenPool, scope: str | None) -> None:
            while loop.time() < stop:
                async with pool.lease(scope=scope):
                    pass

        scopes = ["search", "search", "core", "core", None]
        await asyncio.gather(*(worker(p, s) for p in (one, two) for s in scopes))
        log = await backend_of(one).audit_log()
    t0 = min(e.at_us for e in log)
    times = [(e.at_us - t0) / 1e6 for e in log]
    assert conforms(times, [1.0] * len(log), token)
    for scope in ("search", "core"):
        mine = [t for t, e in zip(times, log, strict=True) if e.scope == scope]
        assert conforms(mine, [1.0] * len(mine), each)
        assert len(mine) > 10  # (it was bound by its window, not idle)
    assert {e.scope for e in log} == {"search", "core", None}


async def test_a_token_holds_at_most_scopes_max_scopes_and_a_new_one_waits_for_a_drain(
    make_pool: Callable[..., TokenPool],
) -> None:
    limits = [Limit(100_000, per=1, burst=100_000), Limit(2, per=60, scope="*")]
    one, two = make_pool(tokens(limits)), make_pool(tokens(limits))
    async with one, two:
        s0 = now()
        async with one.lease(scope="s0", timeout=0):  # half full: drains in 30 s
            pass
        s1 = now()
        for n in range(1, SCOPES_MAX):  # the others full: drain in 60 s
            pool = one if n % 2 else two
            for _ in range(2):
                async with pool.lease(scope=f"s{n}", timeout=0):
                    pass
        # Full of scopes: a new one waits until the first (s0) drains, for both.
        for pool in (one, two):
            assert fits_in(await refused(pool, "new"), 30.0, s0)
        async with two.lease(scope="s0", timeout=0):  # a scope it holds goes on
            pass
        # s0 is full now too: a new scope waits for the first to drain whole, s0 again
        # (its first unit came first: 60 s from then, before any other scope's).
        assert fits_in(await refused(one, "new"), 60.0, s0)
        assert fits_in(await refused(two, "s1"), 30.0, s1)  # still remembered: 2 of 2


async def test_a_template_shows_in_a_workers_stats_and_its_scopes_windows_in_the_slot(
    make_pool: Callable[..., TokenPool],
) -> None:
    one, two = make_pool(tokens(EACH)), make_pool(tokens(EACH))
    async with one, two:
        async with one.lease(scope="gpt-4o", timeout=0):
            pass
        async with two.lease(scope="gpt-4o", timeout=0):
            pass
        slot = core_of(two).sched.slots[A]
        made = (slot.scoped or {}).get("gpt-4o")
        assert made is not None
        # The shared window as the reservation left it: 2 of 2 (one of them the other
        # worker's), a hair drained since.
        assert 1.99 < made[0].level_at(core_of(two).now()) <= 2.0
        assert two.stats().tokens[0].limits == ("100/1s", "2/60s [*]")


async def test_while_redis_is_away_a_templates_scopes_are_served_locally(
    own_redis: RedisProcess,
) -> None:
    backend = RedisBackend(own_redis.url, namespace="tpl", timeout=0.1, degrade_share=1.0)
    # (requests: a unit drains in 10 us, so only the template can hold a lease back)
    limits = [Limit(100_000, per=1), Limit(20, per=1, burst=2, scope="*")]
    pool = TokenPool(tokens(limits), backend=backend, trial_in_flight=None, calibrate=False)
    async with pool:
        async with pool.lease(scope="a"):
            pass
        await asyncio.to_thread(own_redis.stop)
        async with pool.lease(scope="a", timeout=2):  # (full as of the switch: it
            assert backend.mode == "degrade"  # waits for one unit to drain, 50 ms)
        # One local window for both scopes: a's unit fills it, so b has no room now
        # (scope b's own window, full as of the switch too, would have drained by now;
        # timing b's grant instead failed when a's grant came a few ms late, under load).
        with pytest.raises(LeaseTimeout):
            await pool.lease(scope="b", timeout=0).__aenter__()
        async with pool.lease(scope="b", timeout=2):
            pass


def test_degraded_a_template_is_one_local_window_for_every_scope_not_declared() -> None:
    """The local limiter: a template's window counts the leases of every scope the token
    does not declare, together (the safe side: no scope's windows are made while Redis
    is away), and no lease of no scope; a declared scope counts in its own window."""
    limits = [Limit(100, per=1), Limit(2, per=60, scope="*"), Limit(5, per=60, scope="x")]
    windows = core_of(TokenPool(tokens(limits))).sched.slots[A].windows
    local = LocalLimiter(1.0, -1000.0)  # full as of long ago: empty now
    for scope in ("a", "b"):
        local.take("t", windows, Costs(1, {}, scope), 0.0)
    assert local.ready("t", windows, Costs(1, {}, "c")) == 30.0  # 2 a minute, all scopes
    assert local.ready("t", windows, 1) <= 0.0
    assert local.ready("t", windows, Costs(1, {}, "x")) <= 0.0
    local.adjust("t", windows, {"requests": 1.0}, "a", 0.0)  # a settle's debt in a scope
    assert local.ready("t", windows, Costs(1, {}, "c")) == 60.0


#: The Lua of templates on a state made by hand: 256 scopes, the first to drain (s0,
#: 1 unit of 2) in 30 s, the others (2 of 2) in 60 s.
BOUNDS = (
    PRELUDE
    + r"""
local now = now_us()
local st = {key = KEYS[1], n = 2, kc = 1, cool = 0, b = {100, 2}, e = {10000, 30000000},
  t = {0, 0}, u = {'requests', 'requests'}, s = {'', '*'}, c = {'', ''}, cp = {0, 0},
  cr = {0, 0}, lv = 0, learned = 0, dg = '', ls = ''}
load_scopes(st, nil)
for i = 0, SCOPES_MAX - 1 do
  local base = make(st, 's' .. i, now, now)
  st.t[base + 1] = now + (i == 0 and 30 or 60) * 1000000
end
local out = {st.nm, ready(st, 1, nil, 'new') - now}
-- Made at its reservation's time, in s0's place: s0's window goes into the template.
make(st, 'new', now, now + 30000000)
out[#out + 1] = not st.made['s0'] and st.nm or -1
out[#out + 1] = st.t[2] - now
save(st, now, 60000)
local again = load(KEYS[1])  -- the same scopes, at the same levels
out[#out + 1] = again.nm
out[#out + 1] = again.t[again.made['s7'] + 1] - now
out[#out + 1] = again.t[again.made['new'] + 1] - now
-- With room for a scope again, s0 is made from the template: as full as it was.
forget(again, 'new')
out[#out + 1] = ready(again, 2, nil, 's0') - now
-- Forgotten and made again in one call, s7 is one scope, saved once.
make(again, 's0', now, now)
forget(again, 's7')
make(again, 's7', now, now)
save(again, now, 60000)
local third = load(KEYS[1])
local listed = 0
for _, name in ipairs(third.ms) do
  if name == 's7' then listed = listed + 1 end
end
out[#out + 1] = third.nm
out[#out + 1] = listed
return out
"""
)


async def test_a_scope_forgotten_before_it_drained_comes_back_as_full(raw: Any) -> None:
    """At SCOPES_MAX a new scope's reservation waits for the first drain and takes that
    scope's place; what the forgotten scope held goes into the template, from which its
    windows are made again (never emptier than they were); the scopes are saved."""
    key = f"test-templates-{uuid.uuid4().hex[:8]}"
    got = await raw.eval(BOUNDS, 1, key)
    await raw.delete(key)
    assert got[:5] == [SCOPES_MAX, 30_000_000, SCOPES_MAX, 30_000_000, SCOPES_MAX]
    assert got[5:8] == [60_000_000, 30_000_000, 30_000_000]
    assert got[8:] == [SCOPES_MAX, 1]  # a scope forgotten and made again is one scope


async def test_back_from_an_outage_a_templates_scopes_hold_full_too(
    make_pool: Callable[..., TokenPool], namespace: str, raw: Any
) -> None:
    """``RESUME`` (a worker back from serving locally) makes every window full until the
    hold ends: the windows made for scopes, and the templates, from which a scope not
    made yet would start."""
    one, two = make_pool(tokens(EACH)), make_pool(tokens(EACH))
    async with one, two:
        async with one.lease(scope="a", timeout=0):
            pass
        k = Keys(namespace)
        tid = backend_of(one).token_id(A)
        hold = 10_000_000  # 10 s (forced: as a later chunk of a worker's tokens)
        since = now()
        assert await raw.eval(RESUME, 1, k.ready, k.token_prefix, 60_000, hold, 1, 1, tid) == 1
        # Full as of 10 s from now: one more unit in 10 s + 30 s, in "a" as in "b".
        assert fits_in(await refused(two, "a"), 40.0, since)
        assert fits_in(await refused(two, "b"), 40.0, since)
        # (100 a second: 10 ms after the hold)
        assert fits_in(await refused(two), 10.01, since)


async def test_a_daily_template_gives_each_scope_its_own_quota_for_every_worker(
    make_pool: Callable[..., TokenPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers' wall clocks read 100 s before midnight UTC.
    midnight = datetime(2026, 6, 2, tzinfo=UTC).timestamp()
    monkeypatch.setattr(core, "wall_clock", lambda: midnight - 100)
    limits = [Limit(10, per=1), Limit.daily(2, scope="*")]
    one, two = make_pool(tokens(limits)), make_pool(tokens(limits))
    async with one, two:
        for pool in (one, two):
            async with pool.lease(scope="a", timeout=0):
                pass
        # The day's 2 in "a" are spent for both workers, until midnight ...
        assert re.search(r"in (99\.\d{3}|100\.000)s", await refused(one, "a"))
        for pool in (two, one):  # ... and "b" has its own 2
            async with pool.lease(scope="b", timeout=0):
                pass
        assert re.search(r"in (99\.\d{3}|100\.000)s", await refused(two, "b"))
        async with one.lease(timeout=0):  # no scope: the quota counts nothing
            pass
