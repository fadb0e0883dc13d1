"""What the collaborators of one ``RedisBackend`` share: the pool (through its port),
the connection, the namespace's keys, this worker's id, and the background tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from .. import _log
from .calls import Connection
from .keys import Keys
from .port import PoolPort


class Context:
    """One backend's shared settings and background tasks."""

    __slots__ = ("_tasks", "closed", "keys", "port", "redis", "ttl_ms", "worker")

    def __init__(
        self, port: PoolPort, redis: Connection, keys: Keys, worker: str, ttl_ms: int
    ) -> None:
        self.port = port
        self.redis = redis
        self.keys = keys
        self.worker = worker  #: this worker's random id in the namespace
        self.ttl_ms = ttl_ms  #: keys expire after this long without use
        self.closed = False  #: the backend is closed: it starts nothing new
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self) -> float:
        return self.port.now()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in the background on the pool's loop (which it must have)."""
        loop = self.port.loop()
        assert loop is not None
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:  # pragma: no cover - every task catches what it expects
            _log.error("aurora.redis.internal_error", error=type(exc).__name__, detail=str(exc))

    async def stop(self) -> None:
        """Cancel every background task still running, and wait for them."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
