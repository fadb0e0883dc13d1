"""Reloading a pool's token file: by hand, on SIGHUP, or when the file changes.

A reload validates the whole new file before touching the pool: a bad version (a bad
line, an empty or missing file) is rejected with a logged error naming the file and
line, and the last good token set stays in service. A good version is applied as
``TokenPool.replace_tokens`` applies a set: new tokens join, removed ones finish their
in-flight calls, unchanged ones keep their limiter state and cooldowns.

Off the event loop: the file is read and parsed, and the change planned (which tokens
join, leave or changed, and the redaction index of those that join), in a worker
thread; on the loop only the change is applied, in slices of a few milliseconds with
the loop running between them (``membership.apply_plan``), so leases keep being
granted and waiters served while a file of a million tokens is reloaded. One reload runs
at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from pathlib import Path

import anyio

from .. import _log
from .._core.tokenfile import ParsedTokens
from .._core.tokens import Token
from .._errors import TokenFileError
from .._io.tokenfile import read_token_file, warn_duplicates
from .._io.watch import DEFAULT_POLL_INTERVAL, FileWatcher, fingerprint
from .core import PoolCore, PoolState
from .membership import Copy, apply_plan, apply_tokens, plan_tokens
from .redact import MAX_LAYERS

#: Plans made again when the pool's token set changed otherwise while one was applied,
#: before the set is applied at once instead.
_REPLANS = 3


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload changed, by masked name."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    kept: int


class Reloader:
    """The token file behind a pool, and the task that watches it."""

    def __init__(
        self, core: PoolCore, path: str, *, applied: bool = True, digest: str | None = None
    ) -> None:
        self._core = core
        self.path = Path(path)
        self._watcher: FileWatcher | None = None
        self._task: asyncio.Task[None] | None = None
        # The content the pool serves (None: none of this file's yet).
        # (``digest``: of the very bytes the pool was made from, when known)
        self._digest = (digest or fingerprint(self.path)) if applied else None
        self._sighup = False
        self._reloads: set[asyncio.Task[None]] = set()  # SIGHUP reloads under way
        self._lock = asyncio.Lock()  # one reload at a time

    async def reload(self) -> ReloadResult:
        """Read the file again and apply it; raise :class:`TokenFileError` (after logging
        ``aurora.tokens.reload_failed``) and change nothing if it is not valid."""
        async with self._lock:
            try:
                parsed = await anyio.to_thread.run_sync(read_token_file, self.path)
            except TokenFileError as exc:
                _log.error(
                    "aurora.tokens.reload_failed",
                    path=exc.path,
                    line=exc.line,
                    error=exc.reason,
                    kept=len(self._core.sched.slots),
                )
                raise
            warn_duplicates(parsed)
            result = await reload_tokens(self._core, parsed.values)
            # The digest of the very bytes applied (read once): a save that lands after
            # the read is a different digest, so the watcher will apply it next time.
            self._digest = parsed.digest
            box = [parsed]
            del parsed
            await anyio.to_thread.run_sync(release, box)
        if self._watcher is not None:
            self._watcher.mark_seen(self._digest)
        _log.info(
            "aurora.tokens.reloaded",
            path=str(self.path),
            added=list(result.added),
            removed=list(result.removed),
            kept=result.kept,
        )
        return result

    async def _reload_logged(self) -> None:
        with contextlib.suppress(TokenFileError):  # logged by reload(); last good set stays
            await self.reload()

    def watch(
        self, *, poll_interval: float = DEFAULT_POLL_INTERVAL, use_events: bool = True
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive seconds, got {poll_interval!r}")
        self._watcher = FileWatcher(
            self.path, self._reload_logged, poll_interval=poll_interval, use_events=use_events
        )
        self._watcher.mark_seen(self._digest)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching (when the pool is entered), if asked to."""
        if self._watcher is not None and self._task is None:
            self._task = loop.create_task(self._watcher.run(), name="aurora-token-watch")
        if self._sighup:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup, loop)

    def reload_on_sighup(self) -> None:
        self._sighup = True
        loop = self._core.loop
        if loop is not None and self._core.state is PoolState.OPEN:
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup, loop)

    def _on_sighup(self, loop: asyncio.AbstractEventLoop) -> None:
        _log.info("aurora.tokens.sighup", path=str(self.path))
        task = loop.create_task(self._reload_logged(), name="aurora-token-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if self._watcher is not None:
            self._watcher.stop()  # wakes watchfiles' thread, or cancelling waits for it
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sighup and self._core.loop is not None:
            self._core.loop.remove_signal_handler(signal.SIGHUP)


async def reload_tokens(core: PoolCore, values: tuple[str | Token, ...]) -> ReloadResult:
    """Make the pool's set ``values`` (a parsed file's): planned in a worker thread from a
    copy of the pool's slots, applied on the loop in slices. If the set changes otherwise
    meanwhile (``replace_tokens``), planned again from a new copy; after
    :data:`_REPLANS` such tries, applied at once."""
    added: dict[str, str] = {}  # the secrets that joined, in order, each once: names
    removed: list[str] = []
    sched = core.sched
    for _ in range(_REPLANS):
        copy = Copy.of(core, merge=core.redact.layers() >= MAX_LAYERS)
        plan = await anyio.to_thread.run_sync(plan_tokens, values, copy)
        done = await apply_plan(core, plan)
        earlier = len(added)
        added.update(plan.added)
        removed += plan.removed
        if done:  # (what an earlier, interrupted plan added counts as added, not kept)
            kept = plan.kept - (len(added) - len(plan.added)) if earlier else plan.kept
            return ReloadResult(tuple(added.values()), tuple(removed), max(0, kept))
    before = {v: s.name for v, s in sched.slots.items() if not s.removed}
    apply_tokens(core, values)
    after = {v: s.name for v, s in sched.slots.items() if not s.removed}
    names = list(added.values())
    names += (after[v] for v in after if v not in before and v not in added)
    removed += (before[v] for v in before if v not in after)
    return ReloadResult(tuple(names), tuple(removed), sum(1 for v in after if v in before))


#: Objects freed at a time by :func:`release`.
_FREE = 4096


def release(box: list[ParsedTokens]) -> None:
    """Free the parsed file in ``box`` (its only reference) a few thousand objects at a
    time: in a worker thread, freeing a million strings at once would hold the
    interpreter's lock, and so the event loop, for a tenth of a second."""
    parsed = box.pop()
    held: list[object] = [*parsed.values, *parsed.lines]
    del parsed
    while held:
        del held[-_FREE:]
