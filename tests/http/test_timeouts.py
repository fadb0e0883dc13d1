"""The ``timeout`` argument of ``pool.request`` beside the pool's ``deadline``."""

from __future__ import annotations

import pytest

from aurora_async import (
    TokenPool,
)

from .support import A, ok, serve


@pytest.mark.looptime
async def test_a_number_timeout_works_with_a_deadline() -> None:
    async with serve(ok) as url, TokenPool([A], deadline=5) as pool:
        assert (await pool.get(url, timeout=3)).status == 200
        assert (await pool.get(url, timeout=None)).status == 200
        with pytest.raises(TypeError, match="timeout must be"):
            await pool.get(url, timeout="3")
