"""Which tokens a pool serves: applying a new token set, keeping what is kept.

Two ways, one rule per token (:class:`_Joiner`): :func:`apply_tokens` applies a set at
once (``replace_tokens``, construction), and a reload plans the change in a worker thread
(:func:`plan_tokens`: which tokens join, which leave, which changed; only those) and
applies the plan on the loop in slices (:func:`apply_plan`), yielding to the loop between
slices, so leases keep being granted while a million-token file is applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field

from .. import _log
from .._core.gcpause import gc_paused
from .._core.limits import Limit
from .._core.scheduler import Slot
from .._core.tokens import Token, as_token, mask
from .._errors import check_positive_int
from .core import PoolCore
from .parts import PartIndex

#: At most this many tokens are applied between two yields to the event loop, and for
#: at most this long (so one slice stalls the loop a few milliseconds at most).
SLICE = 256
SLICE_SECONDS = 0.004


def apply_tokens(core: PoolCore, tokens: Iterable[str | Token]) -> None:
    """Make the pool's token set ``tokens`` (see ``TokenPool.replace_tokens``).

    Validates everything before changing anything, so a bad set leaves the pool as it was.
    """
    with gc_paused(len(core.sched.slots) + (len(tokens) if isinstance(tokens, Sized) else 0)):
        wanted = _wanted(tokens)
        sched = core.sched
        core.names_changed()
        joiner = _Joiner(core, {s.name for s in sched.slots.values()}, index=True)
        for value, old in list(sched.slots.items()):
            if value not in wanted:
                remove(core, old)
        joiner.prune()
        for value, token in wanted.items():
            joiner.join(value, token)
    joiner.indexed()
    core.tokens_changed()


class _Joiner:
    """Brings tokens into the pool one at a time: new ones join (named uniquely), ones
    left out a moment ago come back with their state, kept ones take new limits or caps.
    The one rule, for :func:`apply_tokens` and a reload's slices alike."""

    __slots__ = ("_fresh", "_index", "_starting", "_tries", "core", "names", "now")

    def __init__(self, core: PoolCore, names: set[str], *, index: bool) -> None:
        self.core = core
        self.names = names  # the masked names in use
        self.now = core.now()
        self._tries: dict[str, int] = {}
        self._starting: dict[tuple[tuple[Limit, ...], bool], tuple[Limit, ...]] = {}
        self._index = index  # hand new secrets to the redactor (else: indexed already)
        self._fresh: list[str] = []

    def prune(self) -> None:
        """Drained states carry nothing (their calibrators neither): forget them, and
        keep the rest, so a token left out a moment ago comes back as it was. Cheap: a
        heap's top."""
        core = self.core
        core.calibration.forget(core.sched.prune_retired(self.now))

    def join(self, value: str, token: Token) -> str | None:
        """Apply ``token``; returns its name if it joined (new, or back), else ``None``."""
        core = self.core
        sched = core.sched
        declared = token.limits or core.limits
        trusted = token.limits is not None or core.limits_declared
        cap = token.max_in_flight if token.max_in_flight is not None else core.max_in_flight
        slot = sched.slots.get(value)
        joined = None
        if slot is None:
            slot = sched.revive(value)  # left out a moment ago: keep its state
            if slot is not None:
                if slot.name in self.names:
                    slot.name = _unique_name(token.name, self.names, self._tries)
                self.names.add(slot.name)
                joined = slot.name
        if slot is None:
            name = _unique_name(token.name, self.names, self._tries)
            self.names.add(name)
            key = (declared, trusted)
            limits = self._starting.get(key)
            if limits is None:
                limits = self._starting[key] = core.calibration.starting(declared, trusted)
            sched.add(token, name, limits, cap, self.now, full=core.start_full)
            if self._index:
                self._fresh.append(value)
            return name
        if slot.removed:
            joined = slot.name
        if core.declared(slot) != (declared, trusted):
            slot.token = token
            core.calibration.redeclare(slot, declared, trusted)
        slot.token = token
        sched.restore(slot)
        sched.set_cap(slot, cap)
        return joined

    def indexed(self) -> None:
        """Hand the secrets that joined to the redactor."""
        if self._fresh:
            self.core.redact.add(self._fresh)
            self._fresh = []


# -- a reload: planned in a worker thread, applied in slices ---------------------------


@dataclass(slots=True)
class Plan:
    """What applying a token set changes, worked out from a copy of the pool's slots."""

    membership: int  #: the scheduler's membership count when the copy was taken
    #: New, back, or with new limits or cap: a token, or its secret (made a ``Token`` as
    #: it joins, on the loop: a hundred thousand objects made in a worker thread would be
    #: walked at once by the collector's next young collection, a long stall).
    join: list[str | Token]
    leave: list[Slot]  #: in service, not in the set
    kept: int  #: in service and in the set
    taken: set[str]  #: the masked names in use that joining tokens could take
    index: PartIndex | None = None  #: the redaction index of the secrets that join
    replaces: tuple[PartIndex, ...] = ()  #: the redactor's indexes ``index`` replaces
    added: dict[str, str] = field(default_factory=dict)  #: secret -> name, as joined
    removed: list[str] = field(default_factory=list)  #: names that left, as applied


