"""Tokens dropped by reloads are remembered only up to a bound."""

from __future__ import annotations

from aurora_async import Limit, TokenPool
from aurora_async._pool.core import core_of


async def test_retired_tokens_are_bounded() -> None:
    pool = TokenPool(["tok-gen-000000-xxxx"], limits=Limit(5))
    for gen in range(1, 2001):
        pool.disable(pool.stats().tokens[-1].name, "rotated")
        pool.replace_tokens([f"tok-gen-{gen:06d}-xxxx"])
    assert len(pool.stats().tokens) == 1
    assert len(dict(core_of(pool).sched.retired_items())) <= 1000
