"""``TokenPool``: the asyncio shell around the pure scheduler.

The scheduler decides; this module turns decisions into resolved futures and keeps
exactly one timer for the whole pool, armed for the next moment something is due. Time
is ``loop.time()``, so tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import difflib
import enum
import inspect
import math
import os
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .. import _log
from .._backend import Backend
from .._core.limits import Limit
from .._core.policy import Verdict
from .._core.scheduler import EPS, INF, Scheduler, Slot, TokenState, Waiter, check_timeout
from .._core.stats import PoolStats, TokenStats
from .._core.tokens import Token, as_token
from .._errors import LeaseTimeout, NoTokensAvailable, PoolClosed
from .._http.options import HttpOptions
from .._io.statefile import StateFile
from .health import HealthChecker, Probe, TokenMonitor
from .lease import Lease
from .reload import Reloader, ReloadResult

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import aiohttp

    from .._core.headers import RateLimitInfo
    from .._core.policy import Outcome
    from .._core.tokenfile import ParsedTokens
    from .._http.client import HttpClient

_DEBUG = 10

#: The limit of tokens that have none of their own, unless the pool says otherwise.
DEFAULT_LIMIT = Limit(10, per=1.0)


class _PoolState(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _limits_tuple(limits: Limit | Sequence[Limit]) -> tuple[Limit, ...]:
    if isinstance(limits, Limit):
        return (limits,)
    result = tuple(limits)
    if not result or not all(isinstance(x, Limit) for x in result):
        raise TypeError("limits must be a Limit or a non-empty sequence of Limit objects")
    return result


def _check_positive_int(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


class TokenPool:
    """A pool of access tokens, each with its own leaky-bucket limits.

    ``pool.lease()`` hands out whichever token can fire soonest; waiters are served
    first come, first served, from one queue and one timer. See the README for the
    guarantees.

    :param tokens: secrets (``str``) or :class:`Token` objects.
    :param limits: the limit windows of tokens that have none of their own.
    :param max_in_flight: at most this many leases of one token at once (``None``: no cap).
    :param trial_in_flight: until a token has completed one call well, it carries at most
        this many leases, so a dead token costs one call, not a burst (``None``: off).
    :param low_water: log ``aurora.pool.low`` when the share of active tokens falls below.
    :param backoff: (first, cap) seconds a token cools after a 429 without Retry-After;
        doubles each time in a row.
    :param start_full: start every new token's buckets full, as if just used to the
        brim, instead of empty: no opening burst. Safer when the server may remember
        recent use (a restart) or sees requests bunch up on the way (fresh connections):
        each token fires at its steady rate from the start.
    :param backend: shared state for many processes (``RedisBackend``).
    :param probe: ``async def probe(token) -> bool | Outcome``, run every ``probe_every``
        seconds (each within ``probe_timeout``) to revive disabled tokens that work again
        and disable those that fail; see :class:`HealthChecker`.
    :param expiring_within: log ``aurora.token.expiring`` for tokens (JWTs) that expire
        within this many seconds (``None``: no monitor); see :class:`TokenMonitor`.
    :param state_file: keep disabled tokens, cooldowns and long windows across restarts in
        this file (saved every ``state_every`` seconds and on close); see
        :class:`StateFile`.

    Other keyword arguments are :class:`HttpOptions` for :meth:`request`.
    """

    def __init__(
        self,
        tokens: Iterable[str | Token],
        *,
        limits: Limit | Sequence[Limit] = DEFAULT_LIMIT,
        max_in_flight: int | None = None,
        trial_in_flight: int | None = 1,
        low_water: float = 0.25,
        backoff: tuple[float, float] = (1.0, 60.0),
        backend: Backend | None = None,
        probe: Probe | None = None,
        probe_every: float = 60.0,
        probe_timeout: float = 10.0,
        expiring_within: float | None = 86400.0,
        state_file: str | os.PathLike[str] | None = None,
        state_every: float = 60.0,
        start_full: bool = False,
        **http_options: Any,
    ) -> None:
        _check_positive_int("max_in_flight", max_in_flight)
        _check_positive_int("trial_in_flight", trial_in_flight)
        if not 0 <= low_water <= 1:
            raise ValueError(f"low_water must be a share between 0 and 1, got {low_water!r}")
        first, cap = backoff
        if not 0 < first <= cap or not math.isfinite(cap):
            raise ValueError(f"backoff must be (first, cap) with 0 < first <= cap, got {backoff!r}")
        self._limits = _limits_tuple(limits)
        self._max_in_flight = max_in_flight
        self._low_water = low_water
        self._backoff = (float(first), float(cap))
        self._sched = Scheduler(trial_in_flight=trial_in_flight)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unbound_since: float | None = None  # see _now
        self._names: dict[str, Slot] | None = None  # by masked name, rebuilt on change
        self._secrets: tuple[dict[str, str], list[int]] | None = None  # see _redact
        self._state = _PoolState.UNOPENED
        self._fast = True  # open (or not yet) and no backend: Lease's fast path may run
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = INF
        self._granted = 0
        self._marks: deque[tuple[float, int]] = deque(maxlen=12)
        self._next_mark = -INF
        self._low = False
        self._next_low_check = -INF
        self._low_timer: asyncio.TimerHandle | None = None
        self._reloader: Reloader | None = None
        self._http: HttpClient | None = None
        _check_keywords(http_options)
        self._http_options = HttpOptions.from_kwargs(http_options)  # validated now
        self._backend: Backend | None = None
        self._start_full = bool(start_full)
        self._health = (
            HealthChecker(self, probe, every=probe_every, timeout=probe_timeout)
            if probe is not None
            else None
        )
        self._monitor = (
            TokenMonitor(self, expiring_within=expiring_within)
            if expiring_within is not None
            else None
        )
        self._state_file = StateFile(state_file) if state_file is not None else None
        if not state_every > 0:
            raise ValueError(f"state_every must be positive seconds, got {state_every!r}")
        self._state_every = state_every
        self._autosave: asyncio.Task[None] | None = None
        self.replace_tokens(tokens)
        if backend is not None:
            if not isinstance(backend, Backend):
                raise TypeError(f"backend must be a Backend (RedisBackend), not {backend!r}")
            self._backend = backend
            self._fast = False  # every lease goes through the backend
            backend.bind(self)

    # -- construction ------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        limits: Limit | Sequence[Limit] = DEFAULT_LIMIT,
        watch: bool = False,
        poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> TokenPool:
        """A pool of the tokens in a token file, one per line.

        ``path`` ``None`` means ``$AURORA_TOKENS_FILE``, else ``./access_tokens.txt``.
        With ``watch=True`` the file is reloaded when it changes, from when the pool is
        entered (``async with pool``) until it is closed; see :meth:`reload`.
        """
        from .._io.tokenfile import read_token_file

        parsed = read_token_file(path)
        pool = cls(parsed.values, limits=limits, **kwargs)
        pool._log_duplicates(parsed)
        pool._reloader = Reloader(pool, parsed.source)
        if watch:
            pool.watch(poll_interval=poll_interval)
        return pool

    @classmethod
    def from_env(
        cls,
        var: str = "AURORA_TOKENS",
        *,
        limits: Limit | Sequence[Limit] = DEFAULT_LIMIT,
        **kwargs: Any,
    ) -> TokenPool:
        """A pool of the tokens in an environment variable (separated by newlines,
        commas or white space), for containers that inject secrets that way."""
        from .._io.tokenfile import read_token_env

        parsed = read_token_env(var)
        pool = cls(parsed.values, limits=limits, **kwargs)
        pool._log_duplicates(parsed)
        return pool

    @staticmethod
    def _log_duplicates(parsed: ParsedTokens) -> None:
        for dup in parsed.duplicates:
            _log.warning(
                "aurora.tokens.duplicate",
                source=parsed.source,
                token=dup.name,
                lines=list(dup.lines),
                kept_line=dup.lines[0],
            )

    # -- the token set -----------------------------------------------------------

    def _now(self) -> float:
        """The loop's time; before the pool is bound to a loop, a clock that starts at 0
        (``_bind`` moves everything recorded on it to the loop's clock)."""
        loop = self._loop
        if loop is not None:
            return loop.time()
        if self._unbound_since is None:
            try:
                return asyncio.get_running_loop().time()
            except RuntimeError:
                self._unbound_since = 0.0
        return 0.0

    def replace_tokens(self, tokens: Iterable[str | Token]) -> None:
        """Make the pool's token set ``tokens``.

        New tokens join; tokens no longer present are marked ``removed`` and finish
        their in-flight calls; tokens present before keep their limiter state, cooldown
        and disabled state (and take new limits if theirs changed). Validates everything
        before changing anything, so a bad set leaves the pool as it was.
        """
        wanted: dict[str, Token] = {}
        duplicates: dict[str, list[int]] = {}
        for position, item in enumerate(tokens, 1):
            token = as_token(item)
            if token.value in wanted:
                duplicates.setdefault(token.value, [])
            else:
                wanted[token.value] = token
            if token.value in duplicates:
                duplicates[token.value].append(position)
        for value, positions in duplicates.items():
            _log.warning(
                "aurora.tokens.duplicate",
                source="tokens given",
                token=wanted[value].name,
                positions=positions,
                kept="the first",
            )
        for token in wanted.values():
            _check_positive_int(f"Token {token.name} max_in_flight", token.max_in_flight)
        sched = self._sched
        now = self._now()
        sched.prune_retired(now)
        self._names = self._secrets = None
        names = {s.name for s in sched.slots.values()}
        tries: dict[str, int] = {}
        for value, old in list(sched.slots.items()):
            if value not in wanted:
                self._set_removed(old)
        for value, token in wanted.items():
            limits = token.limits or self._limits
            cap = token.max_in_flight if token.max_in_flight is not None else self._max_in_flight
            slot = sched.slots.get(value)
            if slot is None:
                slot = sched.revive(value, now)  # left out a moment ago: keep its state
                if slot is not None and slot.name in names:
                    slot.name = _unique_name(token.name, names, tries)
                if slot is not None:
                    names.add(slot.name)
            if slot is None:
                name = _unique_name(token.name, names, tries)
                names.add(name)
                sched.add(token, name, limits, cap, now, full=self._start_full)
                continue
            slot.token = token
            sched.restore(slot)
            if tuple(w.limit for w in slot.windows) != limits:
                sched.relimit(slot, limits, now)
            sched.set_cap(slot, cap)
        self._after_token_change()

    def _set_removed(self, slot: Slot, *, quiet: bool = False) -> None:
        if slot.removed:
            return
        self._sched.remove(slot)
        if not quiet:
            _log.info("aurora.token.removed", token=slot.name, in_flight=slot.in_flight)

    def _after_token_change(self) -> None:
        """Fail waiters no token can serve any more; wake the queue for new tokens."""
        if self._backend is not None:
            self._backend.tokens_changed()
        sched = self._sched
        if not sched.waiting:
            self._next_low_check = -INF
            self._check_low()
            return
        failed = sched.unservable()
        if failed:
            if sched.usable:
                why = "no usable token left can take this cost"
            else:
                why = "every token is disabled or removed"
            _log.error("aurora.pool.exhausted", failed_waiters=len(failed), why=why)
            for waiter in failed:
                _resolve(waiter, NoTokensAvailable(f"{why}; see pool.stats() for the reasons"))
        self._next_low_check = -INF
        self._check_low()
        self._dispatch()

    def watch(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        poll_interval: float = 2.0,
        use_events: bool = True,
    ) -> None:
        """Reload the token file whenever it changes (file events where the system
        delivers them, and a poll every ``poll_interval`` seconds for mounts where it
        does not). ``path`` is needed for a pool not made by :meth:`from_file`.
        Watching runs while the pool is open (``async with pool``)."""
        if path is not None:
            # a file the pool has not read yet: the watcher's first look applies it
            self._reloader = Reloader(self, os.fspath(path), applied=False)
        if self._reloader is None:
            raise ValueError(
                "this pool was not made from a file: pass the path, pool.watch('tokens.txt')"
            )
        self._reloader.watch(poll_interval=poll_interval, use_events=use_events)
        if self._state is _PoolState.OPEN and self._loop is not None:
            self._reloader.start(self._loop)

    async def reload(self, path: str | os.PathLike[str] | None = None) -> ReloadResult:
        """Read the token file again and apply it (see :meth:`replace_tokens`).

        A file that is not valid raises :class:`TokenFileError` and changes nothing:
        the last good token set stays in service."""
        if path is not None and (self._reloader is None or Path(path) != self._reloader.path):
            self._reloader = Reloader(self, os.fspath(path))
        if self._reloader is None:
            raise ValueError("this pool was not made from a file: pass the path to reload()")
        return await self._reloader.reload()

    def reload_on_sighup(self) -> None:
        """Reload the token file when the process receives SIGHUP (opt-in: the signal
        belongs to the application). Takes effect while the pool is open."""
        if self._reloader is None:
            raise ValueError("this pool was not made from a file; see watch(path)")
        self._reloader.reload_on_sighup()

    # -- leasing -----------------------------------------------------------------

    def lease(self, cost: float = 1, timeout: float | None = None) -> Lease:
        """``async with pool.lease() as lease:`` a token that can fire ``cost`` now.

        Waits (first come, first served) until one can. ``timeout`` in seconds raises
        :class:`LeaseTimeout`; ``timeout=0`` takes a token only if one is free now.
        """
        if cost is True or cost is False:
            raise TypeError("cost must be a number, not bool")
        return Lease(self, cost, timeout)

    async def acquire(self, cost: float = 1, timeout: float | None = None) -> Lease:
        """Like :meth:`lease`, for callers who release by hand with ``lease.release()``."""
        return await self.lease(cost, timeout).__aenter__()

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            if self._unbound_since is not None:
                # Built outside any loop: what was recorded at "time 0" (start_full
                # buckets, cooldowns set by hand) happened just now on the loop's clock.
                self._sched.shift(loop.time() - self._unbound_since)
                self._unbound_since = None
        elif self._loop is not loop:
            raise RuntimeError(
                "this TokenPool is bound to another event loop; create one pool per loop"
            )
        return loop

    def _prepare(self, lease: Lease) -> tuple[float, float] | None:
        """Check a lease the careful way: bind the loop, validate cost and timeout, and
        grant it at once if a token is free and nobody waits (returns ``None``).
        Otherwise returns ``(now, deadline)`` for it to wait in the queue."""
        if self._state is _PoolState.CLOSED:
            raise PoolClosed("the pool is closed; it takes no new leases")
        loop = self._loop
        if loop is None or loop is not asyncio.get_running_loop():
            loop = self._bind()
        sched = self._sched
        cost = lease.cost
        try:
            valid = 0 < cost <= sched.max_cost
        except TypeError:
            valid = False
        if not valid:
            sched.check_cost(cost)
        timeout = lease.timeout
        check_timeout(timeout)
        now = loop.time()
        taken = sched.try_take(cost, now)
        if taken is not None:
            lease.slot = taken
            lease.granted_at = lease.enqueued_at = now
            lease._state = 1  # held
            self._count_grant(now)
            return None
        if timeout == 0:
            raise LeaseTimeout(
                f"no token can take a lease of cost {cost:g} now (timeout=0: only if free now)"
            )
        return now, (INF if timeout is None else now + timeout)

    def _take_other(self, lease: Lease, avoid: Slot) -> bool:
        """Grant ``lease`` at once on a token other than ``avoid`` if one can fire now
        and nobody waits (a retry: see ``RetryLease``). ``False`` leaves the lease to
        the usual path (which also raises for a closed pool or a bad argument)."""
        loop = self._loop
        if not self._fast or loop is None or loop is not asyncio.get_running_loop():
            return False
        check_timeout(lease.timeout)
        now = loop.time()
        slot = self._sched.take_other(lease.cost, now, avoid)
        if slot is None:
            return False
        lease.slot = slot
        lease.granted_at = lease.enqueued_at = now
        lease._state = 1  # held
        self._count_grant(now)
        return True

    def _abandon(self, lease: Lease) -> None:
        """The waiting task left (cancelled, or its future failed)."""
        sched = self._sched
        if lease.live:
            if sched.cancel(lease):
                self._dispatch()
        elif lease.slot is not None:
            # Granted, but cancelled before it could resume: give the token back.
            slot, lease.slot = lease.slot, None
            self._granted -= 1
            if sched.refund(slot, lease.cost, lease.granted_at, self._now(), lease):
                self._dispatch()

    def _dispatch(self) -> None:
        loop = self._loop
        if loop is None or self._state is _PoolState.CLOSED:
            return
        sched = self._sched
        while True:
            now = loop.time()
            granted, expired, wake = sched.dispatch(now)
            refunded = 0
            for lease in granted:
                fut = lease.fut  # type: ignore[attr-defined]
                if fut.done():  # cancelled while queued; its task has not run yet
                    sched.refund(lease.slot, lease.cost, now, now, lease)  # type: ignore[arg-type]
                    lease.slot = None  # given back: nothing for _abandon to refund
                    refunded += 1
                else:
                    fut.set_result(None)
            if granted:
                self._granted += len(granted) - refunded
                if now >= self._next_mark:
                    self._mark(now)
                if _log.enabled(_DEBUG):
                    self._log_waited(now, granted)
            for lease in expired:
                _resolve(lease, self._timeout_error(lease, now))
            if not refunded:
                break
        self._arm(wake)

    @staticmethod
    def _log_waited(now: float, granted: list[Waiter]) -> None:
        for lease in granted:
            if lease.slot is not None:
                _log.debug(
                    "aurora.lease.waited",
                    token=lease.slot.name,
                    cost=lease.cost,
                    waited=round(now - lease.enqueued_at, 6),
                )

    def _count_grant(self, now: float) -> None:
        self._granted += 1
        if now >= self._next_mark:
            self._mark(now)

    def _mark(self, now: float) -> None:
        self._marks.append((now, self._granted))
        self._next_mark = now + 1.0

    def _timeout_error(self, waiter: Waiter, now: float) -> LeaseTimeout:
        sched = self._sched
        return LeaseTimeout(
            f"no token could take a lease of cost {waiter.cost:g} within "
            f"{now - waiter.enqueued_at:.3f}s ({sched.usable} usable tokens, "
            f"{sched.waiting} leases still waiting). Raise the timeout, add tokens, "
            "or lower the load; pool.stats() shows each token's state."
        )

    def _arm(self, when: float) -> None:
        timer = self._timer
        if when == INF:
            if timer is not None:
                timer.cancel()
                self._timer = None
                self._timer_at = INF
            return
        if timer is not None:
            if self._timer_at <= when + EPS:
                return  # an earlier wake is set; it will re-arm
            timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)  # type: ignore[union-attr]

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = INF
        self._dispatch()

    # -- outcomes ----------------------------------------------------------------

    def _release(self, slot: Slot, outcome: str) -> None:
        sched = self._sched
        if outcome == "ok":
            slot.ok += 1
            slot.backoff = 0.0
            more = sched.mark_proven(slot)
        elif outcome == "failed":
            slot.errors += 1
            more = False
        elif outcome == "client_error":  # the server took the token; the request was bad
            slot.errors += 1
            more = sched.mark_proven(slot)
        elif outcome == "revoked":  # counted as an error; the token is disabled already
            slot.errors += 1
            more = False
        else:  # rate_limited was counted when reported
            more = False
        if self._backend is not None:
            slot.in_flight -= 1
            sched.forget_if_idle(slot)
            self._backend.released(slot, outcome)
        elif (sched.release(slot) or more) and sched.waiting:
            self._dispatch()

    def _report_rate_limited(self, slot: Slot, retry_after: float | None) -> None:
        slot.rate_limited += 1
        first, cap = self._backoff
        if retry_after is None:
            seconds = slot.backoff = min(cap, slot.backoff * 2 if slot.backoff else first)
            self._cool(slot, seconds, "backoff", spent=True)
        else:
            self._cool(slot, float(retry_after), "retry_after", spent=True)

    def _report_revoked(self, slot: Slot, reason: str) -> None:
        self._disable(slot, reason)

    def cool(self, name: str, seconds: float) -> None:
        """Keep the token ``name`` (its masked name) from firing for ``seconds``."""
        if not seconds >= 0 or not math.isfinite(seconds):
            raise ValueError(f"seconds must be a non-negative finite number, got {seconds!r}")
        self._cool(self._slot(name), seconds, "by_hand")

    def _cool(self, slot: Slot, seconds: float, why: str, *, spent: bool = False) -> None:
        now = self._now()
        # A cooldown the server asked for (``spent``) means the token's quota is used up
        # there: its buckets are full when the cooldown ends. Others leave them be.
        self._sched.cool(slot, now + seconds, now if spent else None)
        if self._backend is not None:
            self._backend.cooled(slot, seconds, spent)
        _log.info("aurora.token.cooling", token=slot.name, seconds=round(seconds, 6), why=why)
        self._check_low(now)
        if self._sched.waiting:
            self._dispatch()

    def disable(self, name: str, reason: str = "disabled by hand") -> None:
        """Take the token ``name`` (its masked name) out of service for every caller.
        Health probes leave a token disabled by hand alone; :meth:`enable` brings it
        back."""
        slot = self._slot(name)
        slot.by_hand = True
        self._disable(slot, reason)

    def _disable(self, slot: Slot, reason: str) -> None:
        reason = self._redact(reason)
        if self._sched.disable(slot, reason):
            _log.warning("aurora.token.disabled", token=slot.name, reason=reason)
            if self._backend is not None:
                self._backend.disabled(slot, reason)
            self._after_token_change()

    def enable(self, name: str) -> None:
        """Put a disabled token back in service."""
        slot = self._slot(name)
        slot.by_hand = False
        if self._sched.enable(slot):
            _log.info("aurora.token.enabled", token=slot.name)
            if self._backend is not None:
                self._backend.enabled(slot)
            self._after_token_change()

    def _slot(self, name: str) -> Slot:
        names = self._names
        if names is None:
            names = self._names = {s.name: s for s in self._sched.slots.values()}
        slot = names.get(name)
        if slot is None or self._sched.slots.get(slot.token.value) is not slot:
            raise KeyError(
                f"no token named {self._redact(name)!r} in this pool "
                "(tokens are named by their masked names: see pool.stats())"
            )
        return slot

    def _redact(self, text: str, *also: tuple[str, str]) -> str:
        """Replace any token secret inside ``text`` (also percent-encoded, as in an
        error quoting a request URL) by its masked name: the pool's tokens, those a
        reload just dropped, and ``also`` (secret, name) pairs. Longest secrets first,
        so one that is the prefix of another cannot leave the other's tail behind.
        Costs a dictionary lookup per position and distinct secret length, not a scan of
        every token."""
        cache = self._secrets
        if cache is None:
            sched = self._sched
            known = {v: s.name for v, s in (*sched._retired.items(), *sched.slots.items())}
            cache = self._secrets = (known, sorted({len(v) for v in known}, reverse=True))
        tables = [cache]
        if also:
            extra = dict(also)
            tables.insert(0, (extra, sorted({len(v) for v in extra}, reverse=True)))
        for known, lengths in tables:
            text = _mask(text, known, lengths)
            if "%" in text:
                decoded = _mask(unquote(text), known, lengths)
                if decoded != unquote(text):
                    text = decoded
        return text

    def _check_low(self, now: float | None = None) -> None:
        """Log ``aurora.pool.low`` / ``aurora.pool.recovered`` when the share of active
        tokens crosses ``low_water``. It scans every token, so it runs at most every
        half second; a check that is skipped, and the end of the earliest cooldown while
        the pool is low, are each caught up by one timer."""
        now = self._now() if now is None else now
        loop = self._loop
        if now < self._next_low_check:
            if loop is not None and self._low_timer is None:
                self._low_timer = loop.call_at(self._next_low_check, self._low_recheck)
            return
        self._next_low_check = now + 0.5
        slots = self._sched.slots.values()
        total = 0
        active = 0
        cooling_ends = INF
        for s in slots:
            if s.removed:
                continue
            total += 1
            if s.disabled:
                continue
            if s.cool_until <= now:
                active += 1
            elif s.cool_until < cooling_ends:
                cooling_ends = s.cool_until
        if not total:
            return
        low = active / total < self._low_water
        if low and not self._low:
            _log.warning("aurora.pool.low", active=active, tokens=total, low_water=self._low_water)
        elif self._low and not low:
            _log.info("aurora.pool.recovered", active=active, tokens=total)
        self._low = low
        if low and cooling_ends < INF and loop is not None and self._low_timer is None:
            when = max(cooling_ends, self._next_low_check)
            self._low_timer = loop.call_at(when, self._low_recheck)

    def _low_recheck(self) -> None:
        self._low_timer = None
        if self._state is not _PoolState.CLOSED:
            self._check_low()

    # -- HTTP ----------------------------------------------------------------------

    def _client(self) -> HttpClient:
        if self._state is _PoolState.CLOSED:
            raise PoolClosed("the pool is closed; it sends no more requests")
        client = self._http
        if client is None:
            from .._http.client import HttpClient

            client = self._http = HttpClient(self, self._http_options)
        return client

    def request(
        self,
        method: str,
        url: str,
        *,
        cost: float = 1,
        lease_timeout: float | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.request(method, url, ...)``: an HTTP request with a leased token;
        returns aiohttp's response.

        The token goes out as ``Authorization: Bearer <token>`` (see ``auth``). A 429,
        401, 5xx or connection error is retried on another token (see ``max_attempts``,
        ``deadline`` and ``retry_unsafe``); the token is cooled, disabled or counted as
        the outcome says. The body is read before this returns, so ``await resp.json()``
        works and the connection is free; use :meth:`stream` for large bodies. Other
        keyword arguments go to ``aiohttp.ClientSession.request``. (Arguments are checked
        when it is called, a closed pool too: ``PoolClosed`` is raised then.)
        """
        client = self._http
        if client is None or self._state is _PoolState.CLOSED:
            client = self._client()
        return client.request(method, url, cost=cost, lease_timeout=lease_timeout, **kwargs)

    def stream(
        self,
        method: str,
        url: str,
        *,
        cost: float = 1,
        lease_timeout: float | None = None,
        **kwargs: Any,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """``async with pool.stream("GET", url) as resp:`` read the body yourself; the
        lease is held until the block ends."""
        return self._client().stream(method, url, cost=cost, lease_timeout=lease_timeout, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.get(url, ...)``: :meth:`request` with ``GET``."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.post(url, ...)``: :meth:`request` with ``POST``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.put(url, ...)``: :meth:`request` with ``PUT``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.patch(url, ...)``: :meth:`request` with ``PATCH``."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.delete(url, ...)``: :meth:`request` with ``DELETE``."""
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.head(url, ...)``: :meth:`request` with ``HEAD``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """``await pool.options(url, ...)``: :meth:`request` with ``OPTIONS``."""
        return self.request("OPTIONS", url, **kwargs)

    def _account_response(
        self, lease: Lease, outcome: Outcome, info: RateLimitInfo, slack: float
    ) -> None:
        """What a response means for its token (the HTTP layer's report)."""
        slot = lease._held()
        if info.limit is not None or info.remaining is not None or info.reset_after is not None:
            slot.info = info
        verdict = outcome.verdict
        if verdict is Verdict.OK:
            lease.succeeded()
            if outcome.cooldown:
                # The server says nothing is left until a reset. The token's own limiter
                # may already hold it that long; cool it only if the reset is later.
                now = self._now()
                own = slot.ready(slot.key_cost)
                if now + outcome.cooldown > own + slack:
                    self._cool(slot, outcome.cooldown, "exhausted", spent=True)
        elif verdict is Verdict.RATE_LIMITED:
            lease.rate_limited(outcome.cooldown)
        elif verdict is Verdict.REVOKED:
            lease.revoked(outcome.reason or "revoked by the server")
        elif verdict is Verdict.CLIENT_ERROR:
            lease._outcome = "client_error"
        else:
            lease.failed()

    # -- accounting --------------------------------------------------------------

    def stats(self) -> PoolStats:
        """A snapshot of every token and of the pool."""
        now = self._now()
        wall = time.time()
        flagged = self._monitor.limit_too_high if self._monitor is not None else frozenset()
        tokens = tuple(
            self._token_stats(slot, now, wall, slot.token.value in flagged)
            for slot in self._sched.slots.values()
        )
        counts = dict.fromkeys(TokenState, 0)
        for t in tokens:
            counts[t.state] += 1
        rate = 0.0
        if self._marks:
            t0, g0 = self._marks[0]
            if now - t0 > 0:
                rate = (self._granted - g0) / (now - t0)
        return PoolStats(
            tokens=tokens,
            waiting=self._sched.waiting + (self._backend.waiting if self._backend else 0),
            active=counts[TokenState.ACTIVE],
            cooling=counts[TokenState.COOLING],
            disabled=counts[TokenState.DISABLED],
            removed=counts[TokenState.REMOVED],
            in_flight=sum(t.in_flight for t in tokens),
            granted=self._granted,
            granted_per_second=rate,
        )

    @staticmethod
    def _token_stats(slot: Slot, now: float, wall: float, too_high: bool) -> TokenStats:
        info = slot.info
        return TokenStats(
            name=slot.name,
            state=slot.state(now),
            leases=slot.leases,
            ok=slot.ok,
            rate_limited=slot.rate_limited,
            errors=slot.errors,
            in_flight=slot.in_flight,
            cooldown_left=round(max(0.0, slot.cool_until - now), 9),
            reason=slot.reason,
            limits=tuple(str(w.limit) for w in slot.windows),
            units=slot.units,
            headroom=round(max(0.0, slot.headroom(now)), 9),
            proven=slot.proven,
            last_limit=getattr(info, "limit", None),
            last_remaining=getattr(info, "remaining", None),
            last_reset=getattr(info, "reset_after", None),
            expires_in=None if slot.expires_at is None else slot.expires_at - wall,
            limit_too_high=too_high,
        )

    # -- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._state is _PoolState.CLOSED

    async def __aenter__(self) -> TokenPool:
        if self._state is _PoolState.CLOSED:
            raise PoolClosed("this pool was closed; create a new one")
        if self._state is _PoolState.OPEN:
            raise RuntimeError("this pool is already open: enter it once (async with pool)")
        loop = self._bind()
        self._state = _PoolState.OPEN
        if self._reloader is not None:
            self._reloader.start(loop)
        if self._state_file is not None:
            self._state_file.load_into(self)
            self._autosave = loop.create_task(
                self._state_file.autosave(self, self._state_every), name="aurora-state-save"
            )
        if self._health is not None:
            self._health.start()
        if self._monitor is not None:
            self._monitor.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool: waiters get :class:`PoolClosed`, no new leases are taken,
        leases in flight finish normally, and an owned HTTP session is closed."""
        if self._state is _PoolState.CLOSED:
            return
        self._state = _PoolState.CLOSED
        self._fast = False
        self._arm(INF)
        if self._low_timer is not None:
            self._low_timer.cancel()
            self._low_timer = None
        sched = self._sched
        for waiter in list(sched.waiters()):
            sched.cancel(waiter)
            _resolve(waiter, PoolClosed("the pool was closed while this lease was waiting"))
        if self._reloader is not None:
            await self._reloader.stop()
        if self._health is not None:
            await self._health.stop()
        if self._monitor is not None:
            await self._monitor.stop()
        if self._autosave is not None:
            self._autosave.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._autosave
        if self._state_file is not None:
            try:
                await self._state_file.save(self)
            except OSError as exc:
                _log.error(
                    "aurora.state.save_failed", path=str(self._state_file.path), error=str(exc)
                )
        if self._backend is not None:
            await self._backend.aclose()
        if self._http is not None:
            await self._http.aclose()

    def __repr__(self) -> str:
        s = self._sched
        return (
            f"<TokenPool {self._state.value} tokens={len(s.slots)} usable={s.usable} "
            f"waiting={s.waiting}>"
        )


def _check_keywords(given: dict[str, Any]) -> None:
    """An unknown keyword: say so, with the nearest name among all TokenPool takes."""
    http = {f.name for f in dataclasses.fields(HttpOptions)}
    unknown = sorted(set(given) - http)
    if not unknown:
        return
    own = [p for p in inspect.signature(TokenPool.__init__).parameters if p != "self"]
    known = sorted({*own, *http} - {"http_options", "tokens"})
    hints = []
    for name in unknown:
        near = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    raise TypeError(
        f"TokenPool got unexpected keyword argument(s) {', '.join(hints)}; "
        f"it takes: {', '.join(known)}"
    )


def _mask(text: str, known: dict[str, str], lengths: list[int]) -> str:
    for length in lengths:
        if length > len(text):
            continue
        out: list[str] = []
        start = i = 0
        while i <= len(text) - length:
            name = known.get(text[i : i + length])
            if name is None:
                i += 1
                continue
            out += (text[start:i], name)
            i = start = i + length
        if out:
            out.append(text[start:])
            text = "".join(out)
    return text


def _resolve(waiter: Waiter, error: BaseException) -> None:
    fut: asyncio.Future[None] = waiter.fut  # type: ignore[attr-defined]
    if not fut.done():
        fut.set_exception(error)


def _unique_name(name: str, taken: set[str], tries: dict[str, int]) -> str:
    """``name``, or ``name#2``, ``name#3``... when masked names collide."""
    if name not in taken:
        return name
    n = tries.get(name, 1)
    while True:
        n += 1
        candidate = f"{name}#{n}"
        if candidate not in taken:
            tries[name] = n
            return candidate
