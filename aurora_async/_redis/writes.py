"""Shared token states written to Redis in the background, in order.

``lease.rate_limited()``, ``lease.revoked()``, ``pool.disable()``, ``pool.enable()`` and a
change of a token's limits by calibration never block: each queues one write here, and
one task sends them in the order they were made. While Redis is away, cooldowns,
disables, enables and limit changes are kept and replayed when it is back (reads of the
shared states and limits are not: the recovery reads them anew).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from typing import Any, NamedTuple

from .. import _log
from .calls import Unavailable
from .context import Context
from .failover import Failover
from .membership import Membership
from .scripts import SCRIPTS

_US = 1_000_000
#: Shared writes replayed when Redis is back.
_REPLAYED = ("cool", "disable", "enable", "relimit", "settle")


class Op(NamedTuple):
    """One shared write: ``cool``, ``disable``, ``enable`` a token, change its limits
    (``relimit``), ``settle`` a lease's true cost, or read the namespace's ``state`` or a
    token's ``limits``."""

    kind: str
    tid: str = ""
    seconds: float = 0.0  #: cool: the duration ...
    since: float = -math.inf  #: ... and when it was reported (the write may run later)
    fills: str = ""  #: cool: "1 0 ..." the windows to fill (the quota was spent)
    scope: str = ""  #: cool: the scope cooling ("": the token)
    reason: str = ""  #: disable
    #: relimit: the script's arguments (``relimit_args``); settle: the lease's scope ("":
    #: none) and the differences, unit -> units
    args: tuple[Any, ...] = ()


class Writes:
    """The queue of shared writes and the one task that sends them."""

    __slots__ = ("_ctx", "_failover", "_members", "_ops", "_replay", "_task")

    def __init__(self, ctx: Context, failover: Failover, members: Membership) -> None:
        self._ctx = ctx
        self._failover = failover
        self._members = members
        self._ops: deque[Op] = deque()
        self._replay: list[Op] = []  # made while Redis was away
        self._task: asyncio.Task[None] | None = None

    def add(self, op: Op) -> None:
        """Queue ``op`` (or keep it for the replay while Redis is away)."""
        if op.kind in ("disable", "enable"):
            self._members.hold(op.tid)
        elif op.kind == "relimit":
            self._members.limits.sent(op.tid)
        if self._failover.up:
            self._ops.append(op)
            self.kick()
        elif op.kind in _REPLAYED:
            self._replay.append(op)
        elif op.kind == "limits":
            self._members.limits.fetched(op.tid, None)

    def kick(self) -> None:
        """Start the writing task if there is something to write (and a loop)."""
        if self._task is None and self._ops and self._ctx.port.loop() is not None:
            self._task = self._ctx.spawn(self._run())

    async def _run(self) -> None:
        ops = self._ops
        try:
            while ops:
                if not self._failover.up:
                    self._replay += [o for o in ops if o.kind in _REPLAYED]
                    for o in ops:
                        if o.kind == "limits":
                            self._members.limits.fetched(o.tid, None)
                    ops.clear()
                    break
                op = ops[0]
                try:
                    await self._write(op)
                except Unavailable as exc:
                    self._failover.went_down(exc)
                    continue
                except Exception as exc:
                    _log.error("aurora.redis.write_failed", op=op.kind, error=type(exc).__name__)
                    if op.kind == "limits":
                        self._members.limits.fetched(op.tid, None)
                if ops and ops[0] is op:
                    ops.popleft()
                    self._settled(op)
        finally:
            self._task = None

    def _settled(self, op: Op) -> None:
        """``op`` reached Redis (or was given up)."""
        if op.kind in ("disable", "enable"):
            self._members.settle(op.tid)
        elif op.kind == "relimit":
            self._members.limits.settle(op.tid)

    async def _write(self, op: Op) -> None:
        ctx = self._ctx
        k = ctx.keys
        kind = op.kind
        if kind == "state":
            await self._members.fetch_state()
            return
        if kind in ("relimit", "limits"):
            await self._limits(op)
            return
        if kind == "settle":
            await self._settle(op)
            return
        arg: int | str = ""
        if kind == "cool":
            seconds = op.seconds
            if op.since > -math.inf:
                seconds -= ctx.now() - op.since  # the time it waited to be written
            if seconds <= 0:
                return
            arg = math.ceil(seconds * _US)
        elif kind == "disable":
            arg = op.reason
        await ctx.redis.call(
            SCRIPTS["token_op"],
            [k.ready, k.meta, k.disabled],
            [k.token_prefix, op.tid, kind, arg, ctx.ttl_ms, op.fills, op.scope],
        )

    async def _settle(self, op: Op) -> None:
        """Write a lease's true cost (``SETTLE``): the differences, now."""
        ctx = self._ctx
        k = ctx.keys
        scope, deltas, granted = op.args
        pairs = ",".join(f'"{unit}",{units!r}' for unit, units in deltas.items())
        calendars = self._members.calendars
        cal = calendars.arg(ctx.port.wall(ctx.now())) if calendars else ""
        arg = f'["{op.tid}",{ctx.ttl_ms},"{scope}",[{pairs}],{granted}{cal}]'
        await ctx.redis.call(SCRIPTS["settle"], [k.ready, k.token(op.tid)], [arg])

    async def _limits(self, op: Op) -> None:
        """Write a change of a token's limits, or read them."""
        ctx = self._ctx
        k = ctx.keys
        limits = self._members.limits
        if op.kind == "limits":
            reply = await ctx.redis.call(SCRIPTS["limits"], [k.token(op.tid)], [])
            limits.fetched(op.tid, reply)
            return
        reply = await ctx.redis.call(SCRIPTS["relimit"], [k.ready, k.token(op.tid)], list(op.args))
        if limits.answered(op.tid, reply):
            self._members.resync()

    async def replay(self) -> None:
        """Send what was written while Redis was away, in order (it is back)."""
        replay = self._replay
        while replay:
            await self._write(replay[0])
            self._settled(replay.pop(0))

    async def catch_up(self) -> None:
        """Adopt the namespace's disabled states now (best effort, one round trip)."""
        if self._failover.up:
            with contextlib.suppress(Unavailable):
                await self._write(Op("state"))

    async def drain(self, timeout: float) -> None:
        """Give the writes still queued up to ``timeout`` seconds to land (other workers
        rely on them), then drop what is left."""
        task = self._task
        if task is not None and self._failover.up:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(task)
        self._ops.clear()
