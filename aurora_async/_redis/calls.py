"""The I/O edge of the Redis backend: one client, scripts by SHA, short timeouts.

Everything that talks to Redis goes through :class:`Connection`, which turns "Redis
cannot serve now" (refused, reset, timed out, loading, read-only, cluster down...)
into one exception, :class:`Unavailable`, for the backend's failure policy. A dropped
connection (``CLIENT KILL``, a restart) is retried once, at once, on a fresh one;
``NOSCRIPT`` (``SCRIPT FLUSH``, a restart, a failover) sends the script's source with
``EVAL``, which also caches it again. ``redis`` is imported here, lazily.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from .._errors import BackendUnavailable
from .scripts import Script

#: Redis did not answer in time, or not at all: what every failed call raises, for the
#: backend's failure policy (the one error type a user may also meet, under fail-closed).
Unavailable = BackendUnavailable


def import_redis() -> Any:
    """``redis`` (with ``redis.asyncio``), or an ImportError naming the extra."""
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError as exc:
        raise ImportError(
            "RedisBackend needs the redis package: pip install 'aurora_async[redis]'"
        ) from exc
    return redis


class Connection:
    """A ``redis.asyncio`` client (made from ``url`` and owned, or given and borrowed)
    and the rules for calling it."""

    def __init__(self, url: str, client: Any, timeout: float) -> None:
        redis = import_redis()
        exc = redis.exceptions
        self.timeout = timeout
        #: When (the loop's clock) the latest call Redis answered was sent: Redis was
        #: there at some moment after it.
        self.answered_at = -math.inf
        self._noscript: type[Exception] = exc.NoScriptError
        self._dropped: type[Exception] = exc.ConnectionError
        #: Errors that mean "Redis cannot serve now" rather than "this call is wrong".
        self._down: tuple[type[Exception], ...] = (
            exc.ConnectionError,
            exc.TimeoutError,
            exc.BusyLoadingError,
            exc.ReadOnlyError,
            exc.ClusterDownError,
            exc.TryAgainError,
            exc.OutOfMemoryError,
            OSError,
            TimeoutError,
        )
        self.owned = client is None
        if client is None:
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # No retries of its own: a dropped connection is retried once here, and
            # anything else goes to the failure policy at once.
            client = redis.asyncio.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
        self.client: Any = client

    async def call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` within the timeout; raises :class:`Unavailable`."""
        for attempt in (0, 1):
            sent = asyncio.get_running_loop().time()
            try:
                if self.owned:  # its own socket timeouts bound every read and connect
                    reply = await self._run(script, keys, args)
                else:
                    async with asyncio.timeout(self.timeout):
                        reply = await self._run(script, keys, args)
                self.answered_at = max(self.answered_at, sent)
                return reply
            except self._down as exc:
                if attempt == 0 and isinstance(exc, self._dropped):
                    continue  # a fresh connection from the pool, once
                raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        client = self.client
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except self._noscript:
            from .. import _log

            _log.info("aurora.redis.script_loaded", script=script.name)
            return await client.eval(script.source, len(keys), *keys, *args)

    async def command(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Run one plain command (``delete``, ``lrange``...) within the timeout."""
        sent = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(timeout or self.timeout):
                reply = await getattr(self.client, name)(*args)
        except self._down as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        self.answered_at = max(self.answered_at, sent)
        return reply

    async def aclose(self) -> None:
        """Close the client if this connection made it (never one it was given)."""
        if self.owned:
            await self.client.aclose()
