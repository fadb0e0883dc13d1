"""``RedisBackend``: one set of token limits shared by every worker of a namespace.

::

    from aurora_async import TokenPool
    from aurora_async import RedisBackend   # pip install 'aurora_async[redis]'

    backend = RedisBackend("redis://redis:6379/0", namespace="crawler")
    async with TokenPool.from_file(backend=backend) as pool:
        async with pool.lease() as lease: ...

Every worker (process or host) that uses the same Redis and ``namespace`` shares each
token's limits, cooldowns and disabled state, timed by the Redis server's clock; the
pool's API does not change. Each worker queues its own waiters and sends them to Redis
in batches, one reserve script call at a time, and waits the relative delay each
reservation comes back with on one timer. When Redis is away, ``on_failure`` decides
(a local limiter at a share of each limit by default).

``docs/redis.md`` is the design: how a lease is decided, what is guaranteed, local
in-flight caps, shared token states, stats, membership, clocks, the failure policies
and their bounds, and the keys.

This class is the Backend protocol and nothing else; its collaborators, each in its own
module, depend one way (this module -> collaborators -> keys, records, scripts):

* ``pump.py`` -- the reserve calls (``wire.py``: their argument and reply);
* ``queue.py`` -- the local waiters and their one timer (``waiters.py``: tickets);
* ``failover.py`` -- Redis away: the policy, the local limiter (``degrade.py``), probes;
* ``writes.py`` -- shared token states, written in order in the background;
* ``membership.py`` -- this worker's tokens, registration and the states it adopts
  (``limits.py``: the limits calibration learned, shared);
* ``port.py`` -- everything done to the pool, in one adapter; ``context.py`` -- what
  they all share; ``calls.py`` -- the connection.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from .._core.costs import scope_of
from .._core.limits import Limit
from .._core.scheduler import Slot, check_timeout
from .._errors import NoTokensAvailable, PoolClosed
from .calls import Connection
from .context import Context
from .failover import POLICIES, Failover, Policy
from .keys import Keys, token_id
from .limits import relimit_args, settle_deltas
from .membership import Membership
from .port import PoolPort
from .pump import Pump
from .queue import LocalQueue
from .records import RedisTokenState, Reservation, reservations, token_states
from .scripts import SCRIPTS
from .waiters import Ticket, Timeline
from .writes import Op, Writes

if TYPE_CHECKING:
    from .._pool.core import PoolCore, Queued

INF = math.inf
#: How long a worker counts as alive without a call (its heartbeat is a flag on its
#: reserve calls, at most every fifth of this).
_LIVENESS = 60.0
#: The longest ``timeout`` (seconds): a Redis call slower than an hour is an outage, and
#: sockets refuse timeouts beyond about 1e9 seconds.
_MAX_TIMEOUT = 3600.0
#: The longest ``key_ttl`` (ten years, in seconds): Redis refuses expiry times in
#: milliseconds that overflow its clock.
_MAX_KEY_TTL = 10 * 365 * 86400.0


def _number(
    name: str, value: float, low: float, high: float, unit: str, *, low_ok: bool = False
) -> float:
    """``value`` as a float in ``(low, high]`` (``[low, high]`` with ``low_ok``), or a
    ``ValueError`` naming the argument, the range and what was given."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"RedisBackend {name} must be a number ({unit}), not {type(value).__name__}"
        )
    number = float(value)
    if not (low <= number if low_ok else low < number) or not number <= high:
        bound = "at least" if low_ok else "above"
        raise ValueError(
            f"RedisBackend {name} must be {unit} {bound} {low:g} and at most {high:g}, "
            f"got {value!r}: pass a value in that range or leave the default"
        )
    return number


