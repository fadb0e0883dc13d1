"""``RedisBackend``: one set of token limits shared by every worker of a namespace.

::

    from aurora_async import TokenPool
    from aurora_async import RedisBackend   # pip install 'aurora_async[redis]'

    backend = RedisBackend("redis://redis:6379/0", namespace="crawler")
    async with TokenPool.from_file(backend=backend) as pool:
        async with pool.lease() as lease: ...

Every worker (process or host) that uses the same Redis and ``namespace`` shares each
token's limits, cooldowns and disabled state. The pool's API does not change.

How a lease is decided
    Each worker keeps its own FIFO queue of waiters and has one reserve call in flight
    at a time: whatever queued up meanwhile goes to Redis in **one** ``EVALSHA`` of the
    reserve script (a lease costs at most one round trip, and under load a small share
    of one; on an idle worker the waiter sends its call itself, without a task hop).
    For each waiter, in order, the script reads the server's ``TIME``, finds the token
    that can fire the lease soonest among this worker's tokens (a sorted set of tokens
    by next-allowed time; cooling tokens sort late, disabled ones are not in it),
    checks the wait against the waiter's timeout *before* writing anything, and
    reserves the cost in every limit window of that token at once (one GCRA
    theoretical arrival time per window). It answers with a *relative* delay. The
    worker waits that long on its own clock, in one heap with **one** timer for the
    whole pool, and grants the lease. No polling: a waiter costs nothing while it waits.

What is guaranteed (Redis reachable)
    1. *Never over the limit*: for every token and each of its windows, the
       reservations of all workers, timed by the Redis server's clock, never exceed
       ``burst + rate * t / per`` in any interval of length ``t``. Every rounding is
       upwards (whole microseconds), so it can only make a token slower. A worker grants
       a lease no earlier than its reservation: it starts waiting the delay only once
       the reply has arrived. What no shared limiter can promise is *when the API sees
       the request*: each worker's loop wakes up late by its own amount (a busy loop, a
       busy CPU), so two workers' consecutive leases on a token may reach the API closer
       together than they were reserved, by up to the later one's lateness. APIs
       tolerate some of that (arrival jitter); for one that tolerates none, leave that
       much headroom (a burst one unit lower, or :meth:`Limit.sliding_window`).
    2. *In order*: one worker's waiters are sent in FIFO order; between workers, the
       order in which their scripts run. A costly lease is reserved when its turn
       comes, so cheap ones never overtake it forever.
    3. *No idle capacity*: a reservation is for the soonest moment a token can take it.
    4. *Cancel-safe*: a waiter that leaves before its reservation comes due gives it
       back; the give-back is exact when no later reservation of that token followed
       it (the token's windows are restored to what they were), and otherwise the
       reservation stays spent (conservative: it delays that token, never overloads
       it). A waiter that leaves while still queued locally consumes nothing.
    5. *No hang on the impossible*: cost above every burst is a ``ValueError`` at once;
       no usable token is ``NoTokensAvailable`` at once, also for waiters whose tokens
       were disabled by another worker.
    6. *Secrets stay secret*: Redis only ever sees token *ids*, HMAC-SHA256 of the
       secret keyed by the namespace (see ``keys.py``). Logs show masked names.

    With ``timeout``, a lease that no token can serve before it is due fails at once
    with ``LeaseTimeout`` (nothing is reserved), rather than at its deadline; one that
    only waits for this worker's in-flight caps waits until its deadline.

Local in-flight caps
    ``max_in_flight`` (and the trial cap of unproven tokens) are per worker: each
    worker tells the script how many more leases each capped token may take, counting
    leases in flight and reservations not yet due.

Shared token states
    ``lease.rate_limited()`` cools the token for every worker (the cooldown's end is
    computed on the server from the duration); ``lease.revoked()`` and
    ``pool.disable()`` disable it for every worker, ``pool.enable()`` brings it back.
    These calls never block: the Redis writes run in the background, in order. Other
    workers skip the token in their next reservation at once, and see the new state
    in their own ``pool.stats()`` after their next call to Redis (a version number in
    every reply tells them to fetch it; a worker whose tokens are all disabled asks
    Redis before it raises ``NoTokensAvailable``). Cooldowns from other workers are
    enforced in Redis but do not show as ``cooling`` in local stats.

Local stats
    ``pool.stats()`` counts this worker's leases. Each token's ``headroom`` shows its
    shared buckets as this worker's last reservation of it left them (the pool also
    reads them to tell whether an API's "nothing left" header says more than the
    limiter knows, so a token used at full speed is not cooled for it). Waiters of
    this worker: :attr:`RedisBackend.waiting`, included in ``pool.stats().waiting``.

Membership
    Each worker registers its tokens (on first use, after every reload that changes
    the set or limits, and whenever Redis has lost them). A worker is alive while it
    has called Redis within the last minute (a heartbeat rides on its reserve calls),
    and a token stays in the index while some live worker holds it.
    Workers whose token sets differ are logged (``aurora.redis.membership_differs``);
    a token registered with other limits than before restarts from a full bucket and is
    logged (``aurora.redis.limits_differ``).

Clocks
    Only the Redis server's clock decides. Workers send durations (how long a waiter
    may still wait) and receive durations (how long to wait); a worker's clock may be
    off by any amount without effect on the limits, and only its *rate* matters (over
    a few seconds of waiting, any real clock's drift is negligible).

When Redis is unreachable or slow (``on_failure``)
    Every call has a short ``timeout``; a dropped connection is retried once at once
    (``CLIENT KILL``, a restarted server); ``NOSCRIPT`` (after ``SCRIPT FLUSH``, a
    restart or a failover) reloads the script and carries on. Otherwise the worker
    switches policy and logs it, then probes Redis in the background (with backoff)
    and switches back when a probe succeeds (``aurora.redis.recovered``):

    ``"degrade"`` (default, ``aurora.redis.degraded``)
        Each worker continues on a *local* limiter at ``degrade_share`` of each
        window's rate and burst (burst at least one unit); set it to about
        ``1 / number of workers``. While degraded, over any interval ``t``, one worker
        leases at most ``max(share * burst, min(burst, 1), cost) + share * rate * t``
        units of a window, so ``n`` workers with ``share <= 1 / n`` stay within the
        limit. Reservations made in Redis before the switch are kept and charged to
        the local limiter (so they count against the share), and when Redis answers
        again each worker charges what its local buckets still hold to the shared
        buckets (reconciles), so the bound carries across both switches (reservations
        from before the outage still pending then are charged twice: the safe side). Cooldowns and
        disables seen while degraded apply locally at once and are written to Redis
        when it is back. Bound across a recovery: until every worker's probe has
        succeeded (its backoff is at most 2 s), the workers still degraded add their
        local share on top of the shared limit.
    ``"fail-closed"`` (``aurora.redis.failing_closed``)
        Leases raise ``BackendUnavailable`` until Redis answers again.
    ``"fail-open"`` (``aurora.redis.failing_open``)
        **Dangerous**: leases are granted without any rate limit (only disabled tokens
        and in-flight caps are respected) until Redis answers again. Only for APIs that
        tolerate bursts, when stopping is worse than being throttled.

Keys
    All keys of a namespace share the hash tag ``{aurora:<namespace>}`` (one Redis
    Cluster slot, so the scripts run on a cluster; pass a ``redis.asyncio.RedisCluster``
    as ``client``). The scripts name some keys from that tag rather than in ``KEYS``:
    they always stay in the slot of the keys they were given. Keys expire after
    ``key_ttl`` seconds without use (never while a bucket or cooldown still matters),
    so nothing leaks; a namespace idle for that long forgets disabled tokens.
    :meth:`RedisBackend.reset` deletes a namespace, :meth:`RedisBackend.inspect` lists
    its tokens, :meth:`RedisBackend.audit_log` the reservations (``audit=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections import deque
from collections.abc import Coroutine, Sequence
from itertools import count
from typing import TYPE_CHECKING, Any, Literal

from .. import _backend, _log
from .._core.scheduler import _UNCAPPED, EPS, Slot, check_timeout
from .._errors import BackendUnavailable, LeaseTimeout, NoTokensAvailable, PoolClosed
from .calls import Connection, _Unavailable
from .degrade import LocalLimiter
from .keys import Keys, membership_digest, token_id
from .records import RedisTokenState, Reservation, reservations, text, token_states
from .scripts import SCRIPTS
from .waiters import (
    BLOCKED,
    DEADLINE,
    DONE,
    DUE,
    GRANTED,
    LIVE,
    QUEUED,
    RESERVED,
    SENT,
    Ticket,
    Timeline,
)

if TYPE_CHECKING:
    from .._pool.lease import Lease
    from .._pool.pool import TokenPool

Policy = Literal["degrade", "fail-closed", "fail-open"]
_POLICIES = ("degrade", "fail-closed", "fail-open")

INF = math.inf
_US = 1_000_000
#: Tokens registered per sync call, so one call stays well within the timeout.
_SYNC_CHUNK = 500
#: How long a worker counts as alive without a call (its heartbeat is a flag on its
#: reserve calls, at most every fifth of this).
_LIVENESS = 60.0
#: Probes of an unreachable Redis: first after this, doubling up to the cap.
_PROBE_FIRST, _PROBE_CAP = 0.05, 2.0
#: Shared writes replayed when Redis is back (give-backs and reads are not).
_REPLAYED = ("cool", "disable", "enable")


def _unindex(slot: Slot) -> None:
    """Keep ``slot`` out of the pool's own scheduler index, which a backend leaves
    unused (and whose bookkeeping, done on every change, would be wasted). Older
    versions of the lease's fast exit path also skipped ``backend.released`` for
    indexed slots; the path now checks for a backend, and this keeps it so anyway."""
    if slot.indexed:
        slot.lane.retire(slot.seq)
        slot.seq = -1
        slot.indexed = False


def _mirror(slot: Slot, undo: Sequence[str], server_now: int, now: float) -> None:
    """Show the shared buckets of ``slot``, as this reservation left them, in its own
    windows (which the pool reads for ``stats()`` headroom and to tell whether a
    response's "nothing left" says more than the limiter already knows)."""
    for w, after in zip(slot.windows, undo[1::2], strict=False):
        w._last_check = now
        w._level = max(0.0, (int(after) - server_now) / _US * w.rate)


class RedisBackend:
    """Token limits shared through Redis by every worker of ``namespace``.

    :param url: where Redis is (``redis://``, ``rediss://`` or ``unix://``); ignored
        when ``client`` is given.
    :param namespace: the workers that share limits share a namespace (one hash tag).
    :param client: a ``redis.asyncio.Redis`` or ``RedisCluster`` to use instead of
        connecting to ``url``; the backend never closes it. (Its own retry settings
        apply on top of this backend's single retry of a dropped connection.)
    :param timeout: seconds for each call to Redis before it counts as unreachable.
    :param on_failure: ``"degrade"``, ``"fail-closed"`` or ``"fail-open"``: see the
        module documentation.
    :param degrade_share: the share of each limit one worker uses while degraded; set
        it to ``1 / number of workers`` (or less).
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
        degrade_share: float = 0.5,
        key_ttl: float = 86400.0,
        audit: bool = False,
        max_batch: int = 256,
    ) -> None:
        self._keys = Keys(namespace)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if on_failure not in _POLICIES:
            choices = ", ".join(_POLICIES)
            raise ValueError(f"on_failure must be one of {choices}; got {on_failure!r}")
        if not 0 < degrade_share <= 1:
            raise ValueError(f"degrade_share must be in (0, 1], got {degrade_share!r}")
        if not key_ttl >= 1 or not math.isfinite(key_ttl):
            raise ValueError(f"key_ttl must be at least 1 second, got {key_ttl!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
        self._redis = Connection(url, client, float(timeout))
        self._timeout = float(timeout)
        self._policy: Policy = on_failure
        self._share = float(degrade_share)
        self._ttl_ms = math.ceil(key_ttl * 1000)
        self._liveness = min(_LIVENESS, key_ttl / 2)
        self._audit = bool(audit)
        self._max_batch = max_batch
        self._worker = uuid.uuid4().hex[:12]
        self._keys_arg = [self._keys.ready, self._keys.proc(self._worker)]
        self._pool: TokenPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The pool's tokens, by id.
        self._ids: dict[str, str] = {}  # secret -> id
        self._slots: dict[str, Slot] = {}  # id -> slot
        self._capped: dict[str, Slot] = {}  # whose budget the reserve script must know
        self._pending: dict[str, int] = {}  # id -> reservations not yet granted
        self._config = ""  # see _refresh_slots
        self._signature = ""  # of ids and limits: a change means a sync
        self._digest = ""  # of ids: what workers compare
        # Waiters: the FIFO queue, the call in flight, the blocked, the timeline.
        self._next_seq = count().__next__
        self._outbox: deque[Ticket] = deque()
        self._sent: list[Ticket] = []
        self._blocked: list[Ticket] = []
        self._timeline = Timeline(self._on_timer)
        self._givebacks: list[tuple[str, Sequence[str], str, float]] = []
        # Background work: the pump (reserve calls), shared writes, the probe.
        self._pump_task: asyncio.Task[None] | None = None
        self._busy = False  # a round runs (in the pump task or a waiter's own)
        self._ops: deque[tuple[Any, ...]] = deque()
        self._ops_task: asyncio.Task[None] | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._replay: list[tuple[Any, ...]] = []
        self._unsynced: dict[str, int] = {}  # ids with disable/enable writes in flight
        # State.
        self._up = True
        self._recovering = False
        self._down_since = 0.0
        self._local: LocalLimiter | None = None
        self._need_sync = True
        self._version = ""
        self._next_touch = -INF
        self._status_only = False
        self._applying = False
        self._closed = False
        self._rr = 0
        self._membership_warned = -1

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
        return self._worker

    @property
    def mode(self) -> str:
        """``"redis"`` while Redis answers, else the failure policy in force."""
        return "redis" if self._up else self._policy

    @property
    def waiting(self) -> int:
        """Leases of this worker waiting (queued, at Redis, or for their reservation)."""
        tickets = {id(t): t for t in self._outbox}
        for t in (*self._sent, *self._blocked, *self._timeline.tickets()):
            tickets[id(t)] = t
        return sum(1 for t in tickets.values() if t.state in LIVE)

    def token_id(self, secret: str) -> str:
        """The id that stands for ``secret`` in this namespace."""
        return token_id(self._keys.namespace, secret)

    def __repr__(self) -> str:
        return (
            f"<RedisBackend namespace={self._keys.namespace!r} mode={self.mode} "
            f"tokens={len(self._slots)} waiting={self.waiting}>"
        )

    async def inspect(self) -> list[RedisTokenState]:
        """Every token registered in the namespace, as Redis sees it now (by masked name
        for this pool's tokens, by id for others)."""
        k = self._keys
        reply = await self._redis.call(
            SCRIPTS["inspect"], [k.ready, k.ids, k.disabled], [k.token_prefix]
        )
        return token_states(reply, {tid: s.name for tid, s in self._slots.items()})

    async def audit_log(self) -> list[Reservation]:
        """The reservations recorded with ``audit=True``, oldest first (given-back ones
        appear again with a negative cost)."""
        raw = await self._redis.command("lrange", self._keys.audit, 0, -1, timeout=5.0)
        return reservations(raw, {tid: s.name for tid, s in self._slots.items()})

    async def reset(self, namespace: str | None = None) -> int:
        """Delete every key of ``namespace`` (this backend's by default): limiter state,
        cooldowns, disabled tokens, membership, the audit log. Returns how many keys
        were deleted. Workers still running register again on their next lease."""
        k = self._keys if namespace is None else Keys(namespace)
        fixed = [k.ready, k.meta, k.disabled, k.procs, k.digests, k.ids, k.audit]
        deleted = await self._redis.call(SCRIPTS["reset"], fixed, [k.token_prefix, k.proc_prefix])
        if k.namespace == self._keys.namespace:
            self._need_sync = True
            self._version = ""
        return int(deleted)

    # -- the Backend protocol ----------------------------------------------------------

    def bind(self, pool: TokenPool) -> None:
        if self._pool is not None and self._pool is not pool:
            raise RuntimeError("this RedisBackend already serves another pool; make one per pool")
        self._pool = pool
        self._refresh_slots()

    async def acquire(self, lease: Lease) -> None:
        pool = self._pool
        if pool is None:
            raise RuntimeError("RedisBackend.acquire before bind: pass it to TokenPool(backend=)")
        if self._closed or pool.closed:
            raise PoolClosed("the pool is closed; it takes no new leases")
        loop = pool._bind()
        self._loop = loop
        if self._ops and self._ops_task is None:
            self._kick_ops()  # writes reported before the pool had a loop
        sched = pool._sched
        cost = lease.cost
        try:
            valid = 0 < cost <= sched.max_cost
        except TypeError:
            valid = False
        if not valid:
            try:
                sched.check_cost(cost)
            except NoTokensAvailable:
                # Every token is disabled here; another worker may have enabled some.
                await self._catch_up()
                sched.check_cost(cost)
        timeout = lease.timeout
        check_timeout(timeout)
        now = loop.time()
        lease.enqueued_at = now
        fut: asyncio.Future[None] = loop.create_future()
        ticket = Ticket(lease, fut, INF if timeout is None else now + timeout, self._next_seq())
        self._outbox.append(ticket)
        try:
            if self._busy or len(self._outbox) > 1 or not self._up or self._need_sync:
                self._kick()
            else:
                await self._send_now()
            await fut
        except BaseException:
            self._abandon(ticket)
            raise

    def released(self, slot: _backend.Slot, outcome: str) -> None:
        _unindex(slot)  # a first good call (mark_proven) put it back in the pool's index
        tid = self._ids.get(slot.token.value)
        if tid is None:
            return
        if slot.cap >= _UNCAPPED and slot.usable:
            self._capped.pop(tid, None)
        if self._blocked:
            self._wake(slot, max(1, self._budget(tid, slot)))

    def cooled(self, slot: _backend.Slot, seconds: float, spent: bool = False) -> None:
        tid = self._ids.get(slot.token.value)
        if tid is None or self._applying:
            return
        now = self._now()
        # When the API said the quota is spent, the pool has just left the token's
        # windows full as of the cooldown's end (all but one unit): the windows whose
        # period is no longer than the cooldown, or the shortest one. Do the same to the
        # shared buckets, window by window.
        fills = [False] * len(slot.windows)
        if spent:
            longest = max(seconds, min(w.limit.per for w in slot.windows))
            fills = [w.limit.per <= longest for w in slot.windows]
            if self._local is not None and any(fills):
                self._local.fill(tid, slot.windows, fills, now + seconds, slot.key_cost)
        # The duration, and when it was reported (the write may run later).
        self._op(("cool", tid, seconds, now, " ".join("1" if f else "0" for f in fills)))

    def disabled(self, slot: _backend.Slot, reason: str) -> None:
        self._status_changed(slot)
        tid = self._ids.get(slot.token.value)
        if tid is not None and not self._applying:
            self._op(("disable", tid, reason))

    def enabled(self, slot: _backend.Slot) -> None:
        self._status_changed(slot)
        tid = self._ids.get(slot.token.value)
        if tid is not None and not self._applying:
            self._op(("enable", tid))

    def tokens_changed(self) -> None:
        pool = self._pool
        if pool is None:
            return
        if self._status_only:
            self._status_only = False  # a disable or enable: nothing to register
        else:
            self._refresh_slots()
        requeue = []
        for _, t in list(self._timeline.reserved()):
            if not t.slot.usable:  # type: ignore[union-attr]
                self._cancel_reservation(t)
                t.state = QUEUED
                requeue.append(t)
        max_cost = pool._sched.max_cost
        for t in (*self._outbox, *self._blocked, *requeue):
            if t.state in (QUEUED, BLOCKED) and t.cost > max_cost:
                self._fail(t, self._no_tokens(t.cost))
        self._front([t for t in requeue if t.state == QUEUED])
        self._wake(None, len(self._blocked))
        if self._need_sync:
            self._kick()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._pump_task, self._probe_task):
            if task is not None:
                task.cancel()
        error = PoolClosed("the pool was closed while this lease was waiting")
        timeline = self._timeline
        for t in (*self._outbox, *self._sent, *self._blocked, *timeline.tickets()):
            state = t.state
            if state == RESERVED:
                self._cancel_reservation(t)  # queues its give-back
            if state in LIVE:
                self._fail(t, error)
        self._outbox.clear()
        self._sent = []
        self._blocked.clear()
        timeline.close()
        # Reservations to give back, and shared writes still queued (cooldowns,
        # disables), get a short chance to land: other workers rely on them.
        if self._givebacks and self._up:
            with contextlib.suppress(Exception):
                await self._redis.call(SCRIPTS["reserve"], *self._reserve_args([]))
        ops = self._ops_task
        if ops is not None and self._up:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(4 * self._timeout):
                    await asyncio.shield(ops)
        self._ops.clear()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._redis.aclose()

    # -- tokens ------------------------------------------------------------------------

    def _get_loop(self) -> asyncio.AbstractEventLoop | None:
        """The pool's loop, once it has one (``async with pool`` or a first lease)."""
        loop = self._loop
        if loop is None and self._pool is not None and self._pool._loop is not None:
            loop = self._loop = self._pool._loop
        return loop

    def _now(self) -> float:
        loop = self._get_loop()
        return loop.time() if loop is not None else -INF

    def _refresh_slots(self) -> None:
        """Rebuild the id maps from the pool's tokens; mark a sync due if the shared
        membership or limits changed."""
        pool = self._pool
        assert pool is not None
        old = self._ids
        namespace = self._keys.namespace
        ids: dict[str, str] = {}
        slots: dict[str, Slot] = {}
        capped: dict[str, Slot] = {}
        emax = 0.0
        parts: list[str] = []
        for secret, slot in pool._sched.slots.items():
            tid = old.get(secret) or token_id(namespace, secret)
            ids[secret] = tid
            slots[tid] = slot
            _unindex(slot)
            if slot.cap < _UNCAPPED or not slot.usable:
                capped[tid] = slot
            if not slot.removed:
                for w in slot.windows:
                    emax = max(emax, _US / w.rate)
                parts.append(tid + "".join(f":{w.burst!r}/{w.rate!r}" for w in slot.windows))
        self._ids, self._slots, self._capped = ids, slots, capped
        # The reserve call's fixed settings: ttl, worker, the most us per unit (JSON).
        self._config = f'[{self._ttl_ms},"{self._worker}",{emax!r}'

        signature = membership_digest(parts)
        if signature != self._signature:
            self._signature = signature
            self._digest = membership_digest([p.split(":", 1)[0] for p in parts])
            self._need_sync = True

    def _status_changed(self, slot: Slot) -> None:
        """A token was disabled or enabled; the pool calls ``tokens_changed`` next."""
        self._status_only = True
        _unindex(slot)
        tid = self._ids.get(slot.token.value)
        if tid is not None:
            if slot.usable and slot.cap >= _UNCAPPED:
                self._capped.pop(tid, None)
            else:
                self._capped[tid] = slot

    def _budget(self, tid: str, slot: Slot) -> int:
        """How many more leases this worker may reserve on ``slot`` now."""
        if not slot.usable:
            return 0
        left: int = slot.cap - slot.in_flight - self._pending.get(tid, 0)
        return left

    def _no_tokens(self, cost: float) -> NoTokensAvailable:
        pool = self._pool
        assert pool is not None
        if pool._sched.usable:
            why = f"no usable token left can take cost {cost:g}"
        else:
            why = "every token is disabled or removed"
        return NoTokensAvailable(f"{why}; see pool.stats() for the reasons")

    def _timeout_error(self, t: Ticket, soonest: float | None) -> LeaseTimeout:
        if soonest is None:
            why = "every token this worker may use is at its in-flight cap"
        else:
            why = f"the soonest token can take it in {soonest:.3f}s"
        return LeaseTimeout(
            f"no token can take a lease of cost {t.cost:g} within its timeout of "
            f"{t.lease.timeout or 0:g}s ({why}). Raise the timeout, add tokens, or lower "
            "the load; pool.stats() shows each token's state."
        )

    # -- tickets -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        loop = self._get_loop()
        assert loop is not None
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:  # pragma: no cover - every task catches what it expects
            _log.error("aurora.redis.internal_error", error=type(exc).__name__, detail=str(exc))

    def _kick(self) -> None:
        """Make sure the pump runs (it stops by itself when there is nothing to do)."""
        if not self._busy and not self._closed and self._get_loop() is not None:
            self._busy = True
            self._pump_task = self._spawn(self._pump())

    def _front(self, tickets: list[Ticket]) -> None:
        """Put ``tickets`` back at the head of the queue, oldest first."""
        if tickets:
            tickets.sort(key=lambda t: t.seq)
            self._outbox.extendleft(reversed(tickets))
            self._kick()

    def _fail(self, ticket: Ticket, error: BaseException) -> None:
        ticket.state = DONE
        if not ticket.fut.done():
            ticket.fut.set_exception(error)

    def _abandon(self, ticket: Ticket) -> None:
        """The waiting task left (cancelled, or its future failed)."""
        state = ticket.state
        if state == RESERVED:
            self._cancel_reservation(ticket)
        elif state == GRANTED:
            # Granted, but cancelled before it could resume: give everything back.
            ticket.state = DONE
            slot = ticket.slot
            pool = self._pool
            assert slot is not None
            assert pool is not None
            ticket.lease.slot = None
            slot.in_flight -= 1
            slot.leases -= 1
            slot.units -= ticket.cost
            pool._granted -= 1
            pool._sched.forget_if_idle(slot)
            self._give_back(ticket)
            if self._blocked:
                self._wake(slot, 1)
        elif state != SENT:  # a sent one learns it from its future when the reply comes
            ticket.state = DONE

    def _cancel_reservation(self, ticket: Ticket) -> None:
        """Drop a reservation that was not granted, and give it back."""
        tid = ticket.tid
        self._pending[tid] = self._pending.get(tid, 1) - 1
        ticket.state = DONE
        self._give_back(ticket)
        if self._blocked and ticket.slot is not None:
            self._wake(ticket.slot, 1)

    def _give_back(self, ticket: Ticket) -> None:
        if ticket.local:
            if self._local is not None:
                self._local.give_back(ticket.tid, ticket.undo)  # type: ignore[arg-type]
        elif ticket.undo:
            self._returns(ticket.tid, ticket.undo, ticket.at, ticket.cost)  # type: ignore[arg-type]

    def _returns(self, tid: str, undo: Sequence[str], at: str, cost: float) -> None:
        """Give a Redis reservation back, first thing in the next reserve call (so no
        later reservation of this worker can overtake the give-back)."""
        if self._up:
            self._givebacks.append((tid, undo, at, cost))
            self._kick()

    def _reserved(self, ticket: Ticket, slot: Slot, tid: str, delay: float, now: float) -> None:
        """``ticket`` holds a reservation on ``slot``, due in ``delay`` seconds."""
        ticket.state = RESERVED
        ticket.slot = slot
        ticket.tid = tid
        self._pending[tid] = self._pending.get(tid, 0) + 1
        if delay <= 0:
            self._grant(ticket, now)
            return
        ticket.due = now + delay
        self._timeline.add(self._loop, ticket.due, DUE, ticket)  # type: ignore[arg-type]

    def _grant(self, ticket: Ticket, now: float) -> None:
        if ticket.fut.done():  # its task is being cancelled and will not take it
            self._cancel_reservation(ticket)
            return
        slot = ticket.slot
        pool = self._pool
        assert slot is not None
        assert pool is not None
        tid = ticket.tid
        self._pending[tid] = self._pending.get(tid, 1) - 1
        lease = ticket.lease
        lease.slot = slot
        lease.granted_at = now
        slot.in_flight += 1
        slot.leases += 1
        slot.units += ticket.cost
        ticket.state = GRANTED
        pool._count_grant(now)
        ticket.fut.set_result(None)

    def _block(self, ticket: Ticket) -> None:
        """Wait for one of this worker's leases to end (its in-flight caps are full)."""
        ticket.state = BLOCKED
        self._blocked.append(ticket)
        if ticket.deadline < INF:
            self._timeline.add(self._loop, ticket.deadline, DEADLINE, ticket)  # type: ignore[arg-type]

    def _wake(self, slot: Slot | None, n: int) -> None:
        """Send up to ``n`` blocked waiters (that ``slot`` could serve) to try again."""
        woken: list[Ticket] = []
        keep: list[Ticket] = []
        for t in self._blocked:
            if t.state != BLOCKED:
                continue
            if len(woken) < n and (slot is None or t.cost <= slot.max_cost):
                t.state = QUEUED
                woken.append(t)
            else:
                keep.append(t)
        self._blocked = keep
        self._front(woken)

    def _on_timer(self) -> None:
        """The one timer: grant every reservation that is due, expire blocked waiters."""
        now = self._now()
        limit = now + EPS
        requeue = []
        for when, kind, t in self._timeline.pop_due(limit):
            if kind == DUE:
                if t.state != RESERVED or t.due != when:
                    continue
                slot = t.slot
                assert slot is not None
                if not slot.usable or slot.cool_until > limit:
                    # Disabled, removed or cooled since it was reserved: try again.
                    self._cancel_reservation(t)
                    t.state = QUEUED
                    requeue.append(t)
                    continue
                self._grant(t, now)
            elif t.state == BLOCKED:
                self._fail(t, self._timeout_error(t, None))
        self._front(requeue)
        self._timeline.rearm(self._loop)  # type: ignore[arg-type]

    # -- the pump: this worker's queue to Redis ------------------------------------------

    async def _pump(self) -> None:
        try:
            while await self._round():
                pass
        finally:
            self._pump_task = None
            self._busy = False
        self._after_round()

    async def _send_now(self) -> None:
        """Run one round from the waiter's own task (nothing else in flight): saves the
        hop to the pump task, the most of a lease's own cost on an idle worker."""
        self._busy = True
        try:
            await self._round()
        finally:
            self._busy = False
            self._sent = []  # (only left over if the waiter was cancelled mid-call)
            self._after_round()

    def _after_round(self) -> None:
        if (self._outbox or self._givebacks) and not self._closed and not self._recovering:
            self._kick()

    async def _round(self) -> bool:
        """Register if due, then send one batch to Redis (or to the failure policy).
        Returns whether there may be more to do."""
        if self._closed:
            return False
        if self._need_sync and self._up:
            await self._try_sync()
        if self._recovering:
            return False  # the probe is charging local usage to Redis; it kicks us after
        batch = self._take_batch()
        if not self._up:
            self._givebacks.clear()  # Redis is away: they stay spent (safe)
            if not batch:
                return False
            self._serve_down(batch)
            return True
        if not batch and not self._givebacks:
            return False
        self._sent = batch
        try:
            reply = await self._redis.call(SCRIPTS["reserve"], *self._reserve_args(batch))
            self._sent = []
            self._apply(batch, reply)
        except _Unavailable as exc:
            self._went_down(exc)
            self._sent = []
            again = []
            for t in batch:  # back to the head of the queue, for the policy
                if t.state == SENT:
                    t.state = DONE if t.fut.done() else QUEUED
                    again.append(t)
            self._front([t for t in again if t.state == QUEUED])
        except Exception as exc:
            # Not Redis being away: a refused script (WRONGTYPE: someone else's data in
            # our keys), or a bug. Fail this batch rather than leave it hanging.
            _log.error("aurora.redis.reserve_failed", error=type(exc).__name__, detail=str(exc))
            failure = BackendUnavailable(f"the Redis backend failed: {type(exc).__name__}: {exc}")
            self._sent = []
            for t in batch:
                if t.state == SENT:
                    self._fail(t, failure)
        return True

    async def _try_sync(self) -> None:
        try:
            await self._sync()
        except _Unavailable as exc:
            self._went_down(exc)
        except Exception as exc:
            _log.error("aurora.redis.sync_failed", error=type(exc).__name__, detail=str(exc))

    def _take_batch(self) -> list[Ticket]:
        pool = self._pool
        assert pool is not None
        max_cost = pool._sched.max_cost
        batch: list[Ticket] = []
        out = self._outbox
        while out and len(batch) < self._max_batch:
            t = out.popleft()
            if t.state != QUEUED:
                continue
            if t.fut.done():
                t.state = DONE
            elif t.cost > max_cost:
                self._fail(t, self._no_tokens(t.cost))
            else:
                t.state = SENT
                batch.append(t)
        return batch

    def _reserve_args(self, batch: list[Ticket]) -> tuple[list[str], list[str]]:
        """KEYS and the one JSON argument of a reserve call (written by hand: this is
        a lease's own cost on an idle worker, and ``json.dumps`` is slower)."""
        now = self._now()
        flags = 2 if self._audit else 0
        if now >= self._next_touch:
            self._next_touch = now + self._liveness / 5
            flags += 1

        gives = ",".join(
            f'["{tid}",{at},{cost!r},[{",".join(undo)}]]' for tid, undo, at, cost in self._givebacks
        )
        self._givebacks = []
        n = len(batch)
        caps = ""
        if self._capped:
            budgets = []
            for tid, slot in self._capped.items():
                left = self._budget(tid, slot)
                if left < n:  # a budget no batch this size can use up need not be sent
                    budgets.append(f'"{tid}",{left if left > 0 else 0}')
            caps = ",".join(budgets)
        leases = ",".join(
            f"{t.cost!r},-1"
            if t.deadline == INF
            else f"{t.cost!r},{max(0, math.floor((t.deadline - now) * _US))}"
            for t in batch
        )
        return self._keys_arg, [f"{self._config},{flags},[{gives}],[{caps}],[{leases}]]"]

    def _apply(self, batch: list[Ticket], reply: Any) -> None:
        now = self._now()
        parts = text(reply).split("|")
        version, resync_flag, _ = parts[0].split()
        resync = resync_flag == "1"
        retry: list[Ticket] = []
        for t, part in zip(batch, parts[1:], strict=True):
            fields = part.split()
            status, delay = int(fields[0]), int(fields[1])
            gone = t.state != SENT or t.fut.done()  # its waiter left meanwhile
            if gone:
                t.state = DONE
            if status == 0:
                tid, at, undo = fields[2], fields[3], fields[4:]
                slot = self._slots.get(tid)
                if gone or slot is None or not slot.usable:
                    # Nobody to take it, or the token went away meanwhile: give it back.
                    self._returns(tid, undo, at, t.cost)
                    if not gone:
                        t.state = QUEUED
                        retry.append(t)
                    continue
                t.undo = undo
                t.at = at
                t.local = False
                _mirror(slot, undo, int(at) - delay, now)
                self._reserved(t, slot, tid, delay / _US, now)
            elif gone:
                continue
            elif status == 1:
                self._fail(t, self._timeout_error(t, delay / _US))
            elif status == 2:
                self._block(t)
            else:
                # None of our tokens in Redis: register again (keys expired, Redis
                # restarted, a reset), then try again.
                t.tries += 1
                if t.tries > 2:
                    self._fail(t, self._no_tokens(t.cost))
                else:
                    t.state = QUEUED
                    retry.append(t)
                    resync = True
        if resync:
            self._need_sync = True
        elif version != self._version:
            self._version = version
            self._op(("state",))
        self._front(retry)

    # -- Redis is away: the failure policy -----------------------------------------------

    def _went_down(self, exc: BaseException) -> None:
        if not self._up or self._closed:
            return
        self._up = False
        self._down_since = self._now()
        cause = exc.__cause__ or exc
        fields = {"namespace": self._keys.namespace, "error": type(cause).__name__}
        if self._policy == "degrade":
            local = self._local = LocalLimiter(self._share)
            # Reservations already made in Redis count against this worker's share.
            for due, t in sorted(self._timeline.reserved(), key=lambda e: e[0]):
                local.take(t.tid, t.slot.windows, t.cost, due)  # type: ignore[union-attr]
            _log.warning("aurora.redis.degraded", share=self._share, **fields)
        elif self._policy == "fail-closed":
            _log.error("aurora.redis.failing_closed", **fields)
        else:
            _log.error("aurora.redis.failing_open", **fields)
        if self._probe_task is None:
            self._probe_task = self._spawn(self._probe())

    def _serve_down(self, batch: list[Ticket]) -> None:
        now = self._now()
        for t in batch:
            if self._policy == "fail-closed":
                self._fail(
                    t,
                    BackendUnavailable(
                        f"Redis (namespace {self._keys.namespace!r}) is unreachable and "
                        "on_failure is 'fail-closed'; leases resume when it answers again"
                    ),
                )
            elif self._policy == "fail-open":
                self._serve_open(t, now)
            else:
                self._serve_local(t, now)

    def _serve_open(self, t: Ticket, now: float) -> None:
        """Fail-open: the next token (round robin) that may take the lease, now."""
        slots = list(self._slots.items())
        n = len(slots)
        cooling: tuple[str, Slot] | None = None
        for i in range(n):
            tid, slot = slots[(self._rr + i) % n]
            if t.cost > slot.max_cost or self._budget(tid, slot) <= 0:
                continue
            if slot.cool_until > now:
                cooling = cooling or (tid, slot)
                continue
            self._rr = (self._rr + i + 1) % n
            self._reserved(t, slot, tid, 0.0, now)
            return
        if cooling is not None:
            self._reserved(t, cooling[1], cooling[0], 0.0, now)
        else:
            self._block(t)  # every token that could take it is at its in-flight cap

    def _serve_local(self, t: Ticket, now: float) -> None:
        """Degraded: reserve on this worker's local limiter (a share of each limit)."""
        local = self._local
        assert local is not None
        best: tuple[str, Slot] | None = None
        best_t = capped_t = INF
        for tid, slot in self._slots.items():
            if not slot.usable or t.cost > slot.max_cost:
                continue
            ready = max(slot.cool_until, local.ready(tid, slot.windows, t.cost))
            if ready >= best_t:
                continue
            if self._budget(tid, slot) <= 0:
                capped_t = min(capped_t, ready)
            else:
                best, best_t = (tid, slot), ready
                if ready <= now:
                    break
        wait = INF if t.deadline == INF else max(0.0, t.deadline - now)
        if best is None or best_t - now > wait + EPS:
            # (Some usable token can take the cost: the batch was checked for it.)
            if best is not None and capped_t - now > wait:
                self._fail(t, self._timeout_error(t, best_t - now))
            else:
                self._block(t)  # a token at its in-flight cap may free up in time
            return
        tid, slot = best
        at = max(now, best_t)
        t.undo = local.take(tid, slot.windows, t.cost, at)
        t.local = True
        self._reserved(t, slot, tid, at - now, now)

    async def _probe(self) -> None:
        """While Redis is away: try to come back, with backoff."""
        delay = _PROBE_FIRST
        try:
            while not self._closed:
                await asyncio.sleep(delay)
                try:
                    await self._recover()
                except Exception as exc:
                    self._recovering = False
                    self._kick()
                    if not isinstance(exc, _Unavailable):
                        _log.error(
                            "aurora.redis.probe_failed", error=type(exc).__name__, detail=str(exc)
                        )
                    delay = min(delay * 2, _PROBE_CAP)
                    continue
                return
        finally:
            self._probe_task = None

    async def _recover(self) -> None:
        """Redis answers again: register, replay what happened meanwhile, reconcile."""
        await self._sync()
        while self._replay:
            await self._do_op(self._replay[0])
            self._settled(self._replay.pop(0))
        charged = 0
        local = self._local
        if local is not None:
            # Hold this worker's queue during the one call that charges the local
            # usage to Redis, so nothing leased meanwhile escapes the account.
            self._recovering = True
            outstanding = local.outstanding(self._now())
            if outstanding:
                args: list[Any] = [self._keys.token_prefix, self._ttl_ms]
                for tid, units in outstanding.items():
                    args += [tid, len(units), *(repr(u) for u in units)]
                reply = await self._redis.call(SCRIPTS["reconcile"], [self._keys.ready], args)
                charged = int(reply)
        self._local = None
        self._up = True
        self._recovering = False
        _log.info(
            "aurora.redis.recovered",
            namespace=self._keys.namespace,
            policy=self._policy,
            down_for=round(self._now() - self._down_since, 3),
            reconciled_tokens=charged,
        )
        self._op(("state",))
        self._kick()

    # -- shared writes, in order, in the background ------------------------------------------

    def _op(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind in ("disable", "enable"):
            self._unsynced[op[1]] = self._unsynced.get(op[1], 0) + 1
        if self._up:
            self._ops.append(op)
            self._kick_ops()
        elif kind in _REPLAYED:
            self._replay.append(op)

    def _settled(self, op: tuple[Any, ...]) -> None:
        """``op`` reached Redis (or was given up)."""
        if op[0] in ("disable", "enable"):
            left = self._unsynced.get(op[1], 1) - 1
            if left > 0:
                self._unsynced[op[1]] = left
            else:
                self._unsynced.pop(op[1], None)

    def _kick_ops(self) -> None:
        if self._ops_task is None and self._ops and self._get_loop() is not None:
            self._ops_task = self._spawn(self._run_ops())

    async def _run_ops(self) -> None:
        try:
            while self._ops:
                if not self._up:
                    self._replay += [o for o in self._ops if o[0] in _REPLAYED]
                    self._ops.clear()
                    break
                op = self._ops[0]
                try:
                    await self._do_op(op)
                except _Unavailable as exc:
                    self._went_down(exc)
                    continue
                except Exception as exc:
                    _log.error("aurora.redis.write_failed", op=op[0], error=type(exc).__name__)
                if self._ops and self._ops[0] is op:
                    self._ops.popleft()
                    self._settled(op)
        finally:
            self._ops_task = None

    async def _do_op(self, op: tuple[Any, ...]) -> None:
        k = self._keys
        kind = op[0]
        if kind == "state":
            reply = await self._redis.call(
                SCRIPTS["state"],
                [k.meta, k.procs, k.digests, k.disabled, k.proc(self._worker)],
                [self._worker, self._digest],
            )
            self._apply_state(reply)
            return
        arg: Any = ""
        fills = ""
        if kind == "cool":
            seconds, since, fills = op[2], op[3], op[4]
            if since > -INF:
                seconds -= self._now() - since  # the time it waited to be written
            if seconds <= 0:
                return
            arg = math.ceil(seconds * _US)
        elif kind == "disable":
            arg = op[2]
        await self._redis.call(
            SCRIPTS["token_op"],
            [k.ready, k.meta, k.disabled],
            [k.token_prefix, op[1], kind, arg, self._ttl_ms, fills],
        )

    async def _catch_up(self) -> None:
        """Adopt the namespace's disabled states now (best effort, one round trip)."""
        if self._up:
            with contextlib.suppress(_Unavailable):
                await self._do_op(("state",))

    # -- membership -------------------------------------------------------------------

    async def _sync(self) -> None:
        """Register this worker's tokens and adopt the namespace's disabled states."""
        k = self._keys
        self._need_sync = False
        staging = k.staging(self._worker)
        entries: list[Any] = []
        for tid, slot in list(self._slots.items()):
            if not slot.removed:
                entry = [tid, repr(slot.key_cost), len(slot.windows)]
                for w in slot.windows:
                    entry += [repr(w.burst), repr(_US / w.rate)]
                entries.append(entry)
        changed = 0
        try:
            await self._redis.command("delete", staging)
            for start in range(0, len(entries), _SYNC_CHUNK):
                args: list[Any] = [k.token_prefix, self._ttl_ms]
                for entry in entries[start : start + _SYNC_CHUNK]:
                    args += entry
                keys = [k.ready, staging, k.ids, k.disabled]
                changed += int(await self._redis.call(SCRIPTS["sync_chunk"], keys, args))
            keys = [staging, k.proc(self._worker), k.procs, k.digests, k.ready, k.meta]
            keys += [k.disabled, k.ids]
            args = [self._worker, self._digest, self._ttl_ms]
            args += [math.ceil(self._liveness * 1000), k.proc_prefix]
            reply = await self._redis.call(SCRIPTS["sync_done"], keys, args)
        except BaseException:
            self._need_sync = True
            raise
        self._next_touch = self._now() + self._liveness / 5
        if changed:
            _log.warning(
                "aurora.redis.limits_differ",
                namespace=k.namespace,
                tokens=changed,
                detail="these tokens had other limits in Redis; they restart from a full bucket",
            )
        self._apply_state(reply)

    def _apply_state(self, reply: list[Any]) -> None:
        """Adopt the namespace's version, disabled tokens and membership news."""
        pool = self._pool
        assert pool is not None
        self._version = text(reply[0])
        others, differ = int(reply[1]), int(reply[2])
        if differ and differ != self._membership_warned:
            _log.warning(
                "aurora.redis.membership_differs",
                namespace=self._keys.namespace,
                workers=others + 1,
                differing=differ,
                tokens=sum(1 for s in self._slots.values() if not s.removed),
                detail="workers of this namespace hold different token sets (token files?)",
            )
        self._membership_warned = differ
        if not int(reply[3]):  # this worker's registration is gone (data lost, a reset)
            self._need_sync = True
            self._kick()
        disabled = {text(reply[i]): text(reply[i + 1]) for i in range(4, len(reply) - 1, 2)}
        self._applying = True
        try:
            for tid, slot in list(self._slots.items()):
                if slot.removed or tid in self._unsynced:
                    continue  # a local change still on its way to Redis wins
                reason = disabled.get(tid)
                if reason is not None and not slot.disabled:
                    pool._disable(slot, reason)
                elif reason is None and slot.disabled:
                    pool.enable(slot.name)
        finally:
            self._applying = False


__all__ = ["RedisBackend", "RedisTokenState", "Reservation"]
