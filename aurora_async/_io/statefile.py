"""``StateFile``: what a restart must not forget, kept in a small JSON file.

Saved per token: whether it is disabled and why, the cooldown still to run, the backoff
step, the level of each limit window, so a daily quota (``Limit(1000, per=86400)``)
does not start afresh because the process restarted, and the limits the pool learned:
each window whose effective limit evidence moved from the declared one (a rate
calibrated from 429s, ``"source": "learned"``; a window an API's headers restated or a
quota they stated, ``"header"``), with the declared limit it came from, and what the
token's calibrator knew beyond it (``"calibrator"``), so a restarted pool resumes at the
limits it had learned, with no fresh round of 429s to find them again.

Times are stored as durations from one wall-clock moment, ``saved_at`` (Unix seconds),
never as loop times: a loop's clock means nothing to the next process. On load, the time
that has passed since ``saved_at`` is taken off: windows leak by it and cooldowns run
down by it. A wall clock that went backwards counts as no time passed (the safe side).

No secret goes into the file. Tokens are keyed by HMAC-SHA256 of the secret under a
random salt drawn for each save and stored beside the keys, so the keys cannot be looked
up in a precomputed table nor linked between two saves; the masked name is kept only for
people reading the file. Writes are atomic (a temporary file in the same directory,
flushed and fsynced, then ``os.replace``), with mode 0600. A file that cannot be read or
understood is reported (``aurora.state.corrupt``) and ignored: state is a convenience,
never a reason not to start.

Only a regular file is read, without blocking and up to ``max_bytes``: a FIFO or a device
named as the state file is reported and ignored, never waited on nor read without end, and
a save refuses to replace it (the save fails, and says why). Disk work runs in a worker
thread wherever a coroutine asks for it (:meth:`StateFile.load`, :meth:`StateFile.save`).

File format (version 1; ``"learned"`` and ``"calibrator"`` are optional, so files saved
before they were kept load as they are, and no earlier field changed)::

    {"format": "aurora_async.state", "version": 1, "saved_at": 1718000000.0,
     "salt": "<32 hex digits>",
     "tokens": {"<hmac hex>": {"name": "sk-a…9f2c", "disabled": "HTTP 401 Unauthorized",
                               "cooldown": 42.5, "backoff": 4.0,
                               "windows": [{"rate": 1000.0, "per": 86400.0,
                                            "burst": 1000.0, "level": 512.0}]},
                "<hmac hex>": {"name": "sk-p…cdef",
                               "learned": [{"rate": 10.2005, "per": 1.0, "burst": 1.0,
                                            "source": "learned",
                                            "declared": {"rate": 20.0, "per": 1.0}}],
                               "calibrator": {"served": 10.0, "refused": 10.405,
                                              "refused_burst": null, "step_of": 10.0,
                                              "patience": 1, "slow": false,
                                              "probe": ["climb", 10.0]},
                               "windows": [{"rate": 10.2005, "per": 1.0, "burst": 1.0,
                                            "level": 0.049}]}}}

A learned window's ``"declared"`` carries its burst only where one was given
(``Limit(20)`` and ``Limit(20, burst=20)`` are declared differently: a given burst is
trusted). The ``"calibrator"``'s ``null`` stands for "none refused yet".

A window made for one scope from a ``Limit(..., scope="*")`` template is written with its
template's limit and ``"for": "<scope>"``; on load the token makes that scope's windows
from its templates again (if it still has them) and raises them to the saved levels.

Learned limits are loaded first, so the saved levels (which are of those limits) find
their windows; ``Calibration.restore`` applies them the way the pool changes limits at
run time (through the scheduler, which keeps its index and tiers in step), and never
above a declared limit. A learned limit whose declared limit is not the token's any more
is discarded (``aurora.state.learned_discarded``: the user's new declaration wins). A
damaged learned field is reported (``aurora.state.corrupt``, naming the token's masked
name and the window) and left out; the token's other state, and the rest of the file,
still load. With a shared backend (Redis) the pool's learned limits live in Redis, and
with ``calibrate=False`` there are none: learned fields are then neither saved nor
restored (``aurora.state.learned_skipped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import json
import math
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .. import _log
from .._core.buckets import AnyWindow, CalendarWindow
from .._core.calibrate_types import Kept, Memory
from .._core.limits import Limit, check_scope
from .._core.policy import Verdict
from .._pool.core import Evidence, PoolCore, core_of
from .regular import NotRegular, TooLarge, read_regular, special_kind
from .statefile_limits import learned_fields, limit_fields, limit_of, read_kept, read_memory

if TYPE_CHECKING:
    from .._core.scheduler import Slot

__all__ = ["DEFAULT_MAX_BYTES", "FORMAT", "VERSION", "StateFile"]

FORMAT = "aurora_async.state"
VERSION = 1
#: The largest state file read (256 MiB: about a million tokens with something to remember).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

_SALT_BYTES = 16


class _Corrupt(Exception):
    """The file is not a state file we can use (the message says why; no secret)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    disabled: str | None
    cooldown: float
    backoff: float
    #: (limit, level at saved_at, the scope a template's window was made for, or None)
    windows: tuple[tuple[Limit, float, str | None], ...]
    #: Limits the run learned or was told, and its calibrator's memory (optional fields).
    learned: tuple[Kept, ...] = ()
    memory: Memory | None = None
    #: What is wrong with damaged learned fields (each left out, reported on load).
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _State:
    saved_at: float
    salt: bytes
    tokens: dict[str, _Entry]


