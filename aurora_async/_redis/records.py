"""What :meth:`RedisBackend.inspect` and :meth:`RedisBackend.audit_log` return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_US = 1_000_000


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class RedisTokenState:
    """One token of a namespace as Redis sees it."""

    id: str  #: the token's id in Redis (a keyed hash, never the secret)
    name: str | None  #: its masked name, if this pool holds the token
    state: str  #: "active", "cooling", "disabled" or "idle" (no live worker holds it)
    cooldown_left: float  #: seconds
    next_free_in: float  #: seconds until it can fire a unit lease
    reason: str | None  #: why it is disabled
    limits: tuple[str, ...]  #: e.g. ("10/s (burst 10)",)


@dataclass(frozen=True, slots=True)
class Reservation:
    """One entry of the audit log (``RedisBackend(audit=True)``)."""

    at_us: int  #: the reservation's time on the Redis server's clock, in microseconds
    id: str  #: the token's id
    name: str | None  #: its masked name, if this pool holds the token
    cost: float  #: requests; negative for a reservation given back
    worker: str  #: the id of the worker that made it
    #: units of other resources (``{"tokens": 1200.0}``), and the scope, if leased in one
    parts: Mapping[str, float] = field(default_factory=dict)
    scope: str | None = None


def token_states(reply: Sequence[Any], names: Mapping[str, str]) -> list[RedisTokenState]:
    """Parse the inspect script's reply: server now, then five fields per token."""
    now = int(text(reply[0]))
    result = []
    for i in range(1, len(reply), 5):
        tid, cool, score, reason, limits = (text(x) for x in reply[i : i + 5])
        cool_left = max(0.0, (int(cool) - now) / _US) if cool else 0.0
        if reason:
            state = "disabled"
        elif not score:
            state = "idle"
        elif cool_left > 0:
            state = "cooling"
        else:
            state = "active"
        shown = []
        for part in filter(None, limits.split(";")):
            burst, us = (float(x) for x in part.split("/"))
            shown.append(f"{_US / us:g}/s (burst {burst:g})")
        result.append(
            RedisTokenState(
                id=tid,
                name=names.get(tid),
                state=state,
                cooldown_left=cool_left,
                next_free_in=max(0.0, (float(score) - now) / _US) if score else 0.0,
                reason=reason or None,
                limits=tuple(shown),
            )
        )
    result.sort(key=lambda r: (r.name is None, r.name or r.id))
    return result


def reservations(raw: Sequence[Any], names: Mapping[str, str]) -> list[Reservation]:
    """Parse the audit list: ``"<at us> <id> <cost> <worker>"`` per entry, the cost being
    requests, then ``,unit=units`` per other resource and ``,@scope`` if any."""
    entries = []
    for line in raw:
        at, tid, cost, worker = text(line).split()
        requests, *rest = cost.split(",")
        parts: dict[str, float] = {}
        scope = None
        for piece in rest:
            if piece.startswith("@"):
                scope = piece[1:]
            else:
                unit, _, units = piece.partition("=")
                parts[unit] = float(units)
        entries.append(
            Reservation(int(at), tid, names.get(tid), float(requests), worker, parts, scope)
        )
    return entries
