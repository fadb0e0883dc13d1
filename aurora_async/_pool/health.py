"""Token health: probes that revive or disable tokens, and a monitor that warns early.

:class:`HealthChecker` runs a user-supplied probe (``async def probe(token) -> bool |
Outcome``, say a cheap "who am I" call) on a schedule, with its own rate budget and
concurrency cap, never more than one probe per token at a time, each under a timeout:

* a disabled token whose probe succeeds (``True`` or an ``OK`` outcome) is enabled again
  (``aurora.health.revived``), whoever disabled it: to keep a token out for good, take it
  out of the token file;
* a token in service whose probe fails in a way the policy calls fatal (by default a
  :attr:`Verdict.REVOKED` outcome, which is what ``False`` means) is disabled
  (``aurora.health.failed``);
* a probe that does not answer within ``timeout`` is abandoned and proves nothing
  (``aurora.health.timeout``); neither does a probe that raises.

A probe is a real call with the token, so it is charged to the token's limit windows like
a lease of ``cost`` units, and a token is probed only when its windows have room: probing
never pushes a token over its limit. (With a shared backend the windows that count live
in the backend, which a probe does not charge yet.) Tokens in service that completed a
call well since the last round, that have leases out, or that are cooling are not probed
(traffic is evidence enough). Removed tokens are never probed.

:class:`TokenMonitor` sweeps the pool's counters on a schedule and logs
``aurora.token.expiring`` for tokens whose JWT ``exp`` is near (read without verifying,
see :mod:`aurora_async._core.expiry`) and ``aurora.token.limit_too_high`` for tokens the
server rate-limited although the local limiter let every call through.

Both are started and stopped by their owner: ``start()`` / ``await stop()``, or
``async with``; ``run_once()`` does one round by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
from aiolimiter import AsyncLimiter

from .. import _log
from .._core.expiry import jwt_expiry
from .._core.limits import Limit
from .._core.policy import Outcome, Verdict
from .._core.scheduler import EPS
from .core import Evidence, PoolCore, core_of

if TYPE_CHECKING:
    from .._core.scheduler import Slot

__all__ = [
    "HealthChecker",
    "MonitorReport",
    "Probe",
    "ProbeAction",
    "ProbeReport",
    "ProbeResult",
    "TokenMonitor",
    "is_fatal",
]

#: What a probe returns: ``True`` (works), ``False`` (dead: treated as revoked), or an
#: :class:`Outcome` for anything finer (rate-limited, a server error, a reason).
ProbeResult = bool | Outcome
#: ``async def probe(token: str) -> bool | Outcome``; ``token`` is the secret.
Probe = Callable[[str], Awaitable[ProbeResult]]

#: Probes per second across the pool, unless told otherwise: one a second, bursts of one.
DEFAULT_BUDGET = Limit(1, per=1.0)


def is_fatal(outcome: Outcome) -> bool:
    """The default policy: a probe outcome is fatal when it says the token is revoked."""
    return outcome.verdict is Verdict.REVOKED


class ProbeAction(enum.StrEnum):
    """What a probe changed."""

    NONE = "none"  #: nothing (it worked, or failed in a way that is not fatal)
    REVIVED = "revived"  #: a disabled token was enabled
    DISABLED = "disabled"  #: a token in service was disabled
    COOLED = "cooled"  #: the probe was rate-limited: the token cools
    GONE = "gone"  #: the token was removed while its probe ran; nothing applied


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """One probe, as it went. No secret in here."""

    name: str  #: the token's masked name
    verdict: Verdict | None  #: ``None`` when the probe timed out or raised
    action: ProbeAction
    detail: str | None  #: the outcome's reason, the probe's error, or the timeout
    seconds: float  #: how long the probe took (loop time)
    timed_out: bool = False  #: abandoned after the checker's ``timeout``


class _Periodic:
    """A round of work every ``every`` seconds in a task of its own, while the pool is
    open. Rounds start ``every`` seconds apart (at once after a round that overran)."""

    every: float
    _core: PoolCore
    _task: asyncio.Task[None] | None = None
    _name = "aurora-periodic"

    async def run_once(self) -> object:
        raise NotImplementedError

    async def run(self) -> None:
        """Rounds until cancelled or the pool is closed."""
        while not self._core.closed:
            started = anyio.current_time()
            await self.run_once()
            await anyio.sleep_until(started + self.every)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run rounds in a task of the running loop until :meth:`stop`."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self._name)

    async def stop(self) -> None:
        """Cancel the rounds (a probe under way is cancelled too) and wait for them."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