def _key(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


class StateFile:
    """A pool's disabled tokens, cooldowns and window levels, saved across restarts.

    ``clock`` is the wall clock (Unix seconds; tests pass a fake one). Typical use::

        state = StateFile("/var/lib/crawler/aurora-state.json")
        async with pool:
            await state.load(pool)           # before the first lease
            saver = asyncio.create_task(state.autosave(pool, every=60))
            try:
                ...
            finally:
                saver.cancel()
                await state.save(pool)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self.path = Path(path)
        self._clock = clock
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"StateFile({str(self.path)!r})"

    # -- saving --------------------------------------------------------------------

    def _snapshot(self, pool: object) -> tuple[bytes, int]:
        """The file's bytes for ``pool`` as it stands now, and how many tokens they hold
        (synchronous, no I/O). Tokens with nothing to remember (enabled, not cooling, all
        windows empty) and removed tokens are left out."""
        core = core_of(pool)
        now = core.now()
        wall = self._clock()
        salt = secrets.token_bytes(_SALT_BYTES)
        tokens: dict[str, dict[str, Any]] = {}
        for value, slot in core.sched.slots.items():
            if slot.removed:
                continue
            entry = _describe(slot, now, *core.calibration.kept(slot))
            if entry:
                tokens[_key(salt, value)] = {"name": slot.name, **entry}
        document = {
            "format": FORMAT,
            "version": VERSION,
            "saved_at": wall,
            "salt": salt.hex(),
            "tokens": tokens,
        }
        data = (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode()
        return data, len(tokens)

    def save_from(self, pool: object) -> int:
        """Write ``pool``'s state now, atomically; returns how many tokens were saved.
        Raises :class:`OSError` if the file cannot be written."""
        data, count = self._snapshot(pool)
        self._write(data, count)
        return count

    async def save(self, pool: object) -> int:
        """Like :meth:`save_from`, with the disk work in a worker thread (the snapshot is
        taken at once, on the loop)."""
        data, count = self._snapshot(pool)
        await anyio.to_thread.run_sync(self._write, data, count)
        return count

    async def autosave(self, pool: object, every: float = 60.0) -> None:
        """Save every ``every`` seconds until cancelled. A failed save is logged
        (``aurora.state.save_failed``) and tried again next time; it never stops the
        task, so a full disk does not take the application down."""
        if not (every > 0 and math.isfinite(every)):
            raise ValueError(f"every must be a positive number of seconds, got {every!r}")
        while True:
            await anyio.sleep(every)
            try:
                await self.save(pool)
            except OSError as exc:
                _log.error(
                    "aurora.state.save_failed",
                    path=str(self.path),
                    error=exc.strerror or type(exc).__name__,
                )

    def _write(self, data: bytes, count: int) -> None:
        path = self.path
        kind = special_kind(path)
        if kind is not None:  # never put a file in place of a FIFO or a device
            why = f"{path} is {kind}, not a regular file: a save does not replace it"
            raise OSError(errno.EINVAL, why)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:  # mkstemp made it 0600
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
        _log.debug("aurora.state.saved", path=str(path), tokens=count)

    # -- loading -------------------------------------------------------------------

    def load_into(self, pool: object) -> int:
        """Restore the saved state into ``pool``'s tokens; returns how many were restored.

        Call it inside the event loop that runs the pool, before the first lease (window
        levels are restored as the larger of the saved level, run down by the time since
        it was saved, and the level the window has now). Tokens in the file but not in
        the pool are ignored. A missing file restores nothing; a file that cannot be read
        or understood is reported (``aurora.state.corrupt``) and ignored. It reads the
        file on the loop's thread: from a coroutine, prefer :meth:`load`."""
        _require_loop("load_into")
        state = self._read_state()
        return 0 if state is None else self._apply(pool, state)

    async def load(self, pool: object) -> int:
        """Like :meth:`load_into`, with the file read and parsed in a worker thread, so a
        slow disk or a large file does not stall the event loop."""
        _require_loop("load")
        state = await anyio.to_thread.run_sync(self._read_state)
        return 0 if state is None else self._apply(pool, state)

    def _read_state(self) -> _State | None:
        """The file's state, or ``None`` (reported) when there is none to use. Blocking
        I/O; it never waits on a FIFO nor reads more than ``max_bytes``."""
        path = str(self.path)
        try:
            data = read_regular(self.path, limit=self.max_bytes)
        except FileNotFoundError:
            _log.info("aurora.state.missing", path=path, hint="starting with no saved state")
            return None
        except OSError as exc:
            _corrupt(path, f"cannot read it: {exc.strerror or type(exc).__name__}")
            return None
        if isinstance(data, NotRegular):
            _corrupt(path, f"it is {data.kind}, not a regular file: not read", hint=_SPECIAL)
            return None
        if isinstance(data, TooLarge):
            held = f"{data.size:,} bytes" if data.size is not None else "more"
            _corrupt(path, f"it is larger than the limit of {data.limit:,} bytes ({held})")
            return None
        try:
            return _parse(data)
        except _Corrupt as exc:
            _corrupt(path, str(exc))
            return None

    def _apply(self, pool: object, state: _State) -> int:
        """Decide from the file and the pool, then change the pool through its methods."""
        wall = self._clock()
        elapsed = max(0.0, wall - state.saved_at)
        core = core_of(pool)
        now = core.now()
        sched = core.sched
        salt = state.salt
        restored = 0
        learned = _Learned(self, core)
        for value, slot in list(sched.slots.items()):
            if slot.removed:
                continue
            entry = state.tokens.get(_key(salt, value))
            if entry is None:
                continue
            restored += 1
            learned.restore(slot, entry)  # first: the saved levels are of these limits
            if _restore_windows(slot, entry.windows, elapsed, now):
                sched.touched(slot)  # its key moved later
            slot.backoff = max(slot.backoff, entry.backoff)
            if entry.disabled is not None:
                core.report(slot, Verdict.REVOKED, reason=entry.disabled, evidence=Evidence.RESTORE)
            left = entry.cooldown - elapsed
            if left > 0:
                core.report(slot, Verdict.RATE_LIMITED, cooldown=left, evidence=Evidence.RESTORE)
        core.restored()
        learned.skipped()
        _log.info(
            "aurora.state.loaded",
            path=str(self.path),
            restored=restored,
            unknown=len(state.tokens) - restored,
            age=round(elapsed, 3),
        )
        return restored


class _Learned:
    """Loading the limits a run learned into the pool's tokens, and saying what was not."""

    __slots__ = ("_core", "_path", "_skipped")

    def __init__(self, state: StateFile, core: PoolCore) -> None:
        self._path = str(state.path)
        self._core = core
        self._skipped = 0

    def restore(self, slot: Slot, entry: _Entry) -> None:
        for problem in entry.problems:
            _corrupt(self._path, f"token {slot.name}, {problem}", hint=_LEARNED_IGNORED)
        core = self._core
        if not entry.learned:
            return
        if core.backend is not None or not core.calibration.enabled:
            self._skipped += 1
            return
        for stale in core.calibration.restore(slot, entry.learned, entry.memory):
            _log.info(
                "aurora.state.learned_discarded",
                path=self._path,
                token=slot.name,
                window=str(stale.effective),
                declared_then=str(stale.declared),
                reason="its declared limit changed since the save: the new declaration wins",
            )

    def skipped(self) -> None:
        if not self._skipped:
            return
        why = (
            "a shared backend keeps learned limits itself"
            if self._core.backend is not None
            else "calibrate=False enforces the declared limits as given"
        )
        _log.info("aurora.state.learned_skipped", path=self._path, tokens=self._skipped, reason=why)


def _describe(
    slot: Slot, now: float, kept: tuple[Kept, ...], memory: Memory | None
) -> dict[str, Any]:
    entry: dict[str, Any] = learned_fields(kept, memory)
    if slot.disabled:
        entry["disabled"] = slot.reason or "disabled"
    if slot.cool_until > now:
        entry["cooldown"] = slot.cool_until - now
    if slot.backoff:
        entry["backoff"] = slot.backoff
    windows = []
    for window in slot.windows:
        level = window.level_at(now)
        if level > 0:
            windows.append({**limit_fields(window.limit), "level": level})
    for scope, made in (slot.scoped or {}).items():  # made from Limit(scope="*") templates
        for window in made:
            level = window.level_at(now)
            if level > 0:
                windows.append({**limit_fields(window.limit), "for": scope, "level": level})
    if windows:
        entry["windows"] = windows
    return entry


def _restore_windows(
    slot: Slot, saved: tuple[tuple[Limit, float, str | None], ...], elapsed: float, now: float
) -> bool:
    """Raise each window to its saved level, leaked by ``elapsed``; windows are matched
    by their limit (a limit that changed since starts as it is), and a scope's windows
    made from a template are made again for it. Returns whether any window changed."""
    changed = False
    free: dict[str | None, list[AnyWindow]] = {None: list(slot.windows)}
    for limit, level, made_for in saved:
        if made_for is not None and made_for not in free:
            # The scope's windows, made from the token's templates (none if it has none
            # now, names the scope itself, or holds as many scopes as it may).
            made = slot.lease_windows(made_for, now)[len(slot.windows) :]
            free[made_for] = [w for w in made if w.scope == made_for]
        window = next((w for w in free[made_for] if w.limit == limit), None)
        if window is None:
            continue
        free[made_for].remove(window)
        if isinstance(window, CalendarWindow):  # used this period: kept till the reset
            changed = window.carry(level, now - elapsed) or changed
            continue
        level = min(window.burst, level - elapsed * window.rate)
        if level > window.level_at(now):
            window.put(level, now)
            changed = True
    return changed


_IGNORED = "ignored: the pool starts without saved state; the next save replaces it"
_LEARNED_IGNORED = (
    "ignored: this learned limit (the window starts from its declared limit); the token's "
    "other saved state is restored"
)
_SPECIAL = (
    "ignored: the pool starts without saved state, and saves fail until state_file names "
    "a regular file (or a path where one can be made)"
)


def _corrupt(path: str, reason: str, *, hint: str = _IGNORED) -> None:
    _log.warning("aurora.state.corrupt", path=path, reason=reason, hint=hint)


def _require_loop(method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"StateFile.{method}() must run inside the event loop that runs the pool "
            "(e.g. right after `async with pool:`): window levels are kept in loop time"
        ) from None


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (best effort: not every system can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# -- parsing: every check before anything is used ------------------------------------


def _parse(data: bytes) -> _State:
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise _Corrupt("it is not UTF-8 text") from None
    except ValueError as exc:
        raise _Corrupt(f"it is not valid JSON ({_json_where(exc)})") from None
    if not isinstance(document, dict):
        raise _Corrupt("it is not a JSON object")
    if document.get("format") != FORMAT:
        raise _Corrupt(f'it is not an aurora_async state file (no "format": "{FORMAT}")')
    version = document.get("version")
    if version != VERSION:
        raise _Corrupt(f"it has version {version!r}; this aurora_async reads version {VERSION}")
    saved_at = _number(document, "saved_at", "the file")
    salt_hex = document.get("salt")
    try:
        salt = bytes.fromhex(salt_hex) if isinstance(salt_hex, str) else b""
    except ValueError:
        salt = b""
    if len(salt) < _SALT_BYTES:
        raise _Corrupt(f'"salt" must be at least {_SALT_BYTES} bytes in hex')
    tokens = document.get("tokens")
    if not isinstance(tokens, dict):
        raise _Corrupt('"tokens" must be an object')
    parsed = {}
    for number, (key, raw) in enumerate(tokens.items(), 1):
        if not isinstance(key, str) or len(key) != 64:
            raise _Corrupt(f"token entry {number}: the key is not an HMAC-SHA256 in hex")
        parsed[key] = _entry(raw, f"token entry {number}")
    return _State(saved_at=saved_at, salt=salt, tokens=parsed)


def _entry(raw: object, where: str) -> _Entry:
    if not isinstance(raw, dict):
        raise _Corrupt(f"{where} is not an object")
    disabled = raw.get("disabled")
    if disabled is not None and not isinstance(disabled, str):
        raise _Corrupt(f'{where}: "disabled" must be a reason (a string)')
    cooldown = _number(raw, "cooldown", where, default=0.0)
    backoff = _number(raw, "backoff", where, default=0.0)
    windows_raw = raw.get("windows", [])
    if not isinstance(windows_raw, list):
        raise _Corrupt(f'{where}: "windows" must be a list')
    windows = []
    for index, window in enumerate(windows_raw, 1):
        here = f"{where}, window {index}"
        if not isinstance(window, dict):
            raise _Corrupt(f"{here} is not an object")
        try:
            limit = limit_of(window)
        except (TypeError, ValueError) as exc:
            raise _Corrupt(f"{here}: {exc}") from None
        made_for = window.get("for")
        if made_for is not None:
            try:
                check_scope(made_for, f'{here}: "for"')
            except (TypeError, ValueError) as exc:
                raise _Corrupt(str(exc)) from None
        windows.append((limit, _number(window, "level", here), made_for))
    return _Entry(disabled, cooldown, backoff, tuple(windows), *_learned(raw))


def _learned(raw: dict[str, Any]) -> tuple[tuple[Kept, ...], Memory | None, tuple[str, ...]]:
    """A token entry's learned limits and calibrator memory (both optional: files saved
    before they were kept have neither), and what is wrong with them. A damaged one is
    left out, to be reported naming the token; the entry's other state still loads, and
    so do its sound learned limits (then without the memory, which may belong to the
    damaged one)."""
    problems: list[str] = []
    items = raw.get("learned", [])
    if not isinstance(items, list):
        problems.append('"learned" must be a list')
        items = []
    kept = []
    for index, item in enumerate(items, 1):
        try:
            kept.append(read_kept(item))
        except (TypeError, ValueError) as exc:
            problems.append(f"learned window {index}{_which(item)}: {exc}")
    memory = None
    if raw.get("calibrator") is not None:
        try:
            memory = read_memory(raw["calibrator"])
        except (TypeError, ValueError) as exc:
            problems.append(f'"calibrator": {exc}')
    return tuple(kept), (None if problems else memory), tuple(problems)


def _which(item: object) -> str:
    """A damaged learned window's size as written, where both are numbers (the report
    echoes no text from the file)."""
    if not isinstance(item, dict):
        return ""
    rate, per = item.get("rate"), item.get("per")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (rate, per))
    return f" ({rate!r} per {per!r}s)" if numbers else ""


def _number(
    mapping: dict[str, Any], name: str, where: str, *, default: float | None = None
) -> float:
    value = mapping.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Corrupt(f'{where}: "{name}" must be a number')
    if not math.isfinite(value) or value < 0:
        raise _Corrupt(f'{where}: "{name}" must be finite and >= 0, got {value!r}')
    return float(value)


def _json_where(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    return str(exc)  # pragma: no cover - json raises JSONDecodeError for bad text
