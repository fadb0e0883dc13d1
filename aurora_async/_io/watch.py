"""Watching the token file: reload when it changes, however it changes.

Operators edit ``access_tokens.txt`` in place, editors replace it by rename, Kubernetes
swaps a ``..data`` symlink beside it, and network or bind mounts may deliver no file
events at all. So the watcher listens to the file's *directory* with ``watchfiles``
(inotify and friends; an optional extra) and also polls the file every
``poll_interval`` seconds, and reloads only when the file's bytes actually changed.
Both run as tasks of one anyio task group, stopped together when the pool closes.

The file is read in a worker thread, without blocking (a FIFO swapped in for the file is
not waited on) and at most up to the token file's size limit: a file that cannot be read
that way has no digest, and the reload that follows reports why.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from .. import _log
from .._errors import TokenFileError
from .regular import read_regular
from .tokenfile import max_bytes

#: How often the file is polled when no file event arrives (seconds).
DEFAULT_POLL_INTERVAL = 2.0


def check_poll_interval(poll_interval: object) -> float:
    """``poll_interval`` as seconds, or a ``TypeError``/``ValueError`` that says what to pass
    (a NaN or infinite interval would end, or never run, the poll without a word)."""
    if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
        raise TypeError(
            f"poll_interval must be a number of seconds, not {type(poll_interval).__name__}"
        )
    seconds = float(poll_interval)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"poll_interval must be positive, finite seconds, got {poll_interval!r} "
            f"(the default is {DEFAULT_POLL_INTERVAL:g})"
        )
    return seconds


def fingerprint(path: Path) -> str | None:
    """A digest of the file's bytes, following symlinks; ``None`` if it cannot be read as a
    token file is (missing, unreadable, not a regular file, too large). Blocking I/O, but
    it never waits on a FIFO nor reads more than the token file limit."""
    try:
        data = read_regular(path, limit=max_bytes())
    except (OSError, TokenFileError):
        return None
    return hashlib.sha256(data).hexdigest() if isinstance(data, bytes) else None


class FileWatcher:
    """Calls ``on_change()`` whenever the bytes of ``path`` differ from the last time."""

    def __init__(
        self,
        path: Path,
        on_change: Callable[[], Awaitable[object]],
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        use_events: bool = True,
    ) -> None:
        self.path = path
        self._on_change = on_change
        self.poll_interval = check_poll_interval(poll_interval)
        self.use_events = use_events
        self._seen: str | None = None
        self._lock = anyio.Lock()
        self._stop_events: anyio.Event | None = None

    def stop(self) -> None:
        """Ask the file-event watcher to end (its thread wakes up at once)."""
        if self._stop_events is not None:
            self._stop_events.set()

    def mark_seen(self, digest: str | None) -> None:
        """Record the content the pool already has (so it is not reloaded again)."""
        self._seen = digest

    async def check(self) -> bool:
        """Reload if the file changed since last seen; returns whether it did."""
        async with self._lock:
            digest = await anyio.to_thread.run_sync(fingerprint, self.path)
            if digest == self._seen:
                return False
            self._seen = digest
        await self._on_change()
        return True

    async def run(self) -> None:
        """Watch until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._poll)
            if self.use_events:
                group.start_soon(self._events)

    async def _poll(self) -> None:
        while True:
            await anyio.sleep(self.poll_interval)
            await self.check()

    async def _events(self) -> None:
        try:
            from watchfiles import awatch
        except ImportError:
            _log.info(
                "aurora.tokens.watch_polling",
                path=str(self.path),
                why="watchfiles is not installed (pip install 'aurora_async[watch]'); "
                f"polling every {self.poll_interval:g}s",
            )
            return
        # The directory, not the file: editors replace files by rename and Kubernetes
        # swaps a ..data symlink beside them (at the top of the volume, so not
        # recursively). Any change there may be ours; the digest decides (a change
        # elsewhere in the directory costs one read and hash).
        stop = anyio.Event()
        self._stop_events = stop
        try:
            async for _changes in awatch(
                self.path.parent,
                recursive=False,
                watch_filter=None,
                debounce=50,
                step=25,
                stop_event=stop,
            ):
                await self.check()
        finally:
            stop.set()
