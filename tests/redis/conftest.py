"""Fixtures for the Redis backend: real ``redis-server`` processes on free ports.

One server serves the whole session (every test takes its own namespace); tests that
stop, restart or pause Redis get a private server. Without the ``redis-server`` binary
these tests are skipped, except in CI (``CI`` set) or with ``AURORA_REQUIRE_REDIS=1``,
where a missing binary fails them: the guarantees they check must not go untested.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from aurora_async import Token, TokenPool
from aurora_async._redis import RedisBackend

from .support import REDIS_SERVER, Events, RedisProcess, require_binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    require_binary(REDIS_SERVER)
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A private server, for tests that stop, restart or pause it."""
    require_binary(REDIS_SERVER)
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def raw(redis_server: RedisProcess) -> AsyncIterator[Any]:
    """A plain client of the session's server, to look at (and break) things."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def backends() -> AsyncIterator[list[RedisBackend]]:
    """Backends made by a test, closed at its end whatever happened."""
    made: list[RedisBackend] = []
    yield made
    for backend in made:
        await backend.aclose()


@pytest.fixture
def make_backend(
    redis_server: RedisProcess, namespace: str, backends: list[RedisBackend]
) -> Callable[..., RedisBackend]:
    def make(url: str | None = None, **kwargs: Any) -> RedisBackend:
        kwargs.setdefault("namespace", namespace)
        kwargs.setdefault("audit", True)
        backend = RedisBackend(url or redis_server.url, **kwargs)
        backends.append(backend)
        return backend

    return make


@pytest.fixture
def make_pool(
    make_backend: Callable[..., RedisBackend],
) -> Callable[..., TokenPool]:
    """``make_pool(tokens, backend_kw={...}, **pool_kw)``: a pool on its own backend."""

    def make(
        tokens: list[str | Token],
        *,
        backend_kw: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TokenPool:
        kwargs.setdefault("trial_in_flight", None)
        return TokenPool(tokens, backend=make_backend(**(backend_kw or {})), **kwargs)

    return make


@pytest.fixture
def events() -> Iterator[Events]:
    captured = Events()
    structlog.configure(processors=[captured])
    yield captured
    structlog.reset_defaults()
