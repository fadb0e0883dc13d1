"""``stats()`` at scale: the records made when read hold what the simple, eager snapshot
(the reference below, one record per token at the call) holds, and a call makes no record
until one is read."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter

import pytest

from aurora_async import Lease, Limit, PoolStats, Token, TokenPool, TokenState, TokenStats
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


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the records ``stats()`` makes, in order (a spy on ``record``)."""
    names: list[str] = []
    original = snapshot_module.record

    def spy(*args: object, **kwargs: object) -> TokenStats:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        names.append(result.name)
        return result

    monkeypatch.setattr(snapshot_module, "record", spy)
    return names


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


async def test_stats_makes_no_record_until_one_is_read(made: list[str]) -> None:
    pool = TokenPool([f"sk-many-{i:05d}-0123456789" for i in range(5000)])
    stats = pool.stats()
    assert isinstance(stats, PoolStats)
    assert (len(stats.tokens), stats.active, made) == (5000, 5000, [])
    assert stats.tokens[4321].name == made[0]
    assert stats.tokens[4321] is stats.tokens[4321]
    assert len(made) == 1


async def test_token_by_name_makes_only_its_record(made: list[str]) -> None:
    pool = TokenPool([f"sk-many-{i:05d}-0123456789" for i in range(3000)])
    names = [slot.name for slot in core_of(pool).sched.slots.values()]
    stats = pool.stats()
    assert stats.token(names[2500]).name == names[2500]
    assert made == [names[2500]]
    with pytest.raises(KeyError, match="no token named 'sk-n…none'"):
        stats.token("sk-n…none")
    assert made == [names[2500]]


def test_token_by_name_in_a_plain_tuple_of_records() -> None:
    one = TokenStats(
        name="a…1",
        state=TokenState.ACTIVE,
        leases=0,
        ok=0,
        rate_limited=0,
        errors=0,
        in_flight=0,
        cooldown_left=0.0,
        reason=None,
        limits=("10/1s",),
        units=0.0,
        headroom=10.0,
        proven=True,
    )
    stats = PoolStats(
        tokens=(one,),
        waiting=0,
        active=1,
        cooling=0,
        disabled=0,
        removed=0,
        in_flight=0,
        granted=0,
        granted_per_second=0.0,
    )
    assert stats.token("a…1") is one
    with pytest.raises(KeyError, match="no token named 'b…2'"):
        stats.token("b…2")


async def test_states_are_counted_as_the_records_say_in_every_combination() -> None:
    """Removed and disabled and cooling at once: a token counts once, by its record."""
    values = [f"sk-combo-{i:02d}-0123456789abcdef" for i in range(8)]
    pool = TokenPool(values, limits=Limit(5, per=1.0))
    async with pool:
        names = [t.name for t in pool.stats().tokens]
        held = [await pool.acquire() for _ in range(4)]  # tokens 0..3 in flight
        for i in (0, 1, 4):
            pool.cool(names[i], 10.0)
        for i in (1, 2, 5):
            pool.disable(names[i], "off")
        pool.replace_tokens(values[4:])  # 0..3 removed (in flight, so still shown)
        stats = pool.stats()
        by_state = Counter(t.state for t in stats.tokens)
        assert (
            (stats.active, stats.cooling, stats.disabled, stats.removed)
            == (
                by_state[TokenState.ACTIVE],
                by_state[TokenState.COOLING],
                by_state[TokenState.DISABLED],
                by_state[TokenState.REMOVED],
            )
            == (2, 1, 1, 4)
        )
        for lease in held:
            lease.release()


@pytest.mark.parametrize("seed", range(6))
async def test_records_and_counts_hold_through_random_changes(seed: int) -> None:
    """Cooldowns set and over, tokens disabled and enabled, left out by a reload (in
    flight or idle) and back: after each step a snapshot equals the eager one, and a
    snapshot taken earlier still holds what it held then."""
    rng = random.Random(seed)
    values = [f"sk-rand-{i:03d}-0123456789abcdef" for i in range(24)]
    pool = TokenPool(values, limits=Limit(4, per=1.0))
    async with pool:
        core = core_of(pool)
        held: list[Lease] = []
        earlier: list[tuple[PoolStats, tuple[TokenStats, ...]]] = []
        for _ in range(40):
            step = rng.randrange(7)
            name = rng.choice([t.name for t in pool.stats().tokens if t.state != "removed"])
            if step == 0:
                pool.cool(name, rng.choice([0.2, 1.0, 5.0]))
            elif step == 1:
                pool.disable(name, f"off {rng.randrange(100)}")
            elif step == 2:
                pool.enable(name)
            elif step == 3:
                kept = rng.sample(values, rng.randrange(12, 24))
                pool.replace_tokens(sorted(kept, key=values.index))
            elif step == 4:
                pool.replace_tokens(values)
            elif step == 5 and pool.stats().active:
                held.append(await pool.acquire(timeout=5))
            elif held:
                held.pop(rng.randrange(len(held))).release()
            await asyncio.sleep(rng.choice([0.0, 0.1, 0.7]))
            stats = pool.stats()
            expected = reference(core)
            assert stats.tokens == expected
            by_state = counts(expected)
            assert (stats.active, stats.cooling, stats.disabled, stats.removed) == (
                by_state[TokenState.ACTIVE],
                by_state[TokenState.COOLING],
                by_state[TokenState.DISABLED],
                by_state[TokenState.REMOVED],
            )
            assert stats.in_flight == sum(t.in_flight for t in expected)
            now = core.now()
            live = [s for s in core.sched.slots.values() if not s.removed]
            ends = [s.cool_until for s in live if not s.disabled and s.cool_until > now]
            assert core.sched.count_states(now) == (  # what the low-water mark reads
                len(live),
                by_state[TokenState.ACTIVE],
                min(ends, default=math.inf),
            )
            earlier.append((pool.stats(), expected))
        for then, expected in earlier:  # read only now: what they held at their call
            for got, want in zip(then.tokens, expected, strict=True):
                assert (got.name, got.state, got.leases, got.in_flight, got.reason) == (
                    want.name,
                    want.state,
                    want.leases,
                    want.in_flight,
                    want.reason,
                )
        assert set(core.sched.marked) <= set(core.sched.slots.values())
        for lease in held:
            lease.release()
