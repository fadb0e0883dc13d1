"""Which tokens this worker holds in the namespace, and the states it shares with the
others.

A worker registers its tokens (by id, with their limits) on first use, after a reload
that changes the set or declared limits, and whenever Redis has lost them; a heartbeat
on its reserve calls keeps it alive. From the namespace it adopts the version of the
shared states, the disabled tokens, news of workers whose token sets differ, and the
limits other workers' calibration learned for its tokens (``limits.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import _log
from .._core.buckets import CalendarWindow
from .._core.limits import REQUESTS
from .._core.scheduler import Slot
from .calendars import Calendars, calendar_key
from .context import Context
from .keys import membership_digest, token_id
from .limits import SharedLimits, declared_digest
from .records import text
from .scripts import SCRIPTS

_US = 1_000_000
#: Tokens registered per sync call, so one call stays well within the timeout.
_SYNC_CHUNK = 500


class Membership:
    """This worker's tokens by id, its registration, and the shared states it adopted.

    :param liveness: how long a worker counts as alive without a call (its heartbeat
        rides on its reserve calls, at most every fifth of this).
    :param kick: make sure a reserve call runs (to register again).
    """

    __slots__ = (
        "_ctx",
        "_kick",
        "_signature",
        "_warned",
        "applying",
        "calendars",
        "capped",
        "config",
        "digest",
        "ids",
        "limits",
        "liveness",
        "need_sync",
        "next_touch",
        "registered",
        "slots",
        "status_only",
        "unsynced",
        "version",
        "workers",
    )

    def __init__(self, ctx: Context, liveness: float, kick: Callable[[], None]) -> None:
        self._ctx = ctx
        self._kick = kick
        self.liveness = liveness
        self.ids: dict[str, str] = {}  #: secret -> id
        self.slots: dict[str, Slot] = {}  #: id -> slot
        self.capped: dict[str, Slot] = {}  #: whose budget the reserve script must know
        self.unsynced: dict[str, int] = {}  #: ids with disable/enable writes in flight
        self.config = ""  #: the reserve call's fixed settings (see refresh)
        #: the calendars of this worker's tokens' quotas (sent with calls that need them)
        self.calendars = Calendars()
        self._signature = ""  # of ids and limits: a change means a sync
        self.digest = ""  #: of ids: what workers compare
        self.need_sync = True
        self.version = ""  #: of the namespace's shared states, as last seen
        #: live workers of the namespace (this one too) at the last membership read;
        #: ``None`` until this worker has reached Redis once
        self.workers: int | None = None
        #: ids this worker has registered: one whose state Redis has lost comes back full
        self.registered: set[str] = set()
        self.next_touch = -math.inf  #: when the next reserve call carries a heartbeat
        self.status_only = False  #: the next token change is a disable or enable
        self.applying = False  #: adopting shared states (not to be written back)
        self._warned = -1
        #: the versions of this worker's tokens' shared limits, and their adoption
        self.limits = SharedLimits(ctx, self.slots_get, self.configure)

    def tid(self, slot: Slot) -> str | None:
        """``slot``'s id, if it is one of this worker's tokens."""
        return self.ids.get(slot.token.value)

    def slots_get(self, tid: str) -> Slot | None:
        """This worker's slot of ``tid`` (``None``: not one of its tokens)."""
        return self.slots.get(tid)

    def resync(self) -> None:
        """Register again (Redis has lost a token's state)."""
        self.need_sync = True
        self._kick()

    def names(self) -> dict[str, str]:
        """Masked names of this worker's tokens, by id."""
        return {tid: s.name for tid, s in self.slots.items()}

    def refresh(self) -> None:
        """Rebuild the id maps from the pool's tokens; mark a sync due if the shared
        membership or limits changed."""
        ctx = self._ctx
        port = ctx.port
        old = self.ids
        namespace = ctx.keys.namespace
        ids: dict[str, str] = {}
        slots: dict[str, Slot] = {}
        capped: dict[str, Slot] = {}
        parts: list[str] = []
        for secret, slot in port.slots():
            tid = old.get(secret) or token_id(namespace, secret)
            ids[secret] = tid
            slots[tid] = slot
            port.unindex(slot)
            if port.capped(slot) or not slot.usable:
                capped[tid] = slot
            if not slot.removed:
                # Declared limits, not effective ones: those move with calibration,
                # which shares them by itself (``SharedLimits``).
                parts.append(f"{tid}:{declared_digest(*port.declared(slot))}")
        self.ids, self.slots, self.capped = ids, slots, capped
        self.configure()

        signature = membership_digest(parts)
        if signature != self._signature:
            self._signature = signature
            self.digest = membership_digest([p.split(":", 1)[0] for p in parts])
            self.need_sync = True

    def configure(self) -> None:
        """The reserve call's fixed settings: ttl, worker, the most us per unit any
        leaky window of requests in no scope of this worker's tokens has (what a lease
        of less than a key cost may gain on a token's key), the call timeout in us
        (JSON); and the calendars of their quotas. Again when limits change."""
        ctx = self._ctx
        emax = 0.0
        calendars = []
        for slot in self.slots.values():
            if not slot.removed:
                for w in slot.windows:
                    if isinstance(w, CalendarWindow):
                        calendars.append(w.calendar)
                    elif w.unit == REQUESTS and w.scope is None:
                        emax = max(emax, _US / w.rate)
        self.calendars.configure(calendars)
        tau = math.ceil(ctx.redis.timeout * _US)
        self.config = f'[{ctx.ttl_ms},"{ctx.worker}",{emax!r},{tau}'

    def status_changed(self, slot: Slot) -> None:
        """A token was disabled or enabled; the pool calls ``tokens_changed`` next."""
        port = self._ctx.port
        self.status_only = True
        port.unindex(slot)
        tid = self.tid(slot)
        if tid is not None:
            if slot.usable and not port.capped(slot):
                self.capped.pop(tid, None)
            else:
                self.capped[tid] = slot

    def heartbeat(self, now: float) -> int:
        """1 if the next reserve call must carry a heartbeat (and it will), else 0."""
        if now >= self.next_touch:
            self.next_touch = now + self.liveness / 5
            return 1
        return 0

    # -- disable and enable writes on their way to Redis ----------------------------------

    def hold(self, tid: str) -> None:
        """A disable or enable of ``tid`` is on its way: it wins over what Redis says."""
        self.unsynced[tid] = self.unsynced.get(tid, 0) + 1

    def settle(self, tid: str) -> None:
        """One disable or enable of ``tid`` reached Redis (or was given up)."""
        left = self.unsynced.get(tid, 1) - 1
        if left > 0:
            self.unsynced[tid] = left
        else:
            self.unsynced.pop(tid, None)

    # -- talking to Redis ---------------------------------------------------------------

    async def sync(self) -> None:
        """Register this worker's tokens and adopt the namespace's disabled states."""
        ctx = self._ctx
        k = ctx.keys
        redis = ctx.redis
        self.need_sync = False
        staging = k.staging(ctx.worker)
        # A state missing although this worker registered it and has talked to Redis
        # within the keys' lifetime was lost, not expired.
        entries = self._entries(ctx.now() - redis.answered_at < ctx.ttl_ms / 1000)
        changed = 0
        try:
            await redis.command("delete", staging)
            for start in range(0, len(entries), _SYNC_CHUNK):
                chunk = entries[start : start + _SYNC_CHUNK]
                args: list[Any] = [k.token_prefix, ctx.ttl_ms]
                for entry in chunk:
                    args += entry
                keys = [k.ready, staging, k.ids, k.disabled]
                reply = await redis.call(SCRIPTS["sync_chunk"], keys, args)
                changed += int(reply[0])
                for j, entry in enumerate(chunk):
                    self.limits.adopt(entry[0], text(reply[1 + 2 * j]), text(reply[2 + 2 * j]))
            keys = [staging, k.proc(ctx.worker), k.procs, k.digests, k.ready, k.meta]
            keys += [k.disabled, k.ids]
            args = [ctx.worker, self.digest, ctx.ttl_ms]
            args += [math.ceil(self.liveness * 1000), k.proc_prefix]
            reply = await redis.call(SCRIPTS["sync_done"], keys, args)
        except BaseException:
            self.need_sync = True
            raise
        self.next_touch = ctx.now() + self.liveness / 5
        self.registered.update(entry[0] for entry in entries)
        if changed:
            _log.warning(
                "aurora.redis.limits_differ",
                namespace=k.namespace,
                tokens=changed,
                detail="these tokens had other limits in Redis; they restart from a full bucket",
            )
        self.apply_state(reply)

    def _entries(self, recent: bool) -> list[list[Any]]:
        """What registers each token: id, key cost, the digest of its declared limits,
        whether its state would be lost if missing (1: this worker registered it, and
        has talked to Redis ``recent``-ly; such a state starts full), then per window its
        burst, us per unit, unit, scope ("": none) and calendar ("": a leaky bucket)."""
        port = self._ctx.port
        entries: list[list[Any]] = []
        for tid, slot in list(self.slots.items()):
            if not slot.removed:
                dg = declared_digest(*port.declared(slot))
                lost = 1 if recent and tid in self.registered else 0
                key_cost = float(slot.key_cost)
                entry: list[Any] = [tid, repr(key_cost), dg, lost, len(slot.windows)]
                for w in slot.windows:
                    cal = calendar_key(w.calendar) if isinstance(w, CalendarWindow) else ""
                    entry += [repr(w.burst), repr(_US / w.rate), w.unit, w.scope or "", cal]
                entries.append(entry)
        return entries

    async def fetch_state(self) -> None:
        """Read the namespace's shared states now (one round trip), and adopt them."""
        ctx = self._ctx
        k = ctx.keys
        reply = await ctx.redis.call(
            SCRIPTS["state"],
            [k.meta, k.procs, k.digests, k.disabled, k.proc(ctx.worker)],
            [ctx.worker, self.digest],
        )
        self.apply_state(reply)

    def apply_state(self, reply: list[Any]) -> None:
        """Adopt the namespace's version, disabled tokens and membership news."""
        self.version = text(reply[0])
        others, differ = int(reply[1]), int(reply[2])
        self.workers = others + 1
        if differ and differ != self._warned:
            _log.warning(
                "aurora.redis.membership_differs",
                namespace=self._ctx.keys.namespace,
                workers=others + 1,
                differing=differ,
                tokens=sum(1 for s in self.slots.values() if not s.removed),
                detail="workers of this namespace hold different token sets (token files?)",
            )
        self._warned = differ
        if not int(reply[3]):  # this worker's registration is gone (data lost, a reset)
            self.need_sync = True
            self._kick()
        disabled = {text(reply[i]): text(reply[i + 1]) for i in range(4, len(reply) - 1, 2)}
        self._adopt(disabled)

    def _adopt(self, disabled: dict[str, str]) -> None:
        """Disable and enable this worker's tokens as the namespace has them."""
        port = self._ctx.port
        self.applying = True
        try:
            for tid, slot in list(self.slots.items()):
                if slot.removed or tid in self.unsynced:
                    continue  # a local change still on its way to Redis wins
                reason = disabled.get(tid)
                if reason is not None and not slot.disabled:
                    port.disable(slot, reason)
                elif reason is None and slot.disabled:
                    port.enable(slot)
        finally:
            self.applying = False
