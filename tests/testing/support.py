"""Helpers for the MockAPI profile tests: one request at a time through real aiohttp on
loopback, and the answer read whole (JSON or text)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from aurora_async.testing import MockAPI

TOKEN = "sk-alpha-secret-0001"
OTHER = "sk-bravo-secret-0002"
THIRD = "sk-charlie-secret-0003"
#: A Unix time for the pure enforcers (a whole second, so header times are exact).
WALL = 1_700_000_000.0


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def call(
    session: aiohttp.ClientSession, path: str = "/items/1", *, token: str = TOKEN
) -> Reply:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(path, headers=headers) as resp:
        return Reply(resp.status, resp.headers, await resp.text())


async def statuses(session: aiohttp.ClientSession, count: int, token: str = TOKEN) -> list[int]:
    """``count`` requests one after the other (no virtual time passes between them)."""
    return [(await call(session, token=token)).status for _ in range(count)]


@asynccontextmanager
async def serve(*args: Any, **kwargs: Any) -> AsyncIterator[tuple[MockAPI, aiohttp.ClientSession]]:
    async with (
        MockAPI(*args, **kwargs) as api,
        aiohttp.ClientSession(base_url=api.url) as session,
    ):
        yield api, session


def now() -> float:
    return asyncio.get_running_loop().time()
