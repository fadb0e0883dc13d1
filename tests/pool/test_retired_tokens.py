"""Tokens dropped by reloads are remembered only up to a bound."""

from __future__ import annotations

from aurora_async import Limit, TokenPool


async def test_retired_tokens_are_bounded() -> None:
    pool = TokenPool(["tok-gen-000000-xxxx"], limits=Limit(5))
    for gen in range(1, 2001):
        pool.disable(pool.stats().tokens[-1].name, "rotated")
        pool.replace_tokens([f"tok-gen-{gen:06d}-xxxx"])
    assert len(pool.stats().tokens) == 1
    assert len(pool._sched._retired) <= 1000
