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
import inspect
import math
import os
import warnings
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _log
from .._core.costs import Costs, as_costs, check_costs, scoped
from .._core.limits import Limit, check_scope
from .._core.stats import PoolStats
from .._core.tokens import Token, as_limits
from .._errors import PoolClosed, check_positive_int
from .._http.options import HttpOptions
from .._io.statefile import StateFile
from .._io.tokenfile import read_token_env, read_token_file, warn_duplicates
from .._io.watch import check_poll_interval
from .core import Backend, PoolCore, PoolState
from .health import HealthChecker, Probe, TokenMonitor
from .lease import Lease, new_lease, new_vector_lease
from .membership import apply_tokens
from .reload import Reloader, ReloadResult
from .snapshot import snapshot

#: A lease's cost: requests, or units per resource (``{"requests": 1, "tokens": 900}``).
Cost = float | Mapping[str, float]
_PLAIN_COSTS = (int, float)  # passed to the HTTP client as they are

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    import aiohttp

    from .._http.client import HttpClient

#: The limit of tokens that have none of their own, unless the pool says otherwise.
DEFAULT_LIMIT = Limit(10, per=1.0)


#: Mappings of resource to units already turned into the scheduler's costs (by their
#: items, in order: a caller's loop asks the same few costs again and again). Costs are
#: never changed once made, so one serves every lease that asks for it.
_KNOWN_COSTS: dict[tuple[tuple[object, object], ...], float] = {}
_COSTS_KEPT = 256
_NUMBERS = {int, float}


