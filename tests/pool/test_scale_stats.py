"""``stats()`` at scale: the records made when read hold what the simple, eager snapshot
(the reference below, one record per token at the call) holds, and a call makes no record
until one is read."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from aurora_async import Limit, PoolStats, Token, TokenPool, TokenState, TokenStats
from aurora_async._pool import snapshot as snapshot_module
from aurora_async._pool.core import PoolCore, core_of

pytestmark = pytest.mark.looptime


def reference(core: PoolCore) -> tuple[TokenStats, ...]:
    """Every token's record as the eager snapshot made it: from the slot as it stands."""
    now, wall = core.now(), time.time()
    out = []
    for slot in core.sched.slots.values():
        calibration = core.calibration.snapshot(slot)
        limits = tuple(str(w.limit) for w in slot.windows)
        declared, source, too_high = limits, "declared", False
        if calibration is not None:
            declared = tuple(str(limit) for limit in calibration.declared)
            source = calibration.source.value
            too_high = calibration.limit_too_high
        info = slot.info
        out.append(
            TokenStats(
                name=slot.name,
                state=slot.state(now),
                leases=slot.leases,
                ok=slot.ok,
                rate_limited=slot.rate_limited,
                errors=slot.errors,
                in_flight=slot.in_flight,
                cooldown_left=round(max(0.0, slot.cool_until - now), 9),
                reason=slot.reason,
                limits=limits,
                units=slot.units,
                headroom=round(max(0.0, slot.headroom(now)), 9),
                proven=slot.proven,
                last_limit=getattr(info, "limit", None),
                last_remaining=getattr(info, "remaining", None),
                last_reset=getattr(info, "reset_after", None),
                expires_in=None if slot.expires_at is None else slot.expires_at - wall,
                limit_too_high=too_high,
                declared_limits=declared,
                limit_source=source,
            )
        )
    return tuple(out)


def counts(tokens: tuple[TokenStats, ...]) -> Counter[TokenState]:
    return Counter(t.state for t in tokens)


async def busy_pool() -> tuple[TokenPool, list[str]]:
    """A pool with tokens in every state: leased, in flight, cooling, disabled, removed
    (with a lease in flight), calibrating, with their own limits."""
    values = [f"sk-test-{i:04d}-0123456789abcdef" for i in range(40)]
    values[5:7] = [Token(values[5], Limit(3, per=1.0)), Token(values[6], max_in_flight=2)]
    pool = TokenPool(values, limits=Limit(5, per=1.0, burst=5))
    return pool, [v if isinstance(v, str) else v.value for v in values]


async def test_records_hold_what_the_eager_snapshot_holds() -> None:
    pool, values = await busy_pool()
    async with pool:
        held = [await pool.acquire() for _ in range(30)]
        for lease in held[:10]:
            lease.release()
        held[10].rate_limited(retry_after=7)
        held[11].revoked("dead")
        names = [t.name for t in pool.stats().tokens]
        pool.disable(names[20], "by hand")
        pool.cool(names[21], 3.0)
        pool.replace_tokens(values[:25] + [f"sk-new-{i}-0123456789" for i in range(3)])
        await asyncio.sleep(0.25)
        stats = pool.stats()
        expected = reference(core_of(pool))
        assert tuple(stats.tokens) == expected
        assert list(stats.tokens[3:7]) == list(expected[3:7])
        assert stats.tokens[-1] == expected[-1]
        assert stats.tokens == expected
        by_state = counts(expected)
        assert (stats.active, stats.cooling, stats.disabled, stats.removed) == (
            by_state[TokenState.ACTIVE],
            by_state[TokenState.COOLING],
            by_state[TokenState.DISABLED],
            by_state[TokenState.REMOVED],
        )
        assert stats.in_flight == sum(t.in_flight for t in expected)
        assert min(by_state.values()) >= 1  # every state is there
        for lease in held[12:]:
            lease.release()


async def test_a_record_holds_the_counters_of_the_call_not_of_the_read() -> None:
    pool = TokenPool(["sk-one-0123456789abcdef"], limits=Limit(5, per=1.0))
    async with pool:
        before = pool.stats()
        async with pool.lease():
            pass
        assert before.tokens[0].leases == 0
        assert before.in_flight == 0
        assert pool.stats().tokens[0].leases == 1


async def test_stats_makes_no_record_until_one_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    original = snapshot_module.record

    def spy(*args: object, **kwargs: object) -> TokenStats:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        made.append(result.name)
        return result

    monkeypatch.setattr(snapshot_module, "record", spy)
    pool = TokenPool([f"sk-many-{i:05d}-0123456789" for i in range(5000)])
    stats = pool.stats()
    assert isinstance(stats, PoolStats)
    assert (len(stats.tokens), stats.active, made) == (5000, 5000, [])
    assert stats.tokens[4321].name == made[0]
    assert stats.tokens[4321] is stats.tokens[4321]
    assert len(made) == 1