class RedisBackend:
    """Token limits shared through Redis by every worker of ``namespace``.

    :param url: where Redis is (``redis://``, ``rediss://`` or ``unix://``); ignored
        when ``client`` is given.
    :param namespace: the workers that share limits share a namespace (one hash tag).
    :param client: a ``redis.asyncio.Redis`` or ``RedisCluster`` to use instead of
        connecting to ``url``; the backend never closes it. (Its own retry settings
        apply on top of this backend's single retry of a dropped connection.)
    :param timeout: seconds for each call to Redis before it counts as unreachable.
    :param on_failure: ``"degrade"``, ``"fail-closed"`` or ``"fail-open"``: see
        ``docs/redis.md``.
    :param degrade_share: the share of each limit one worker uses while degraded. By
        default (``None``) one over the number of live workers of the namespace, as this
        worker last saw it (a worker that has not reached Redis since it started serves
        nothing while degraded: it knows no count). Set it to keep a share of your own
        (at most ``1 / number of workers`` for the limits to hold).
    :param key_ttl: seconds after which an idle namespace's keys expire.
    :param audit: append every reservation (server time, token id, cost, worker) to the
        list ``{aurora:<namespace>}:audit`` (see :meth:`audit_log`): for tests and
        audits, at one more write per lease.
    :param max_batch: at most this many waiters in one reserve call.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        namespace: str,
        client: Any = None,
        timeout: float = 0.25,
        on_failure: Policy = "degrade",
        degrade_share: float | None = None,
        key_ttl: float = 86400.0,
        audit: bool = False,
        max_batch: int = 256,
    ) -> None:
        self._keys = Keys(namespace)
        timeout = _number("timeout", timeout, 0.0, _MAX_TIMEOUT, "seconds")
        if on_failure not in POLICIES:
            choices = ", ".join(POLICIES)
            raise ValueError(f"on_failure must be one of {choices}; got {on_failure!r}")
        if degrade_share is not None:
            degrade_share = _number("degrade_share", degrade_share, 0.0, 1.0, "a share")
        key_ttl = _number("key_ttl", key_ttl, 1.0, _MAX_KEY_TTL, "seconds", low_ok=True)
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
        self._redis = Connection(url, client, timeout)
        self._timeout = timeout
        self._port = PoolPort()
        ctx = self._ctx = Context(
            self._port, self._redis, self._keys, uuid.uuid4().hex[:12], math.ceil(key_ttl * 1000)
        )
        members = self._members = Membership(ctx, min(_LIVENESS, key_ttl / 2), self._kick)
        queue = self._queue = LocalQueue(
            ctx,
            self._kick,
            self._give_back,
            lambda now: self._failover.fresh(now),
            lambda: self._pump.confirm(),
        )
        failover = self._failover = Failover(
            ctx,
            queue,
            members,
            on_failure,
            degrade_share,
            resync=self._resync,
            recovered=self._recovered,
            kick=self._kick,
        )
        writes = self._writes = Writes(ctx, failover, members)
        # (Both looked up at call time: tests replace ``_sync`` and ``_apply``.)
        self._pump = Pump(
            ctx,
            queue,
            members,
            failover,
            writes,
            audit=bool(audit),
            max_batch=max_batch,
            sync=lambda: self._sync(),
            apply=lambda batch, reply: self._apply(batch, reply),
        )

    # -- for users and tests -------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self._keys.namespace

    @property
    def hash_tag(self) -> str:
        """``{aurora:<namespace>}``: every key of the namespace starts with it (one Redis
        Cluster slot)."""
        return self._keys.tag

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client in use."""
        return self._redis.client

    @property
    def worker(self) -> str:
        """This worker's random id in the namespace."""
        return self._ctx.worker

    @property
    def mode(self) -> str:
        """``"redis"`` while Redis answers, else the failure policy in force."""
        return self._failover.mode

    @property
    def waiting(self) -> int:
        """Leases of this worker waiting (queued, at Redis, or for their reservation)."""
        return self._queue.waiting

    def token_id(self, secret: str) -> str:
        """The id that stands for ``secret`` in this namespace."""
        return token_id(self._keys.namespace, secret)

    def __repr__(self) -> str:
        return (
            f"<RedisBackend namespace={self._keys.namespace!r} mode={self.mode} "
            f"tokens={len(self._members.slots)} waiting={self.waiting}>"
        )

    async def inspect(self) -> list[RedisTokenState]:
        """Every token registered in the namespace, as Redis sees it now (by masked name
        for this pool's tokens, by id for others)."""
        k = self._keys
        reply = await self._redis.call(
            SCRIPTS["inspect"], [k.ready, k.ids, k.disabled], [k.token_prefix]
        )
        return token_states(reply, self._members.names())

    async def audit_log(self) -> list[Reservation]:
        """The reservations recorded with ``audit=True``, oldest first (given-back ones
        appear again with a negative cost)."""
        raw = await self._redis.command("lrange", self._keys.audit, 0, -1, timeout=5.0)
        return reservations(raw, self._members.names())

    async def reset(self, namespace: str | None = None) -> int:
        """Delete every key of ``namespace`` (this backend's by default): limiter state,
        cooldowns, disabled tokens, membership, the audit log. Returns how many keys
        were deleted. Workers still running register again on their next lease."""
        k = self._keys if namespace is None else Keys(namespace)
        fixed = [k.ready, k.meta, k.disabled, k.procs, k.digests, k.ids, k.audit, k.last, k.gap]
        deleted = await self._redis.call(SCRIPTS["reset"], fixed, [k.token_prefix, k.proc_prefix])
        if k.namespace == self._keys.namespace:
            self._members.need_sync = True
            self._members.version = ""
        return int(deleted)

    # -- the Backend protocol ----------------------------------------------------------

    def bind(self, core: PoolCore) -> None:
        self._port.bind(core)
        self._members.refresh()

    async def acquire(self, lease: Queued) -> None:
        port = self._port
        pool_closed = port.closed  # (a RuntimeError before bind)
        if self._ctx.closed or pool_closed:
            raise PoolClosed("the pool is closed; it takes no new leases")
        loop = port.bind_loop()
        self._writes.kick()  # writes reported before the pool had a loop
        cost = lease.cost
        if not port.cost_ok(cost):
            try:
                port.check_cost(cost)
            except NoTokensAvailable:
                # Every token is disabled here; another worker may have enabled some.
                await self._writes.catch_up()
                port.check_cost(cost)
        timeout = lease.timeout
        check_timeout(timeout)
        now = loop.time()
        lease.enqueued_at = now
        fut: asyncio.Future[None] = loop.create_future()
        queue = self._queue
        ticket = queue.add(lease, fut, INF if timeout is None else now + timeout)
        pump = self._pump
        try:
            if (
                pump.busy
                or len(queue.outbox) > 1
                or not self._failover.decides
                or self._members.need_sync
            ):
                pump.kick()
            else:
                await pump.send_now()
            await fut
        except BaseException:
            queue.abandon(ticket)
            raise

    def released(self, slot: Slot, outcome: object) -> None:
        port = self._port
        port.unindex(slot)  # a first good call (mark_proven) put it back in the pool's index
        tid = self._members.tid(slot)
        if tid is None:
            return
        if not port.capped(slot) and slot.usable:
            self._members.capped.pop(tid, None)
        queue = self._queue
        if queue.blocked:
            queue.wake(slot, max(1, queue.budget(tid, slot)))

    def settled(self, slot: Slot, reserved: float, actual: float, granted_at: float) -> None:
        """A lease of ``slot`` that reserved ``reserved`` (at the loop time
        ``granted_at``) cost ``actual`` (the pool has settled its own windows): the
        difference goes where leases are decided now. In Redis (a write, in the
        background, in order), while Redis decides, where a calendar window gives a
        refund back only to the period the lease was granted in; on the local limiter
        while this worker serves on it, where only a debt counts (a refund may be of a
        lease Redis granted: it stays spent, the safe side), and a debt is also written
        to Redis when it is back."""
        tid = self._members.tid(slot)
        if tid is None:
            return
        deltas = settle_deltas(reserved, actual)
        if not self._failover.decides:
            deltas = {unit: units for unit, units in deltas.items() if units > 0}
        if not deltas:
            return
        scope = scope_of(reserved)
        self._failover.settle(tid, slot, deltas, scope, self._ctx.now())
        granted = math.floor(self._ctx.port.wall(granted_at) * 1_000_000)  # wall µs
        self._writes.add(Op("settle", tid, args=(scope or "", deltas, granted)))

    def cooled(
        self, slot: Slot, seconds: float, spent: bool = False, scope: str | None = None
    ) -> None:
        tid = self._members.tid(slot)
        if tid is None or self._members.applying:
            return
        now = self._ctx.now()
        fills = [False] * len(slot.windows)
        if spent:
            # The pool has just filled the spent windows (of the token, or of the scope)
            # as of the cooldown's end: do the same to the shared buckets (and to the
            # local ones while degraded).
            fills = self._port.spent_windows(slot, seconds, scope)
            kc = float(slot.key_cost) if scope is None else 1.0
            self._failover.fill(tid, slot, fills, now + seconds, kc)
        flags = " ".join("1" if f else "0" for f in fills)
        op = Op("cool", tid, seconds=seconds, since=now, fills=flags, scope=scope or "")
        self._writes.add(op)

    def relimited(self, slot: Slot, limits: tuple[Limit, ...], was: tuple[Limit, ...]) -> None:
        """This worker's calibration changed ``slot``'s limits from ``was`` (what it
        decided from) to ``limits`` (already in the slot's windows): every worker's
        reservations use them once the write lands (see ``limits.py``)."""
        members = self._members
        tid = members.tid(slot)
        if tid is None:
            return
        self._port.unindex(slot)  # (the pool's relimit filed it in its own index)
        members.configure()
        self._failover.relimit(tid, slot, self._ctx.now())
        args = relimit_args(tid, self._ctx.ttl_ms, limits, was)
        self._writes.add(Op("relimit", tid, args=tuple(args)))

    def disabled(self, slot: Slot, reason: str) -> None:
        self._members.status_changed(slot)
        tid = self._members.tid(slot)
        if tid is not None and not self._members.applying:
            self._writes.add(Op("disable", tid, reason=reason))

    def enabled(self, slot: Slot) -> None:
        self._members.status_changed(slot)
        tid = self._members.tid(slot)
        if tid is not None and not self._members.applying:
            self._writes.add(Op("enable", tid))

    def tokens_changed(self) -> None:
        if not self._port.bound:
            return
        members = self._members
        if members.status_only:
            members.status_only = False  # a disable or enable: nothing to register
        else:
            members.refresh()
        self._queue.tokens_changed()
        if members.need_sync:
            self._kick()

    async def aclose(self) -> None:
        ctx = self._ctx
        if ctx.closed:
            return
        ctx.closed = True
        self._pump.cancel()
        self._failover.cancel()
        self._queue.close(PoolClosed("the pool was closed while this lease was waiting"))
        # Reservations to give back, and shared writes still queued (cooldowns,
        # disables), get a short chance to land: other workers rely on them.
        await self._pump.flush()
        await self._writes.drain(4 * self._timeout)
        await ctx.stop()
        await self._redis.aclose()

    # -- wiring between collaborators ----------------------------------------------------

    def _kick(self) -> None:
        self._pump.kick()

    def _give_back(self, ticket: Ticket) -> None:
        self._pump.give_back(ticket)

    async def _sync(self) -> None:
        await self._members.sync()

    def _apply(self, batch: list[Ticket], reply: Any) -> None:
        self._pump.apply(batch, reply)

    async def _resync(self) -> None:
        """Redis is back: register again, then replay the writes made meanwhile."""
        await self._sync()
        await self._writes.replay()

    def _recovered(self) -> None:
        self._writes.add(Op("state"))
        self._kick()

    # -- read by tests ---------------------------------------------------------------------

    @property
    def _outbox(self) -> deque[Ticket]:
        return self._queue.outbox

    @property
    def _timeline(self) -> Timeline:
        return self._queue.timeline

    @property
    def _version(self) -> str:
        return self._members.version

    @property
    def _share(self) -> float | None:
        """The share of each limit this worker would serve on if Redis went away now."""
        return self._failover.share_now()

    @property
    def _workers(self) -> int | None:
        return self._members.workers


__all__ = ["RedisBackend", "RedisTokenState", "Reservation"]
