"""Which tokens a pool serves: applying a new token set, keeping what is kept."""

from __future__ import annotations

from collections.abc import Iterable

from .. import _log
from .._core.scheduler import Slot
from .._core.tokens import Token, as_token
from .._errors import check_positive_int
from .core import PoolCore


def apply_tokens(core: PoolCore, tokens: Iterable[str | Token]) -> None:
    """Make the pool's token set ``tokens`` (see ``TokenPool.replace_tokens``).

    Validates everything before changing anything, so a bad set leaves the pool as it was.
    """
    wanted = _wanted(tokens)
    sched = core.sched
    now = core.now()
    core.names_changed()
    names = {s.name for s in sched.slots.values()}
    tries: dict[str, int] = {}
    for value, old in list(sched.slots.items()):
        if value not in wanted:
            remove(core, old)
    calibration = core.calibration
    # Drained states carry nothing (their calibrators neither): forget them, and keep the
    # rest, so a token left out a moment ago comes back as it was. Cheap: a heap's top.
    calibration.forget(sched.prune_retired(now))
    for value, token in wanted.items():
        declared = token.limits or core.limits
        trusted = token.limits is not None or core.limits_declared
        cap = token.max_in_flight if token.max_in_flight is not None else core.max_in_flight
        slot = sched.slots.get(value)
        if slot is None:
            slot = sched.revive(value)  # left out a moment ago: keep its state
            if slot is not None:
                if slot.name in names:
                    slot.name = _unique_name(token.name, names, tries)
                names.add(slot.name)
        if slot is None:
            name = _unique_name(token.name, names, tries)
            names.add(name)
            limits = calibration.starting(declared, trusted)
            sched.add(token, name, limits, cap, now, full=core.start_full)
            continue
        if core.declared(slot) != (declared, trusted):
            slot.token = token
            calibration.redeclare(slot, declared, trusted)
        slot.token = token
        sched.restore(slot)
        sched.set_cap(slot, cap)
    core.tokens_changed()


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
