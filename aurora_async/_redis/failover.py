"""When Redis is unreachable: the failure policy, and the way back.

``degrade`` serves leases from a local limiter at a share of each limit, ``fail-closed``
fails them, ``fail-open`` grants them without a limit. Meanwhile a probe tries Redis
with backoff; when it answers, the worker registers again, replays the shared writes
made meanwhile (through ``resync``) and switches back. ``docs/redis.md`` states the
bounds each policy keeps; for ``degrade`` they rest on four rules, all here:

* the share is ``degrade_share`` or, by default, one over the live workers this worker
  last saw in the namespace (:meth:`Failover.share_now`); with no count known (Redis was
  away since the worker started) it serves nothing;
* the local windows start *full* as of the switch plus ``margin`` (the call timeout),
  and the reservations this worker holds in Redis and has not granted yet go back to
  its queue (the local limiter serves them): nothing is granted on a share of the limit
  until whatever the shared state let through has passed;
* while Redis decides, a reservation comes due only if Redis answered a call sent at
  most ``margin`` before (:meth:`Failover.fresh`); otherwise the worker asks Redis
  first: no Redis reservation is granted once another worker may serve locally;
* back from an outage, the worker makes its tokens' shared windows full as of ``hold``
  from then (``RESUME``) and goes on serving locally until ``hold`` after it asked; by
  then every other worker that served locally has done the same. (Unless the namespace's
  reserve calls went on meanwhile, none silent for longer than a timeout: then Redis
  was there for the others, only this worker's calls were slow, and it comes back at
  once.)
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from .. import _log
from .._core.scheduler import EPS, Slot
from .._errors import BackendUnavailable
from .calls import Unavailable
from .context import Context
from .degrade import LocalLimiter, Undo
from .membership import Membership
from .queue import LocalQueue, cooled_until, fail, timeout_error
from .scripts import SCRIPTS
from .waiters import QUEUED, Ticket

Policy = Literal["degrade", "fail-closed", "fail-open"]
POLICIES = ("degrade", "fail-closed", "fail-open")

INF = float("inf")
_US = 1_000_000
#: Probes of an unreachable Redis: first after this, doubling up to the cap.
_PROBE_FIRST, _PROBE_CAP = 0.05, 1.0
#: Tokens made full per resume call (one call stays well within the timeout).
_RESUME_CHUNK = 500


def hold_for(timeout: float) -> float:
    """How long a worker back from serving locally goes on doing so (and keeps the
    shared windows full): longer than the gap between two workers' returns, which is at
    most the probes' cap plus the calls of a return (register, replay, resume: taken to
    last less than four timeouts together)."""
    return _PROBE_CAP + 4 * timeout


class Failover:
    """Whether Redis answers, and what this worker does while it does not.

    :param share: ``degrade_share``, or ``None`` for one over the live workers.
    :param resync: register again and replay the shared writes made meanwhile.
    :param recovered: Redis decides again (the backend fetches the shared states and
        resumes its queue).
    :param kick: make sure the queue moves on (after a failed probe).
    """

    __slots__ = (
        "_ctx",
        "_kick",
        "_members",
        "_queue",
        "_recovered",
        "_resume_at",
        "_resync",
        "_rr",
        "_since",
        "_task",
        "hold",
        "local",
        "margin",
        "policy",
        "share",
        "up",
    )

    def __init__(
        self,
        ctx: Context,
        queue: LocalQueue,
        members: Membership,
        policy: Policy,
        share: float | None,
        *,
        resync: Callable[[], Awaitable[None]],
        recovered: Callable[[], None],
        kick: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._queue = queue
        self._members = members
        self.policy: Policy = policy
        self.share = share  #: as given (``None``: one over the live workers)
        self._resync = resync
        self._recovered = recovered
        self._kick = kick
        self.margin = ctx.redis.timeout  #: see the module's rules
        self.hold = hold_for(ctx.redis.timeout)  #: see the module's rules
        self.up = True  #: Redis answers
        self._since = 0.0  # when Redis went away
        self._resume_at = INF  # back, serving locally until then (the loop's clock)
        #: while serving on a share of each limit (degraded, and until the hold ends)
        self.local: LocalLimiter | None = None
        self._task: asyncio.Task[None] | None = None  # the probe
        self._rr = 0  # fail-open's round robin

    @property
    def decides(self) -> bool:
        """Whether Redis decides the leases (else the policy in force)."""
        return self.up and self.local is None

    @property
    def mode(self) -> str:
        """``"redis"`` while Redis decides the leases, else the failure policy in force."""
        return "redis" if self.decides else self.policy

    def share_now(self) -> float | None:
        """The share of each limit to serve on now: ``degrade_share``, else one over the
        live workers last seen (``None``: no count known)."""
        if self.share is not None:
            return self.share
        workers = self._members.workers
        return None if workers is None else 1.0 / max(1, workers)

    def fresh(self, now: float) -> bool:
        """Whether a Redis reservation may be granted at ``now`` without asking Redis
        first (see the module's rules; only ``degrade`` serves locally)."""
        return self.policy != "degrade" or now <= self._ctx.redis.answered_at + self.margin

    def went_down(self, exc: BaseException) -> None:
        """A call found Redis unreachable: switch to the policy, start probing."""
        ctx = self._ctx
        if not self.up or ctx.closed:
            return
        self.up = False
        cause = exc.__cause__ or exc
        fields: dict[str, Any] = {"namespace": ctx.keys.namespace, "error": type(cause).__name__}
        if self.local is not None:
            # Away again while back and still serving locally: carry on as before.
            _log.warning("aurora.redis.degraded", share=self.local.share, again=True, **fields)
        else:
            self._since = ctx.now()
            self._switch(fields)
        if self._task is None:
            self._task = ctx.spawn(self._probe())

    def _switch(self, fields: dict[str, Any]) -> None:
        """Switch to the policy (and say so)."""
        if self.policy == "degrade":
            share = self.share_now()
            if share is not None:
                self.local = LocalLimiter(share, self._since + self.margin)
            # Reservations made in Redis and not granted yet: served locally instead.
            self._requeue(local=False)
            workers = self._members.workers
            _log.warning("aurora.redis.degraded", share=share, workers=workers, **fields)
        elif self.policy == "fail-closed":
            _log.error("aurora.redis.failing_closed", **fields)
        else:
            _log.error("aurora.redis.failing_open", **fields)

    def _requeue(self, *, local: bool) -> None:
        """Back to the head of the queue: the reservations (made locally, or in Redis)
        not granted yet. They are given up (a Redis one stays spent there: safe)."""
        queue = self._queue
        again = [t for t in queue.holding() if t.local is local]
        if not local:
            queue.held.clear()  # (only Redis reservations are held)
        for t in again:
            queue.cancel_reservation(t)
            t.state = QUEUED
        queue.front(again)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- the local limiter -------------------------------------------------------------

    def fill(self, tid: str, slot: Slot, fills: list[bool], until: float, kc: float) -> None:
        """The API said ``slot``'s quota (or a scope's) is spent: fill the flagged local
        windows, to all but ``kc`` units."""
        if self.local is not None and any(fills):
            self.local.fill(tid, slot.windows, fills, until, kc)

    def relimit(self, tid: str, slot: Slot, now: float) -> None:
        """``slot``'s limits changed: so do its local windows, while degraded."""
        if self.local is not None:
            self.local.relimit(tid, slot.windows, now)

    def settle(
        self, tid: str, slot: Slot, deltas: dict[str, float], scope: str | None, now: float
    ) -> None:
        """A lease's true cost differed by ``deltas``: its local windows take them, while
        this worker serves locally."""
        if self.local is not None:
            self.local.adjust(tid, slot.windows, deltas, scope, now)

    def give_back(self, tid: str, undo: Sequence[str] | Undo) -> None:
        """Give back a reservation made on the local limiter."""
        if self.local is not None:
            self.local.give_back(tid, undo)  # type: ignore[arg-type]

    # -- serving while Redis is away -----------------------------------------------------

    def serve(self, batch: list[Ticket]) -> None:
        """Serve ``batch`` by the policy in force."""
        now = self._ctx.now()
        for t in batch:
            if self.policy == "fail-open":
                self._serve_open(t, now)
            elif self.local is not None:
                self._serve_local(t, now)
            else:
                fail(t, self._unavailable())

    def _unavailable(self, *, quota: bool = False) -> BackendUnavailable:
        where = f"Redis (namespace {self._ctx.keys.namespace!r}) is unreachable"
        if quota:
            why = (
                "every token that could take this lease counts it in a quota on the "
                "calendar (Limit.daily, Limit.monthly), which only Redis keeps: leases "
                "that need one fail while it is away"
            )
        elif self.policy == "fail-closed":
            why = "on_failure is 'fail-closed'"
        else:
            why = (
                "this worker has not reached it since it started, so it does not know how "
                "many workers share the limits and has no safe share of them (pass "
                "degrade_share= to serve on one anyway)"
            )
        return BackendUnavailable(f"{where} and {why}; leases resume when it answers again")

    def _serve_open(self, t: Ticket, now: float) -> None:
        """Fail-open: the next token (round robin) that may take the lease, now."""
        queue = self._queue
        slots = list(self._members.slots.items())
        n = len(slots)
        cooling: tuple[str, Slot] | None = None
        for i in range(n):
            tid, slot = slots[(self._rr + i) % n]
            if t.cost > slot.max_cost or queue.budget(tid, slot) <= 0:
                continue
            if slot.cool_until > now:
                cooling = cooling or (tid, slot)
                continue
            self._rr = (self._rr + i + 1) % n
            queue.reserved(t, slot, tid, 0.0, now)
            return
        if cooling is not None:
            queue.reserved(t, cooling[1], cooling[0], 0.0, now)
        else:
            queue.block(t)  # every token that could take it is at its in-flight cap

    def _serve_local(self, t: Ticket, now: float) -> None:
        """Degraded: reserve on this worker's local limiter (a share of each limit)."""
        local = self.local
        queue = self._queue
        assert local is not None
        best: tuple[str, Slot] | None = None
        best_t = capped_t = INF
        for tid, slot in self._members.slots.items():
            if not slot.usable or t.cost > slot.max_cost:
                continue
            ready = max(cooled_until(slot, t.cost), local.ready(tid, slot.windows, t.cost))
            if ready >= best_t:
                continue
            if queue.budget(tid, slot) <= 0:
                capped_t = min(capped_t, ready)
            else:
                best, best_t = (tid, slot), ready
                if ready <= now:
                    break
        if best is None and capped_t == INF:
            fail(t, self._unavailable(quota=True))  # calendar quotas stood in the way
            return
        wait = INF if t.deadline == INF else max(0.0, t.deadline - now)
        if best is None or best_t - now > wait + EPS:
            # (Some usable token can take the cost: the batch was checked for it.)
            if best is not None and capped_t - now > wait:
                fail(t, timeout_error(t, best_t - now))
            else:
                queue.block(t)  # a token at its in-flight cap may free up in time
            return
        tid, slot = best
        at = max(now, best_t)
        t.undo = local.take(tid, slot.windows, t.cost, at)
        t.local = True
        queue.reserved(t, slot, tid, at - now, now)

    # -- the way back --------------------------------------------------------------------

    async def _probe(self) -> None:
        """While Redis is away: try to come back, with backoff; then, if this worker
        served locally, go on doing so until the hold ends (see the module's rules)."""
        delay = _PROBE_FIRST
        ctx = self._ctx
        try:
            while not ctx.closed:
                await asyncio.sleep(delay)
                try:
                    await self._recover()
                except Exception as exc:
                    self._kick()
                    if not isinstance(exc, Unavailable):
                        _log.error(
                            "aurora.redis.probe_failed", error=type(exc).__name__, detail=str(exc)
                        )
                    delay = min(delay * 2, _PROBE_CAP)
                    continue
                if self.local is not None:
                    if self._resume_at > ctx.now():
                        await asyncio.sleep(self._resume_at - ctx.now())
                    if not self.up:  # away again meanwhile: probe again
                        delay = _PROBE_FIRST
                        continue
                    self._requeue(local=True)  # reservations not due yet: to Redis
                    self.local = None
                self._back()
                return
        finally:
            self._task = None

    async def _recover(self) -> None:
        """Redis answers again: register, replay what happened meanwhile and, if this
        worker served locally, hold: make its tokens' shared windows full until the hold
        ends (unless Redis says the others' calls went on: ``RESUME``)."""
        ctx = self._ctx
        await self._resync()
        if self.local is not None:
            k = ctx.keys
            ids = [tid for tid, slot in self._members.slots.items() if not slot.removed]
            sent = ctx.now()
            hold, tau = math.ceil(self.hold * _US), math.ceil(self.margin * _US)
            held = 0
            for start in range(0, len(ids), _RESUME_CHUNK):
                args: list[Any] = [k.token_prefix, ctx.ttl_ms, hold, tau, held]
                args += ids[start : start + _RESUME_CHUNK]
                held = int(await ctx.redis.call(SCRIPTS["resume"], [k.ready], args))
                if not held:
                    break
            # Redis ran each call at ``sent`` or later: its windows stay full at least
            # until this worker stops serving locally.
            self._resume_at = sent + self.hold if held else -INF
            if held:
                _log.info(
                    "aurora.redis.resuming", namespace=k.namespace, serving_locally_for=self.hold
                )
        self.up = True

    def _back(self) -> None:
        """Redis decides the leases again."""
        ctx = self._ctx
        _log.info(
            "aurora.redis.recovered",
            namespace=ctx.keys.namespace,
            policy=self.policy,
            down_for=round(ctx.now() - self._since, 3),
        )
        self._recovered()
