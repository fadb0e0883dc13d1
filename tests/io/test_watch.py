"""``pool.watch(path)`` on a pool built from a list: the file's tokens replace the list's."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aurora_async import Limit, TokenPool, TokenState


async def test_watching_a_file_from_a_list_pool_applies_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("tok-from-file-bbbbbbbb\n")
    pool = TokenPool(["tok-from-list-aaaaaaaa"], limits=Limit(5))
    pool.watch(path, poll_interval=0.02, use_events=False)
    async with pool:
        for _ in range(500):  # bounded wait for the first poll
            serving = [t.name for t in pool.stats().tokens if t.state is not TokenState.REMOVED]
            if serving == ["tok-…bbbb"]:
                break
            await asyncio.sleep(0.01)
        assert serving == ["tok-…bbbb"]
