"""Tokens dropped by reloads are remembered only while their state matters: memory stays
bounded by the states not yet drained (disabled ones are kept: see test_reload_eviction)."""

from __future__ import annotations

import asyncio

import pytest

from aurora_async import Limit, TokenPool
from aurora_async._pool.core import core_of


@pytest.mark.looptime
async def test_retired_tokens_are_bounded() -> None:
    """2,000 rotations of a token used 0.1 s before its reload (5 per second: one unit
    drains in 0.2 s): each reload keeps the one it left out, still draining, and forgets
    the one before, drained."""
    pool = TokenPool(["tok-gen-000000-xxxx"], limits=Limit(5))
    kept: list[int] = []
    async with pool:
        for gen in range(1, 2001):
            (await pool.acquire(timeout=0)).release()
            await asyncio.sleep(0.1)
            pool.replace_tokens([f"tok-gen-{gen:06d}-xxxx"])
            kept.append(len(dict(core_of(pool).sched.retired_items())))
            await asyncio.sleep(0.2)
        assert len(pool.stats().tokens) == 1
    assert kept == [1] * 2000
