"""The pump: this worker's queue to Redis, one reserve call at a time.

Whatever queued up while a call was in flight goes in the next one, with the
reservations to give back first (so no later reservation of this worker overtakes a
give-back). On an idle worker the waiter runs the round in its own task
(:meth:`Pump.send_now`), saving the hop to the pump's task. While Redis is away the
batch goes to the failure policy instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .. import _log
from .._core.costs import scope_of
from .._errors import BackendUnavailable
from .calls import Unavailable
from .context import Context
from .failover import Failover
from .membership import Membership
from .queue import LocalQueue, fail, timeout_error
from .scripts import SCRIPTS
from .waiters import DONE, QUEUED, SENT, Ticket
from .wire import CAPPED, RESERVED, TOO_LATE, US, GiveBack, budgets, parse_reply, reserve_arg
from .writes import Op, Writes

Apply = Callable[[list[Ticket], Any], None]


class Pump:
    """Reserve calls for this worker's queue.

    :param sync: register this worker's tokens (``Membership.sync``, through the
        backend).
    :param apply: act on a reserve call's reply (:meth:`apply`, through the backend).
    """

    __slots__ = (
        "_apply",
        "_audit",
        "_ctx",
        "_failover",
        "_keys_arg",
        "_max_batch",
        "_members",
        "_queue",
        "_sync",
        "_writes",
        "busy",
        "confirming",
        "givebacks",
        "task",
    )

    def __init__(
        self,
        ctx: Context,
        queue: LocalQueue,
        members: Membership,
        failover: Failover,
        writes: Writes,
        *,
        audit: bool,
        max_batch: int,
        sync: Callable[[], Awaitable[None]],
        apply: Apply,
    ) -> None:
        self._ctx = ctx
        self._queue = queue
        self._members = members
        self._failover = failover
        self._writes = writes
        self._audit = audit
        self._max_batch = max_batch
        self._sync = sync
        self._apply = apply
        self._keys_arg = [ctx.keys.ready, ctx.keys.proc(ctx.worker)]
        self.busy = False  #: a round runs (in the pump's task or a waiter's own)
        self.task: asyncio.Task[None] | None = None
        self.givebacks: list[GiveBack] = []  #: sent first thing in the next call
        #: a reserve call is due even with nothing to reserve (held reservations wait)
        self.confirming = False

    def kick(self) -> None:
        """Make sure the pump runs (it stops by itself when there is nothing to do)."""
        ctx = self._ctx
        if not self.busy and not ctx.closed and ctx.port.loop() is not None:
            self.busy = True
            self.task = ctx.spawn(self._run())

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def confirm(self) -> None:
        """Call Redis soon, even with nothing to reserve: reservations wait for it."""
        self.confirming = True
        self.kick()

    async def _run(self) -> None:
        try:
            while await self._round():
                pass
        finally:
            self.task = None
            self.busy = False
        self._after_round()

    async def send_now(self) -> None:
        """Run one round from the waiter's own task (nothing else in flight): saves the
        hop to the pump task, the most of a lease's own cost on an idle worker."""
        self.busy = True
        try:
            await self._round()
        finally:
            self.busy = False
            self._queue.sent = []  # (only left over if the waiter was cancelled mid-call)
            self._after_round()

    def _after_round(self) -> None:
        more = self._queue.outbox or self.givebacks or self.confirming
        if more and not self._ctx.closed:
            self.kick()

    async def _round(self) -> bool:
        """Register if due, then send one batch to Redis (or to the failure policy).
        Returns whether there may be more to do."""
        failover = self._failover
        if self._ctx.closed:
            return False
        if self._members.need_sync and failover.up:
            await self._try_sync()
        queue = self._queue
        batch = queue.take_batch(self._max_batch)
        if not failover.decides:
            self.givebacks.clear()  # Redis is away: they stay spent (safe)
            self.confirming = False  # (nothing is held: the policy took them)
            if not batch:
                return False
            failover.serve(batch)
            return True
        if not batch and not self.givebacks and not self.confirming:
            return False
        queue.sent = batch
        self.confirming = False
        try:
            reply = await self._ctx.redis.call(SCRIPTS["reserve"], *self.args(batch))
            queue.sent = []
            self._apply(batch, reply)
            if queue.held:
                self.confirming = False  # (asked again if this call is not fresh enough)
                queue.release()
        except Unavailable as exc:
            failover.went_down(exc)
            queue.sent = []
            again = []
            for t in batch:  # back to the head of the queue, for the policy
                if t.state == SENT:
                    t.state = DONE if t.fut.done() else QUEUED
                    again.append(t)
            queue.front([t for t in again if t.state == QUEUED])
        except Exception as exc:
            # Not Redis being away: a refused script (WRONGTYPE: someone else's data in
            # our keys), or a bug. Fail this batch rather than leave it hanging.
            _log.error("aurora.redis.reserve_failed", error=type(exc).__name__, detail=str(exc))
            failure = BackendUnavailable(f"the Redis backend failed: {type(exc).__name__}: {exc}")
            queue.sent = []
            for t in batch:
                if t.state == SENT:
                    fail(t, failure)
        return True

    async def _try_sync(self) -> None:
        try:
            await self._sync()
        except Unavailable as exc:
            self._failover.went_down(exc)
        except Exception as exc:
            _log.error("aurora.redis.sync_failed", error=type(exc).__name__, detail=str(exc))

    def args(self, batch: list[Ticket]) -> tuple[list[str], list[str]]:
        """KEYS and the one argument of a reserve call for ``batch`` (which takes the
        give-backs along)."""
        now = self._ctx.now()
        members = self._members
        flags = (2 if self._audit else 0) + members.heartbeat(now)
        gives, self.givebacks = self.givebacks, []
        caps = ""
        if members.capped:
            budget = self._queue.budget
            caps = budgets(((tid, budget(tid, s)) for tid, s in members.capped.items()), len(batch))
        calendars = members.calendars.arg(self._ctx.port.wall(now)) if members.calendars else ""
        arg = reserve_arg(members.config, flags, gives, caps, batch, now, calendars)
        return self._keys_arg, [arg]

    def apply(self, batch: list[Ticket], reply: Any) -> None:
        """Act on a reserve call's reply: wait for each reservation, fail or block the
        waiters it could not serve, give back what nobody takes any more."""
        now = self._ctx.now()
        queue = self._queue
        members = self._members
        version, resync, workers, leases = parse_reply(reply)
        members.workers = workers
        # (Redis went away for another call while this one was out: the policy serves.)
        decides = self._failover.decides
        retry: list[Ticket] = []
        for t, fields in zip(batch, leases, strict=True):
            status, delay = int(fields[0]), int(fields[1])
            gone = t.state != SENT or t.fut.done()  # its waiter left meanwhile
            if gone:
                t.state = DONE
            if status == RESERVED:
                tid, at, undo = fields[2], fields[3], fields[5:]
                if members.limits.seen(tid, fields[4]):  # another worker changed them
                    self._writes.add(Op("limits", tid))
                slot = members.slots.get(tid)
                if gone or slot is None or not slot.usable or not decides:
                    # Nobody to take it, or the token went away meanwhile: give it back.
                    self.returns(GiveBack(tid, undo, at, t.cost))
                    if not gone:
                        t.state = QUEUED
                        retry.append(t)
                    continue
                t.undo = undo
                t.at = at
                t.local = False
                self._ctx.port.mirror(slot, undo, int(at) - delay, now, scope_of(t.cost))
                queue.reserved(t, slot, tid, delay / US, now)
            elif gone:
                continue
            elif status == TOO_LATE:
                fail(t, timeout_error(t, delay / US))
            elif status == CAPPED:
                queue.block(t)
            elif self._no_token(t):
                retry.append(t)
                resync = True
        if resync:
            members.need_sync = True
        elif version != members.version:
            members.version = version
            self._writes.add(Op("state"))
        queue.front(retry)

    def _no_token(self, t: Ticket) -> bool:
        """None of this worker's tokens is in Redis (keys expired, Redis restarted, a
        reset): whether to register again and retry ``t`` (else it fails)."""
        t.tries += 1
        if t.tries > 2:
            fail(t, self._ctx.port.no_tokens(t.cost))
            return False
        t.state = QUEUED
        return True

    # -- give-backs ----------------------------------------------------------------------

    def give_back(self, ticket: Ticket) -> None:
        """Return the reservation ``ticket`` holds, locally or in Redis."""
        if ticket.local:
            self._failover.give_back(ticket.tid, ticket.undo)
        elif ticket.undo:
            self.returns(GiveBack(ticket.tid, ticket.undo, ticket.at, ticket.cost))  # type: ignore[arg-type]

    def returns(self, give: GiveBack) -> None:
        """Give a Redis reservation back, first thing in the next reserve call."""
        if self._failover.decides:
            self.givebacks.append(give)
            self.kick()

    async def flush(self) -> None:
        """Send the give-backs still queued, if Redis answers (best effort)."""
        if self.givebacks and self._failover.decides:
            with contextlib.suppress(Exception):  # else they stay spent (safe)
                await self._ctx.redis.call(SCRIPTS["reserve"], *self.args([]))