@dataclass(frozen=True, slots=True)
class Copy:
    """What a plan is made from, taken on the loop: the slots, and for a merge of the
    redaction indexes every known secret."""

    membership: int
    slots: list[Slot]
    known: list[str] | None
    replaces: tuple[PartIndex, ...]

    @classmethod
    def of(cls, core: PoolCore, *, merge: bool) -> Copy:
        sched = core.sched
        redact = core.redact
        merge = merge and redact.settled()  # (never waits for a thread building one)
        replaces = redact.indexes() if merge else ()
        known = redact.known() if merge else None
        return cls(sched.membership, list(sched.slots.values()), known, replaces)


def plan_tokens(values: Sequence[str | Token], copy: Copy) -> Plan:
    """The plan that makes the pool's set ``values`` (each once, validated: a parsed
    token file's). Pure: run it in a worker thread; it only reads the slots copied."""
    with gc_paused(len(values)):  # its sets of a million entries are gone by the end
        return _plan(values, copy)


def _plan(values: Sequence[str | Token], copy: Copy) -> Plan:
    current: dict[str, Slot] = {}
    for slot in copy.slots:
        if not slot.removed:
            current[slot.token.value] = slot
    join: list[str | Token] = []
    fresh: list[str] = []
    wanted: set[str] = set()
    for item in values:
        value = item if isinstance(item, str) else item.value
        wanted.add(value)
        held = current.get(value)
        if held is None:
            fresh.append(value)
            join.append(item)
        elif isinstance(item, Token):
            if (held.token.limits, held.token.max_in_flight) != (item.limits, item.max_in_flight):
                join.append(item)
        elif held.token.limits is not None or held.token.max_in_flight is not None:
            join.append(item)  # its annotations were dropped
    leave = [slot for value, slot in current.items() if value not in wanted]
    # The names a joining token could collide with (its masked name, or that name#n).
    masked = {mask(item) if isinstance(item, str) else item.name for item in join}
    taken = {slot.name for slot in copy.slots if slot.name.partition("#")[0] in masked}
    plan = Plan(copy.membership, join, leave, len(wanted) - len(fresh), taken)
    copy.slots.clear()  # (here: a young million-entry list costs the next collection)
    if copy.known is not None:
        plan.index, plan.replaces = PartIndex([*copy.known, *fresh]), copy.replaces
    elif fresh:
        plan.index = PartIndex(fresh)
    return plan


async def apply_plan(core: PoolCore, plan: Plan) -> bool:
    """Apply ``plan`` in slices (joining first, then leaving, so the pool never looks
    empty half way), yielding to the loop after each. Returns ``False``, having applied
    part of it, when the pool's membership changed otherwise since the copy (another
    ``replace_tokens``): plan again from a new copy."""
    sched = core.sched
    if sched.membership != plan.membership:
        return False
    if plan.index is not None:
        core.redact.add_index(plan.index, replaces=plan.replaces)
    core.names_changed()
    joiner = _Joiner(core, plan.taken, index=False)
    joiner.prune()
    done = 0
    while done < len(plan.join):
        stop = min(done + SLICE, len(plan.join))
        deadline = time.perf_counter() + SLICE_SECONDS
        while done < stop:
            token = as_token(plan.join[done])
            done += 1
            name = joiner.join(token.value, token)
            if name is not None:
                plan.added[token.value] = name
            if time.perf_counter() > deadline:
                break
        if not await _yield(core):
            return False
    for start in range(0, len(plan.leave), SLICE):
        for slot in plan.leave[start : start + SLICE]:
            if sched.slots.get(slot.token.value) is slot and not slot.removed:
                plan.removed.append(slot.name)
                remove(core, slot)
        if not await _yield(core):
            return False
    core.tokens_changed()
    return True


async def _yield(core: PoolCore) -> bool:
    """Serve waiters the slice made servable, let the loop run, and say whether the
    membership is still only what this plan did."""
    sched = core.sched
    if sched.waiting:
        core.dispatch()
    expected = sched.membership
    await asyncio.sleep(0)
    return sched.membership == expected


def _wanted(tokens: Iterable[str | Token]) -> dict[str, Token]:
    """The tokens by secret, first of each kept; duplicates logged by position."""
    if isinstance(tokens, str | bytes):
        raise TypeError(
            "tokens must be a list of tokens, not one string (which would make a token of "
            "each character): TokenPool([token]), or TokenPool.from_file(path)"
        )
    wanted: dict[str, Token] = {}
    duplicates: dict[str, list[int]] = {}
    for position, item in enumerate(tokens, 1):
        token = as_token(item)
        if token.value in wanted:
            duplicates.setdefault(token.value, [])
        else:
            wanted[token.value] = token
        if token.value in duplicates:
            duplicates[token.value].append(position)
    for value, positions in duplicates.items():
        _log.warning(
            "aurora.tokens.duplicate",
            source="tokens given",
            token=wanted[value].name,
            positions=positions,
            kept="the first",
        )
    for token in wanted.values():
        check_positive_int(f"Token {token.name} max_in_flight", token.max_in_flight)
    return wanted


def remove(core: PoolCore, slot: Slot) -> None:
    """Mark ``slot`` removed: it takes no new leases and finishes those in flight."""
    if slot.removed:
        return
    core.sched.remove(slot)
    _log.info("aurora.token.removed", token=slot.name, in_flight=slot.in_flight)


def _unique_name(name: str, taken: set[str], tries: dict[str, int]) -> str:
    """``name``, or ``name#2``, ``name#3``... when masked names collide."""
    if name not in taken:
        return name
    n = tries.get(name, 1)
    while True:
        n += 1
        candidate = f"{name}#{n}"
        if candidate not in taken:
            tries[name] = n
            return candidate
