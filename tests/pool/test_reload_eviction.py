"""Issue 12, reload eviction: a token a reload left out keeps every state that still matters
(windows not drained, a cooldown, disabled) however many others were left out; only
drained states are forgotten, and forgetting them never scans those kept."""

from __future__ import annotations

import asyncio

import pytest

from aurora_async import Limit, TokenPool, TokenState
from aurora_async._core import tokenset
from aurora_async._core.slot import Slot, drained
from aurora_async._core.tokens import mask
from aurora_async._pool.core import core_of

pytestmark = pytest.mark.looptime

HOUR = Limit(1, per=3600)


def tokens(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-secret-{i:06d}" for i in range(n)]


def retired(pool: TokenPool) -> dict[str, Slot]:
    return dict(core_of(pool).sched.retired_items())


async def test_tokens_left_out_and_back_keep_their_state() -> None:
    """The issue's case: 600 tokens of 1 per hour used, a reload to a wrong file of 600
    others (used too), and back. None grants before its hour is up (before: 200 granted at
    once), the disabled one is still disabled, the cooling one still cooling."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    right, wrong = tokens("right", 600), tokens("wrong", 600)
    pool = TokenPool(right, limits=HOUR)
    async with pool:
        for _ in right:
            (await pool.acquire(timeout=0)).release()
        off, cool = mask(right[0]), mask(right[1])  # among the first left out
        pool.disable(off, "revoked by the vendor")
        pool.cool(cool, 7200)
        pool.replace_tokens(wrong)
        assert len(retired(pool)) == 600
        for _ in wrong:
            (await pool.acquire(timeout=0)).release()
        pool.replace_tokens(right)
        assert set(retired(pool)) == set(wrong)
        stats = pool.stats()
        assert [t.state for t in stats.tokens].count(TokenState.ACTIVE) == 598
        assert stats.token(off).state is TokenState.DISABLED
        assert stats.token(off).reason == "revoked by the vendor"
        assert stats.token(cool).state is TokenState.COOLING

        async def granted_at() -> float:
            lease = await pool.acquire()
            lease.release()
            return round(loop.time() - t0, 6)

        times = await asyncio.gather(*(granted_at() for _ in range(598)))
        assert times == [3600.0] * 598
        assert pool.stats().token(cool).state is TokenState.COOLING  # until 7200


async def test_disabled_states_are_kept_however_many_rotate() -> None:
    """1,100 tokens disabled, then left out one by one: every one is remembered (before:
    the oldest beyond 1,000 were forgotten), and the first comes back disabled."""
    first = tokens("gen", 1)[0]
    pool = TokenPool([first], limits=Limit(5))
    async with pool:
        for gen in range(1, 1101):
            pool.disable(pool.stats().tokens[-1].name, f"rotated {gen}")
            pool.replace_tokens([f"gen-secret-{gen:06d}"])
        assert len(retired(pool)) == 1100
        pool.replace_tokens([first])
        back = pool.stats().token(mask(first))
        assert (back.state, back.reason) == (TokenState.DISABLED, "rotated 1")


async def test_memory_is_bounded_by_the_states_not_yet_drained() -> None:
    """5,000 reloads, 0.1 s apart, each leaving out the token used just before for a fresh
    one: the pool remembers exactly those whose 150 s window has not drained (1,500 at most;
    before: 1,000, the rest forgotten undrained), and their calibrators, nothing more."""
    pool = TokenPool(["fresh-secret-000000"], limits=Limit(1, per=150))
    core = core_of(pool)
    kept: list[int] = []
    async with pool:
        for gen in range(1, 5001):
            (await pool.acquire(timeout=0)).release()  # token gen - 1, at 0.1 * (gen - 1)
            await asyncio.sleep(0.05)
            pool.replace_tokens([f"fresh-secret-{gen:06d}"])
            kept.append(len(core.sched._retired))
            await asyncio.sleep(0.05)
        assert kept == [min(gen, 1500) for gen in range(1, 5001)]
        remembered = {*core.sched.slots.values(), *retired(pool).values()}
        assert set(core.calibration._by_slot) <= remembered
        assert len(core.sched._drains) <= 2 * 1500 + 64
        await asyncio.sleep(150)  # the last one used drained 0.1 s ago
        pool.replace_tokens(["fresh-secret-last"])
        assert retired(pool) == {}
        assert core.sched._drains == []
        assert set(core.calibration._by_slot) <= set(core.sched.slots.values())


async def test_a_reload_does_not_scan_the_states_it_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 retired states not drained: a reload looks at none of them (before: all, on
    every reload); once they drain, the next reload forgets each after one look."""
    looks: list[Slot] = []

    def counting(slot: Slot, now: float) -> bool:
        looks.append(slot)
        return drained(slot, now)

    monkeypatch.setattr(tokenset, "drained", counting)
    pool = TokenPool(tokens("many", 10_000), limits=HOUR, start_full=True)
    async with pool:
        pool.replace_tokens(["other-secret-xxxx"])
        assert len(retired(pool)) == 10_000
        looks.clear()
        for _ in range(5):
            pool.replace_tokens(["other-secret-xxxx"])
        assert looks == []
        await asyncio.sleep(3601)
        pool.replace_tokens(["other-secret-xxxx"])
        assert len(looks) == 10_000
        assert retired(pool) == {}
