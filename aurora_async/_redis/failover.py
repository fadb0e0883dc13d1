"""When Redis is unreachable: the failure policy, and the way back.

``degrade`` serves leases from a local limiter at a share of each limit, ``fail-closed``
fails them, ``fail-open`` grants them without a limit. Meanwhile a probe tries Redis
with backoff; when it answers, the worker registers again, replays the shared writes
made meanwhile (through ``resync``), charges its local usage to the shared buckets
(reconciles) and switches back. ``docs/redis.md`` states the bounds each policy keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from .. import _log
from .._core.scheduler import EPS, Slot
from .._errors import BackendUnavailable
from .calls import Unavailable
from .context import Context
from .degrade import LocalLimiter, Undo
from .membership import Membership
from .queue import LocalQueue, fail, timeout_error
from .scripts import SCRIPTS
from .waiters import Ticket

Policy = Literal["degrade", "fail-closed", "fail-open"]
POLICIES = ("degrade", "fail-closed", "fail-open")

INF = float("inf")
#: Probes of an unreachable Redis: first after this, doubling up to the cap.
_PROBE_FIRST, _PROBE_CAP = 0.05, 2.0


class Failover:
    """Whether Redis answers, and what this worker does while it does not.

    :param resync: register again and replay the shared writes made meanwhile.
    :param recovered: Redis is back (the backend fetches the shared states and
        resumes its queue).
    :param kick: make sure the queue moves on (after a failed probe).
    """

    __slots__ = (
        "_ctx",
        "_kick",
        "_members",
        "_queue",
        "_recovered",
        "_resync",
        "_rr",
        "_since",
        "_task",
        "local",
        "policy",
        "recovering",
        "share",
        "up",
    )

    def __init__(
        self,
        ctx: Context,
        queue: LocalQueue,
        members: Membership,
        policy: Policy,
        share: float,
        *,
        resync: Callable[[], Awaitable[None]],
        recovered: Callable[[], None],
        kick: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._queue = queue
        self._members = members
        self.policy: Policy = policy
        self.share = share
        self._resync = resync
        self._recovered = recovered
        self._kick = kick
        self.up = True  #: Redis answers
        self.recovering = False  #: charging local usage to Redis: hold the queue
        self._since = 0.0  # when Redis went away
        self.local: LocalLimiter | None = None  #: while degraded
        self._task: asyncio.Task[None] | None = None  # the probe
        self._rr = 0  # fail-open's round robin

    @property
    def mode(self) -> str:
        """``"redis"`` while Redis answers, else the failure policy in force."""
        return "redis" if self.up else self.policy

    def went_down(self, exc: BaseException) -> None:
        """A call found Redis unreachable: switch to the policy, start probing."""
        ctx = self._ctx
        if not self.up or ctx.closed:
            return
        self.up = False
        self._since = ctx.now()
        cause = exc.__cause__ or exc
        fields = {"namespace": ctx.keys.namespace, "error": type(cause).__name__}
        if self.policy == "degrade":
            local = self.local = LocalLimiter(self.share)
            # Reservations already made in Redis count against this worker's share.
            for due, t in sorted(self._queue.timeline.reserved(), key=lambda e: e[0]):
                local.take(t.tid, t.slot.windows, t.cost, due)  # type: ignore[union-attr]
            _log.warning("aurora.redis.degraded", share=self.share, **fields)
        elif self.policy == "fail-closed":
            _log.error("aurora.redis.failing_closed", **fields)
        else:
            _log.error("aurora.redis.failing_open", **fields)
        if self._task is None:
            self._task = ctx.spawn(self._probe())

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- the local limiter -------------------------------------------------------------

    def fill(self, tid: str, slot: Slot, fills: list[bool], until: float) -> None:
        """The API said ``slot``'s quota is spent: fill the flagged local windows."""
        if self.local is not None and any(fills):
            self.local.fill(tid, slot.windows, fills, until, slot.key_cost)

    def relimit(self, tid: str, slot: Slot, now: float) -> None:
        """``slot``'s limits changed: so do its local windows, while degraded."""
        if self.local is not None:
            self.local.relimit(tid, slot.windows, now)

    def give_back(self, tid: str, undo: Sequence[str] | Undo) -> None:
        """Give back a reservation made on the local limiter."""
        if self.local is not None:
            self.local.give_back(tid, undo)  # type: ignore[arg-type]

    # -- serving while Redis is away -----------------------------------------------------

    def serve(self, batch: list[Ticket]) -> None:
        """Serve ``batch`` by the policy in force."""
        now = self._ctx.now()
        for t in batch:
            if self.policy == "fail-closed":
                fail(
                    t,
                    BackendUnavailable(
                        f"Redis (namespace {self._ctx.keys.namespace!r}) is unreachable and "
                        "on_failure is 'fail-closed'; leases resume when it answers again"
                    ),
                )
            elif self.policy == "fail-open":
                self._serve_open(t, now)
            else:
                self._serve_local(t, now)

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
            ready = max(slot.cool_until, local.ready(tid, slot.windows, t.cost))
            if ready >= best_t:
                continue
            if queue.budget(tid, slot) <= 0:
                capped_t = min(capped_t, ready)
            else:
                best, best_t = (tid, slot), ready
                if ready <= now:
                    break
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
        """While Redis is away: try to come back, with backoff."""
        delay = _PROBE_FIRST
        try:
            while not self._ctx.closed:
                await asyncio.sleep(delay)
                try:
                    await self._recover()
                except Exception as exc:
                    self.recovering = False
                    self._kick()
                    if not isinstance(exc, Unavailable):
                        _log.error(
                            "aurora.redis.probe_failed", error=type(exc).__name__, detail=str(exc)
                        )
                    delay = min(delay * 2, _PROBE_CAP)
                    continue
                return
        finally:
            self._task = None

    async def _recover(self) -> None:
        """Redis answers again: register, replay what happened meanwhile, reconcile."""
        ctx = self._ctx
        await self._resync()
        charged = 0
        local = self.local
        if local is not None:
            # Hold this worker's queue during the one call that charges the local
            # usage to Redis, so nothing leased meanwhile escapes the account.
            self.recovering = True
            outstanding = local.outstanding(ctx.now())
            if outstanding:
                args: list[Any] = [ctx.keys.token_prefix, ctx.ttl_ms]
                for tid, units in outstanding.items():
                    args += [tid, len(units), *(repr(u) for u in units)]
                reply = await ctx.redis.call(SCRIPTS["reconcile"], [ctx.keys.ready], args)
                charged = int(reply)
        self.local = None
        self.up = True
        self.recovering = False
        _log.info(
            "aurora.redis.recovered",
            namespace=ctx.keys.namespace,
            policy=self.policy,
            down_for=round(ctx.now() - self._since, 3),
            reconciled_tokens=charged,
        )
        self._recovered()