class HealthChecker(_Periodic):
    """Probe the tokens of ``pool`` every ``every`` seconds (see the module's doc).

    :param probe: ``async def probe(token: str) -> bool | Outcome``. It gets the secret;
        it must not log it. ``False`` means the token is dead (an ``Outcome.revoked``).
    :param every: seconds between the starts of two rounds.
    :param timeout: seconds a probe may take before it is abandoned.
    :param budget: the probes' own rate limit across the pool (default one a second).
    :param concurrency: at most this many probes at once.
    :param cost: units each probe is charged in its token's limit windows.
    :param probe_active: also probe tokens in service (idle ones), to find dead tokens
        before a caller does; ``False`` probes only disabled tokens.
    :param fatal: which outcomes disable a token in service (default :func:`is_fatal`).
    """

    _name = "aurora-health"

    def __init__(
        self,
        pool: object,
        probe: Probe,
        *,
        every: float = 60.0,
        timeout: float = 10.0,
        budget: Limit = DEFAULT_BUDGET,
        concurrency: int = 4,
        cost: float = 1.0,
        probe_active: bool = True,
        fatal: Callable[[Outcome], bool] = is_fatal,
    ) -> None:
        if not callable(probe):
            raise TypeError(f"probe must be an async function of the token, not {probe!r}")
        if not isinstance(budget, Limit):
            raise TypeError(f"budget must be a Limit, not {type(budget).__name__}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
        self._core = core_of(pool)
        self._probe = probe
        self.every = _check_seconds("every", every)
        self.timeout = _check_seconds("timeout", timeout)
        self.cost = _check_seconds("cost", cost)
        self.probe_active = probe_active
        self._fatal = fatal
        # aiolimiter's bucket of B units draining r a second is AsyncLimiter(B, B / r).
        self._budget = AsyncLimiter(budget.burst, budget.burst / budget.per_second)
        self._capacity = anyio.CapacityLimiter(concurrency)
        self._probing: set[str] = set()  # secrets with a probe under way
        self._ok_seen: dict[str, int] = {}  # secret -> slot.ok at the last round

    # -- one token ---------------------------------------------------------------

    async def check(self, name: str) -> ProbeReport | None:
        """Probe the token ``name`` (its masked name) now, within the budget.

        ``None`` if it is being probed already, removed, or its windows have no room
        for a probe now. Raises :class:`KeyError` for an unknown name."""
        slot = self._core.slot(name)
        value = slot.token.value
        if not self._wanted(value, slot, by_hand=True):
            return None
        ticket = object()
        await self._capacity.acquire_on_behalf_of(ticket)
        try:
            await self._budget.acquire()
            if not self._admit(value, slot, by_hand=True):
                return None
            return await self._probe_and_apply(value, slot)
        finally:
            self._capacity.release_on_behalf_of(ticket)

    # -- a round -----------------------------------------------------------------

    async def run_once(self) -> list[ProbeReport]:
        """Probe every token that is due once (disabled ones first), paced by the
        budget, and return the reports."""
        reports: list[ProbeReport] = []
        async with anyio.create_task_group() as group:
            for value, slot in self._targets():
                if not self._wanted(value, slot):
                    continue
                ticket = object()
                await self._capacity.acquire_on_behalf_of(ticket)
                try:
                    await self._budget.acquire()
                    admitted = self._admit(value, slot)
                except BaseException:
                    self._capacity.release_on_behalf_of(ticket)
                    raise
                if not admitted:
                    self._capacity.release_on_behalf_of(ticket)
                    continue
                # The probe's task gives the capacity back. (anyio runs every task it
                # starts up to its first checkpoint, even in a cancelled group, so that
                # task always gets there.)
                group.start_soon(self._probe_in_group, value, slot, ticket, reports)
        return reports

    def _targets(self) -> list[tuple[str, Slot]]:
        """Disabled tokens, then idle tokens in service with no call gone well since the
        last round. Also forgets tokens that left the pool."""
        slots = self._core.sched.slots
        seen = self._ok_seen
        disabled: list[tuple[str, Slot]] = []
        idle: list[tuple[str, Slot]] = []
        for value, slot in slots.items():
            if slot.removed:
                continue
            if slot.disabled:
                if not slot.by_hand:  # disabled by hand: for a human to enable
                    disabled.append((value, slot))
            elif self.probe_active and slot.ok == seen.get(value, 0):
                idle.append((value, slot))
            seen[value] = slot.ok
        for value in [v for v in seen if v not in slots]:
            del seen[value]
        return disabled + idle

    def _wanted(self, value: str, slot: Slot, *, by_hand: bool = False) -> bool:
        """Whether ``slot`` should be probed now (before spending any budget)."""
        if value in self._probing or slot.removed:  # a removed slot never comes back
            return False
        if slot.disabled or by_hand:
            return True
        return self.probe_active and slot.in_flight == 0 and slot.cool_until <= self._now()

    def _admit(self, value: str, slot: Slot, *, by_hand: bool = False) -> bool:
        """Check again (time passed while waiting for the budget), then charge the probe
        to the token's windows. Returns whether the probe may go."""
        if not self._wanted(value, slot, by_hand=by_hand):
            return False
        now = self._now()
        cost = min(self.cost, slot.max_cost)
        if slot.ready(cost) > now + EPS:
            return False  # no room: a probe now could push the token over its limit
        self._core.charge(slot, cost)
        self._probing.add(value)
        return True

    def _now(self) -> float:
        return self._core.now()

    async def _probe_in_group(
        self, value: str, slot: Slot, ticket: object, reports: list[ProbeReport]
    ) -> None:
        try:
            reports.append(await self._probe_and_apply(value, slot))
        finally:
            self._capacity.release_on_behalf_of(ticket)

    async def _probe_and_apply(self, value: str, slot: Slot) -> ProbeReport:
        redact = self._core.redact
        started = anyio.current_time()
        outcome: Outcome | None = None
        detail: str | None = None
        timed_out = False
        try:
            with anyio.move_on_after(self.timeout) as scope:
                result: object = await self._probe(value)
            if scope.cancelled_caught:
                timed_out = True
                detail = f"timed out after {self.timeout:g}s"
            elif result is True or result is False:
                outcome = Outcome.ok() if result else Outcome.revoked("health probe failed")
            elif isinstance(result, Outcome):
                outcome = result
            else:
                detail = f"the probe returned {type(result).__name__}, not bool or Outcome"
        except Exception as exc:  # the probe's own failure proves nothing about the token
            detail = redact(f"{type(exc).__name__}: {exc}")
        finally:
            self._probing.discard(value)
        seconds = round(anyio.current_time() - started, 6)
        if outcome is None:
            return self._unanswered(slot, detail or "", seconds, timed_out=timed_out)
        action = self._apply(slot, outcome, seconds)
        reason = redact(outcome.reason) if outcome.reason else None
        return ProbeReport(slot.name, outcome.verdict, action, reason, seconds)

    def _unanswered(
        self, slot: Slot, detail: str, seconds: float, *, timed_out: bool
    ) -> ProbeReport:
        """A probe that timed out or raised: it proves nothing, so nothing changes. Loud
        for a token in service; quiet for a disabled one (expected to fail)."""
        if timed_out:
            _log.emit(
                logging.INFO if slot.disabled else logging.WARNING,
                "aurora.health.timeout",
                token=slot.name,
                timeout=self.timeout,
                state=slot.state(self._now()).value,
            )
        else:
            _log.emit(
                logging.DEBUG if slot.disabled else logging.WARNING,
                "aurora.health.failed",
                token=slot.name,
                fatal=False,
                error=detail,
                seconds=seconds,
                state=slot.state(self._now()).value,
            )
        return ProbeReport(slot.name, None, ProbeAction.NONE, detail, seconds, timed_out)

    def _apply(self, slot: Slot, outcome: Outcome, seconds: float) -> ProbeAction:
        """Act on a probe's outcome: decide, then report it to the pool."""
        core = self._core
        if slot.removed:  # by a reload, while the probe ran
            return ProbeAction.GONE
        verdict = outcome.verdict
        fields: dict[str, Any] = {"token": slot.name, "verdict": verdict.value}
        if outcome.reason:
            fields["reason"] = core.redact(outcome.reason)
        if verdict is Verdict.OK:
            action = ProbeAction.NONE
            if slot.disabled:
                _log.info("aurora.health.revived", was=slot.reason, seconds=seconds, **fields)
                core.enable(slot, by_hand=False)
                action = ProbeAction.REVIVED
            core.report(slot, verdict, cooldown=outcome.cooldown, evidence=Evidence.PROBE)
            return action
        fatal = self._fatal(outcome)
        if slot.disabled:  # still not working: expected, and repeated every round
            _log.debug("aurora.health.failed", fatal=fatal, state="disabled", **fields)
            return ProbeAction.NONE
        if verdict is Verdict.RATE_LIMITED:
            _log.info("aurora.health.failed", fatal=False, action="cooled", **fields)
            core.report(slot, verdict, cooldown=outcome.cooldown, evidence=Evidence.PROBE)
            return ProbeAction.COOLED
        if fatal:
            _log.warning("aurora.health.failed", fatal=True, action="disabled", **fields)
            reason = f"health probe: {outcome.reason or verdict.value}"
            core.report(slot, Verdict.REVOKED, reason=reason, evidence=Evidence.PROBE)
            return ProbeAction.DISABLED
        _log.info("aurora.health.failed", fatal=False, action="none", **fields)
        return ProbeAction.NONE


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """What one sweep of :class:`TokenMonitor` warned about, by masked name."""

    expiring: tuple[str, ...]
    limit_too_high: tuple[str, ...]


_UNKNOWN = object()


class TokenMonitor(_Periodic):
    """Sweep the pool's tokens every ``every`` seconds and warn about two things.

    ``aurora.token.expiring``
        a token's JWT ``exp`` claim is less than ``expiring_within`` seconds away
        (or past). Once per token, while the pool holds it.
    ``aurora.token.limit_too_high``
        the server answered 429 to at least ``rate_limited_at_least`` calls of a token
        since the last sweep, and to at least ``rate_limited_share`` of its leases.
        Every one of those calls was let through by the token's local limiter, so its
        configured limit is above what the server grants (or something else spends the
        same token). Once per episode: again only after a sweep without a 429.

    :param clock: the wall clock (Unix seconds) that ``exp`` claims are compared with.
    """

    _name = "aurora-monitor"

    def __init__(
        self,
        pool: object,
        *,
        every: float = 60.0,
        expiring_within: float = 86400.0,
        rate_limited_at_least: int = 3,
        rate_limited_share: float = 0.01,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not expiring_within >= 0:
            raise ValueError(f"expiring_within must be >= 0 seconds, got {expiring_within!r}")
        if rate_limited_at_least < 1:
            raise ValueError(f"rate_limited_at_least must be >= 1, got {rate_limited_at_least!r}")
        if not 0 <= rate_limited_share <= 1:
            raise ValueError(f"rate_limited_share must be in [0, 1], got {rate_limited_share!r}")
        self._core = core_of(pool)
        self.every = _check_seconds("every", every)
        self.expiring_within = float(expiring_within)
        self.rate_limited_at_least = rate_limited_at_least
        self.rate_limited_share = float(rate_limited_share)
        self._clock = clock
        self._expiry: dict[str, float | None] = {}  # secret -> exp (decoded once)
        self._warned_expiry: set[str] = set()
        self._counts: dict[str, tuple[int, int]] = {}  # secret -> (leases, rate_limited)
        self._too_high: set[str] = set()  # secrets in a limit_too_high episode
        self._last_sweep: float | None = None

    @property
    def limit_too_high(self) -> frozenset[str]:
        """Tokens (their values) the last sweep found rate-limited despite the limiter,
        while that lasts (until a sweep without a 429)."""
        return frozenset(self._too_high)

    def expiry(self, value: str) -> float | None:
        """The Unix time the token ``value`` expires, where known (decoded once)."""
        exp = self._expiry.get(value, _UNKNOWN)
        if exp is _UNKNOWN:
            exp = self._expiry[value] = jwt_expiry(value)
        return exp  # type: ignore[return-value]

    async def run_once(self) -> MonitorReport:
        return self.sweep()

    def sweep(self) -> MonitorReport:
        """One look at every token (synchronous: it never awaits)."""
        core = self._core
        wall = self._clock()
        now = core.now()
        since = None if self._last_sweep is None else round(now - self._last_sweep, 6)
        self._last_sweep = now
        expiring: list[str] = []
        too_high: list[str] = []
        slots = core.sched.slots
        for value, slot in slots.items():
            if slot.removed:
                continue
            if self._check_expiry(value, slot, wall, now):
                expiring.append(slot.name)
            if self._check_limit(value, slot, since):
                too_high.append(slot.name)
        for known in (self._expiry, self._counts):
            for value in [v for v in known if v not in slots]:
                del known[value]
        self._warned_expiry.intersection_update(slots)
        self._too_high.intersection_update(slots)
        return MonitorReport(tuple(expiring), tuple(too_high))

    def _check_expiry(self, value: str, slot: Slot, wall: float, now: float) -> bool:
        exp = self.expiry(value)
        if exp is None or value in self._warned_expiry:
            return False
        left = exp - wall
        if left > self.expiring_within:
            return False
        self._warned_expiry.add(value)
        _log.warning(
            "aurora.token.expiring",
            token=slot.name,
            expires_in=round(left, 3),
            expired=left <= 0,
            state=slot.state(now).value,
        )
        return True

    def _check_limit(self, value: str, slot: Slot, since: float | None) -> bool:
        leases0, limited0 = self._counts.get(value, (0, 0))
        self._counts[value] = (slot.leases, slot.rate_limited)
        limited = slot.rate_limited - limited0
        leases = slot.leases - leases0
        if limited <= 0:
            self._too_high.discard(value)  # the episode is over
            return False
        if value in self._too_high or limited < self.rate_limited_at_least:
            return False
        if limited < self.rate_limited_share * max(leases, limited):
            return False
        self._too_high.add(value)
        info = slot.info
        _log.warning(
            "aurora.token.limit_too_high",
            token=slot.name,
            rate_limited=limited,
            leases=leases,
            within=since,
            limits=[str(w.limit) for w in slot.windows],
            server_limit=getattr(info, "limit", None),
            hint="the server refused calls the configured limits allowed: lower this "
            "token's Limit, or check that nothing else uses the same token",
        )
        return True
