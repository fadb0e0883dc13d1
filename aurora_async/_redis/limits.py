"""Learned limits, shared: what a worker's calibration decides for a token is written to
the token's state in Redis (``scripts_limits.RELIMIT``), where the reserve script
enforces it for every worker at once; the other workers adopt it for their own view
(their slots' windows, their ``stats()``) when a reply shows them a newer version of
the token's limits, and at registration (a worker that restarts adopts what was
learned from the same declared limits).

A token's limits in Redis carry a version (``lv``), bumped on every change. Each reserve
reply names the version of the token it reserved; a worker that knows another one reads
the limits (``LIMITS``) in the background. A change of this worker's own that is still on
its way wins over what Redis says, as disables and enables do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from .. import _log
from .._core.costs import Costs, part_of
from .._core.limits import REQUESTS, Limit
from .._core.scheduler import Slot
from .context import Context
from .records import text

_US = 1_000_000
#: Two limits whose bursts and drain times agree this closely are the same (limits
#: registered rather than learned come back from Redis as a rate per second).
_CLOSE = 1e-12


def declared_digest(limits: Sequence[Limit], trusted: bool) -> str:
    """A short digest of a token's declared limits (and whether the user declared them):
    what learned limits belong to. Never of the secret."""
    parts = [f"{lim.rate!r}/{lim.per!r}/{lim.burst!r}/{int(lim.burst_given)}" for lim in limits]
    # Resources, scopes and calendars (only when some limit has one: the digests of
    # plain limits stay what they were).
    kinds = [f"{lim.unit}/{lim.scope or ''}/{lim.calendar or ''}" for lim in limits]
    if any(lim.unit != REQUESTS or lim.scope or lim.calendar for lim in limits):
        parts += kinds
    parts.append("trusted" if trusted else "default")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:12]


def windows_of(limits: Sequence[Limit]) -> list[tuple[float, float]]:
    """Burst and microseconds per unit of each limit, as the scripts store them."""
    return [(lim.burst, _US / lim.per_second) for lim in limits]


def limits_text(limits: Sequence[Limit]) -> str:
    return ";".join(f"{lim.rate!r}/{lim.per!r}/{lim.burst!r}" for lim in limits)


def parse_shared(shared: str) -> tuple[tuple[Limit, ...], list[tuple[float, float]]]:
    """``"<text>|<burst> <us per unit> ..."`` (the scripts' ``shared_of``): the limits,
    and each window's burst and us per unit. Without the text (limits registered, not
    learned), each window as a rate per second."""
    spec, _, numbers = shared.partition("|")
    values = [float(x) for x in numbers.split()]
    windows = list(zip(values[::2], values[1::2], strict=True))
    if spec:
        limits = []
        for part in spec.split(";"):
            rate, per, burst = (float(x) for x in part.split("/"))
            limits.append(Limit(rate, per, burst))
        return tuple(limits), windows
    return tuple(Limit(_US / e, 1.0, b) for b, e in windows), windows


def same_windows(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> bool:
    return len(a) == len(b) and all(
        abs(x - y) <= _CLOSE * max(abs(x), abs(y))
        for p, q in zip(a, b, strict=True)
        for x, y in zip(p, q, strict=True)
    )


def settle_deltas(reserved: float, actual: float) -> dict[str, float]:
    """What a settle changes, resource by resource: ``actual`` less ``reserved`` units
    (``Scheduler.settle``'s differences), the resources that did not change left out."""
    units = {REQUESTS, *_parts(reserved), *_parts(actual)}
    deltas = {unit: part_of(actual, unit) - part_of(reserved, unit) for unit in sorted(units)}
    return {unit: delta for unit, delta in deltas.items() if delta}


def _parts(cost: float) -> list[str]:
    return list(cost.parts) if isinstance(cost, Costs) else []


def relimit_args(tid: str, ttl_ms: int, limits: Sequence[Limit], was: Sequence[Limit]) -> list[Any]:
    """The ``RELIMIT`` script's arguments for a change of ``tid`` from ``was`` to
    ``limits``."""
    args: list[Any] = [tid, ttl_ms, limits_text(limits), len(limits)]
    for burst, us in windows_of(limits):
        args += [repr(burst), repr(us)]
    args.append(len(was))
    for burst, us in windows_of(was):
        args += [repr(burst), repr(us)]
    return args


class SharedLimits:
    """This worker's knowledge of its tokens' shared limits: their versions, its own
    changes on their way to Redis, and adoption of the others' changes.

    :param slot_of: this worker's slot of a token id (``None``: not one of its tokens).
    :param changed: some token's limits changed here (the reserve call's settings
        depend on them).
    """

    __slots__ = ("_changed", "_ctx", "_slot_of", "fetching", "pending", "versions")

    def __init__(
        self, ctx: Context, slot_of: Callable[[str], Slot | None], changed: Callable[[], None]
    ) -> None:
        self._ctx = ctx
        self._slot_of = slot_of
        self._changed = changed
        self.versions: dict[str, str] = {}  #: token id -> version of its limits, as known
        self.pending: dict[str, int] = {}  #: token id -> changes of ours on their way
        self.fetching: set[str] = set()  #: token ids whose limits are being read

    # -- this worker's own changes ------------------------------------------------------

    def sent(self, tid: str) -> None:
        """A change of ``tid``'s limits is on its way: it wins over what Redis says."""
        self.pending[tid] = self.pending.get(tid, 0) + 1

    def settle(self, tid: str) -> None:
        """One change of ``tid``'s limits reached Redis (or was given up)."""
        left = self.pending.get(tid, 1) - 1
        if left > 0:
            self.pending[tid] = left
        else:
            self.pending.pop(tid, None)

    def answered(self, tid: str, reply: Sequence[Any]) -> bool:
        """The ``RELIMIT`` reply for a change of ``tid`` (still counted as pending).
        Returns whether the token had no state (register again)."""
        status, version, shared = int(reply[0]), text(reply[1]), text(reply[2])
        if status == 2:
            return True
        self.versions[tid] = version
        if shared and self.pending.get(tid, 0) <= 1:  # refused, and no later change of ours
            self._adopt(tid, shared)
        return False

    # -- the others' changes ------------------------------------------------------------

    def seen(self, tid: str, version: str) -> bool:
        """A reply showed ``tid``'s limits at ``version``: whether to read them now."""
        if (
            version == self.versions.get(tid)
            or tid in self.pending
            or tid in self.fetching
            or self._slot_of(tid) is None
        ):
            return False
        self.fetching.add(tid)
        return True

    def fetched(self, tid: str, reply: Sequence[Any] | None) -> None:
        """The ``LIMITS`` reply for ``tid`` (``None``: the read failed)."""
        self.fetching.discard(tid)
        if reply is not None:
            self.adopt(tid, text(reply[0]), text(reply[1]))

    def adopt(self, tid: str, version: str, shared: str) -> None:
        """Redis has ``tid``'s limits at ``version`` (``shared``: as ``shared_of`` says,
        or empty to keep this worker's own): take them, unless a change of ours is on
        its way."""
        if not version or tid in self.pending:
            return
        self.versions[tid] = version
        if shared:
            self._adopt(tid, shared)

    def _adopt(self, tid: str, shared: str) -> None:
        slot = self._slot_of(tid)
        if slot is None or slot.removed:
            return
        limits, windows = parse_shared(shared)
        if same_windows(windows, [(w.burst, _US / w.rate) for w in slot.windows]):
            return
        was = [str(w.limit) for w in slot.windows]
        self._ctx.port.adopt(slot, limits)
        self._changed()
        _log.info(
            "aurora.redis.limits_adopted",
            token=slot.name,
            limits=[str(lim) for lim in limits],
            was=was,
        )