class TokenPool:
    """A pool of access tokens, each with its own leaky-bucket limits.

    ``pool.lease()`` hands out whichever token can fire soonest; waiters are served
    first come, first served, from one queue and one timer. See the README for the
    guarantees.

    :param tokens: secrets (``str``) or :class:`Token` objects: a list (not one string),
        and not an empty one (a pool of no tokens could only raise
        :class:`NoTokensAvailable`; for tokens that come from a file, use
        :meth:`from_file`, with ``watch=True`` to follow it). A pool may lose all its
        tokens later, by :meth:`replace_tokens` or a reload; leases then raise
        :class:`NoTokensAvailable` until tokens come back.
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
    :param calibrate: treat limits as beliefs (the default): each token's effective limit
        moves with evidence (429s its limiter allowed, rate-limit headers, clean service),
        below the declared one (a ceiling; the library's default is only a first guess),
        and a burst left at its default starts at one unit and grows. ``False``: the
        declared limits are facts, enforced exactly. With a ``backend`` the effective
        limits are shared by every process of the namespace.
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
        calibrate: bool = True,
        **http_options: Any,
    ) -> None:
        check_positive_int("max_in_flight", max_in_flight)
        check_positive_int("trial_in_flight", trial_in_flight)
        if not 0 <= low_water <= 1:
            raise ValueError(f"low_water must be a share between 0 and 1, got {low_water!r}")
        first, cap = backoff
        if not 0 < first <= cap or not math.isfinite(cap):
            raise ValueError(f"backoff must be (first, cap) with 0 < first <= cap, got {backoff!r}")
        if not state_every > 0:
            raise ValueError(f"state_every must be positive seconds, got {state_every!r}")
        _check_keywords(http_options)
        self._http_options = HttpOptions.from_kwargs(http_options)  # validated now
        if backend is not None and not isinstance(backend, Backend):
            raise TypeError(f"backend must be a Backend (RedisBackend), not {backend!r}")
        default = as_limits(limits, "TokenPool")
        if default is None:
            raise TypeError("limits must be a Limit or a non-empty sequence of Limit objects")
        core = self._core = PoolCore(
            self,
            limits=default,
            max_in_flight=max_in_flight,
            trial_in_flight=trial_in_flight,
            low_water=low_water,
            backoff=(float(first), float(cap)),
            start_full=bool(start_full),
            limits_declared=limits is not DEFAULT_LIMIT,
            calibrate=bool(calibrate),
        )
        self._reloader: Reloader | None = None
        self._http: HttpClient | None = None
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
        self._state_every = state_every
        self._autosave: asyncio.Task[None] | None = None
        self.replace_tokens(tokens)
        if not core.sched.slots:
            raise ValueError(
                "TokenPool got no tokens: pass a list of at least one token, "
                "TokenPool(['tok-...']), or read them from a file, "
                "TokenPool.from_file(path, watch=True)"
            )
        if backend is not None:
            core.backend = backend
            core.fast = False  # every lease goes through the backend
            backend.bind(core)

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

        poll_interval = check_poll_interval(poll_interval)
        parsed = read_token_file(path)
        pool = cls(parsed.values, limits=limits, **kwargs)
        warn_duplicates(parsed)
        pool._reloader = Reloader(pool._core, parsed.source, digest=parsed.digest)
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

        parsed = read_token_env(var)
        pool = cls(parsed.values, limits=limits, **kwargs)
        warn_duplicates(parsed)
        return pool

    # -- the token set -----------------------------------------------------------

    def replace_tokens(self, tokens: Iterable[str | Token]) -> None:
        """Make the pool's token set ``tokens``.

        New tokens join; tokens no longer present are marked ``removed`` and finish
        their in-flight calls; tokens present before keep their limiter state, cooldown
        and disabled state (and take new limits if theirs changed). Validates everything
        before changing anything, so a bad set leaves the pool as it was.
        """
        apply_tokens(self._core, tokens)

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
        poll_interval = check_poll_interval(poll_interval)
        if path is not None:
            # a file the pool has not read yet: the watcher's first look applies it
            self._reloader = Reloader(self._core, os.fspath(path), applied=False)
        if self._reloader is None:
            raise ValueError(
                "this pool was not made from a file: pass the path, pool.watch('tokens.txt')"
            )
        self._reloader.watch(poll_interval=poll_interval, use_events=use_events)
        core = self._core
        if core.state is PoolState.OPEN and core.loop is not None:
            self._reloader.start(core.loop)

    async def reload(self, path: str | os.PathLike[str] | None = None) -> ReloadResult:
        """Read the token file again and apply it (see :meth:`replace_tokens`).

        A file that is not valid raises :class:`TokenFileError` and changes nothing:
        the last good token set stays in service."""
        if path is not None and (self._reloader is None or Path(path) != self._reloader.path):
            self._reloader = Reloader(self._core, os.fspath(path))
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

    def lease(
        self, cost: Cost = 1, timeout: float | None = None, *, scope: str | None = None
    ) -> Lease:
        """``async with pool.lease() as lease:`` a token that can fire ``cost`` now.

        Waits (first come, first served) until one can. ``timeout`` in seconds raises
        :class:`LeaseTimeout`; ``timeout=0`` takes a token only if one is free now.
        ``cost`` is a number of requests, or a mapping of resource to units for tokens
        whose limits count several (``{"requests": 1, "tokens": 1200}``; requests default
        to 1): the lease needs room for its part in every window of the token, and
        :meth:`Lease.settle` corrects the reservation once the true cost is known.
        ``scope`` (an endpoint group or a model: ``"search"``, ``"gpt-4o"``) counts the
        lease in the token's windows of that scope (``Limit(..., scope=...)``) besides
        its windows of no scope, and a 429 on it cools the token for that scope only.
        """
        if scope is None:
            kind = type(cost)
            if kind is int or kind is float:  # the usual
                return new_lease(self._core, cost, timeout)  # type: ignore[arg-type]
            if kind is Costs:  # made once, leased often
                if cost.checked is self._core.sched.tiers_mark:  # type: ignore[union-attr]
                    return new_vector_lease(self._core, cost, timeout)  # type: ignore[arg-type]
            elif kind is dict:  # a mapping seen before, of plain numbers (see _cost)
                try:
                    known = _KNOWN_COSTS.get(tuple(cost.items()))  # type: ignore[union-attr]
                except TypeError:  # a value that is no number (unhashable): _cost says so
                    known = None
                if (
                    type(known) is Costs
                    and known.checked is self._core.sched.tiers_mark
                    and _NUMBERS.issuperset(map(type, cost.values()))  # type: ignore[union-attr]
                ):
                    return new_vector_lease(self._core, known, timeout)
        cost = self._cost(cost, scope)
        if type(cost) is Costs:
            return new_vector_lease(self._core, cost, timeout)
        return new_lease(self._core, cost, timeout)

    def _cost(self, cost: Cost, scope: str | None) -> float:
        """A lease's cost as the scheduler takes it: a number, or a ``Costs`` of several
        resources or leased in a scope (checked here, before any token is leased)."""
        if cost is True or cost is False:
            raise TypeError("cost must be a number, not bool")
        core = self._core
        if type(cost) is dict:  # the usual mapping: its conversion kept, by its items
            # (numbers of exactly int or float only: True or Decimal(1) equal 1 as keys)
            key = tuple(cost.items()) if _NUMBERS.issuperset(map(type, cost.values())) else ()
            known = _KNOWN_COSTS.get(key) if key else None
            if known is None:
                known = as_costs(cost)
                if key:
                    if len(_KNOWN_COSTS) >= _COSTS_KEPT:
                        _KNOWN_COSTS.clear()
                    _KNOWN_COSTS[key] = known
            cost = known
        elif isinstance(cost, Costs):
            if cost.checked is None:  # made by hand: its numbers too, and its own parts
                check_costs(cost)  # (the caller's dict may change; what was checked may not)
                cost.parts = dict(cost.parts)
        elif isinstance(cost, Mapping):
            cost = as_costs(cost)
        if isinstance(cost, Costs):
            core.sched.check_parts(cost)
        if scope is not None:
            check_scope(scope)
            cost = scoped(cost, scope)
        return cost

    async def acquire(
        self, cost: Cost = 1, timeout: float | None = None, *, scope: str | None = None
    ) -> Lease:
        """Like :meth:`lease`, for callers who release by hand with ``lease.release()``."""
        return await self.lease(cost, timeout, scope=scope).__aenter__()

    # -- token state by hand -------------------------------------------------------

    def cool(self, name: str, seconds: float) -> None:
        """Keep the token ``name`` (its masked name) from firing for ``seconds``."""
        if not seconds >= 0 or not math.isfinite(seconds):
            raise ValueError(f"seconds must be a non-negative finite number, got {seconds!r}")
        core = self._core
        core.cool(core.slot(name), seconds, "by_hand")

    def disable(self, name: str, reason: str = "disabled by hand") -> None:
        """Take the token ``name`` (its masked name) out of service for every caller.
        Health probes leave a token disabled by hand alone; :meth:`enable` brings it
        back."""
        core = self._core
        core.disable(core.slot(name), reason, by_hand=True)

    def enable(self, name: str) -> None:
        """Put a disabled token back in service."""
        core = self._core
        core.enable(core.slot(name), by_hand=False)

    # -- HTTP ----------------------------------------------------------------------

    def _client(self) -> HttpClient:
        if self._core.closed:
            raise PoolClosed("the pool is closed; it sends no more requests")
        client = self._http
        if client is None:
            from .._http.client import HttpClient

            client = self._http = HttpClient(self._core, self._http_options)
        return client

    def request(
        self,
        method: str,
        url: str,
        *,
        cost: Cost = 1,
        lease_timeout: float | None = None,
        scope: str | None = None,
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
        when it is called, a closed pool too: ``PoolClosed`` is raised then.) ``cost``
        and ``scope`` are :meth:`lease`'s: a 429 on a scoped request cools its scope.
        """
        client = self._http
        if client is None or self._core.closed:
            client = self._client()
        units = cost if scope is None and type(cost) in _PLAIN_COSTS else self._cost(cost, scope)
        return client.request(
            method,
            url,
            cost=units,  # type: ignore[arg-type]  # a plain number, or a Costs
            lease_timeout=lease_timeout,
            **kwargs,
        )

    def stream(
        self,
        method: str,
        url: str,
        *,
        cost: Cost = 1,
        lease_timeout: float | None = None,
        scope: str | None = None,
        **kwargs: Any,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """``async with pool.stream("GET", url) as resp:`` read the body yourself; the
        lease is held until the block ends."""
        units = self._cost(cost, scope)
        return self._client().stream(method, url, cost=units, lease_timeout=lease_timeout, **kwargs)

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

    # -- accounting --------------------------------------------------------------

    def stats(self) -> PoolStats:
        """A snapshot of every token and of the pool."""
        monitor = self._monitor
        return snapshot(self._core, monitor.limit_too_high if monitor is not None else ())

    # -- lifecycle ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._core.closed

    async def __aenter__(self) -> TokenPool:
        core = self._core
        if core.state is PoolState.CLOSED:
            raise PoolClosed("this pool was closed; create a new one")
        if core.state is PoolState.OPEN:
            raise RuntimeError("this pool is already open: enter it once (async with pool)")
        loop = core.open()
        if self._reloader is not None:
            self._reloader.start(loop)
        if self._state_file is not None:
            await self._state_file.load(self)
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
        core = self._core
        if core.closed:
            return
        core.close()
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
        if core.backend is not None:
            await core.backend.aclose()
        if self._http is not None:
            await self._http.aclose()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # aiohttp says "Unclosed client session" of a session it cannot name; say which
        # object was left open and how to close it. (getattr: __init__ may have failed.)
        core = getattr(self, "_core", None)
        options = getattr(self, "_http_options", None)
        if (
            core is None
            or core.closed
            or getattr(self, "_http", None) is None
            or options is None
            or options.session is not None  # the caller's session: the caller closes it
        ):
            return
        _warn(
            f"unclosed {self!r} with an open HTTP session: close the pool when done, "
            "'async with pool:' or 'await pool.aclose()', or its connections stay open",
            ResourceWarning,
            source=self,
        )

    def __repr__(self) -> str:
        core = self._core
        s = core.sched
        return (
            f"<TokenPool {core.state.value} tokens={len(s.slots)} usable={s.usable} "
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
