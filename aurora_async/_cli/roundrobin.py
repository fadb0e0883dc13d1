"""The baseline of the demo: strict round robin, the client people write first.

Each call takes the next token in turn and waits on that token's own
``aiolimiter.AsyncLimiter`` (set to the token's configured limit), then sends with
plain aiohttp. A 429 or a 401 is retried on the next token, honouring nothing else: no
Retry-After, no memory of revoked tokens, no idea that another token is free right now.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter

from .._core.limits import Limit

__all__ = ["RoundRobin"]


class RoundRobin:
    """Tokens taken strictly in turn, each behind its own limiter."""

    def __init__(self, tokens: Sequence[tuple[str, Limit]]) -> None:
        if not tokens:
            raise ValueError("round robin needs at least one token")
        self._secrets = [secret for secret, _ in tokens]
        self._limiters = [AsyncLimiter(limit.rate, limit.per) for _, limit in tokens]
        self._turn = itertools.count()
        self.attempts = 0

    async def get(self, session: aiohttp.ClientSession, url: str, **kwargs: Any) -> int:
        """GET ``url`` until a token gets an answer other than 429 or 401; its status."""
        while True:
            i = next(self._turn) % len(self._secrets)
            await self._limiters[i].acquire()
            self.attempts += 1
            headers = {"Authorization": f"Bearer {self._secrets[i]}"}
            async with session.get(url, headers=headers, **kwargs) as resp:
                await resp.read()
                if resp.status not in (401, 429):
                    return resp.status
