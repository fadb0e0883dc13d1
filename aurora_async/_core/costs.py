"""``Costs``: what one lease takes from each resource its token's limits count.

A token's limit windows each count one resource (``Limit.unit``): ``"requests"`` by
default, or ``"tokens"``, ``"input_tokens"``, ``"points"``... A lease's cost is a plain
number (requests, as it always was) or a :class:`Costs`: a ``float`` whose value is the
request units, with the other resources' units in :attr:`Costs.parts`.

Being a ``float`` is what keeps the scheduler's scalar paths right without a branch: a
requests window takes ``float(cost)``, the cost checks compare request units, and the
counters add them. Only windows of other resources read :attr:`Costs.parts`, and only
tokens that have such windows (``MixedSlot``) look. A ``Costs`` equals no plain number
(nor a ``Costs`` with other parts), so the fast paths, which grant a cost equal to a
token's key cost without recomputing anything, leave vectors to the general path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .limits import REQUESTS, check_scope, check_unit


class Costs(float):
    """A lease's cost in several resources: ``float(costs)`` request units, and
    :attr:`parts` for every other resource it names (each above 0)."""

    __slots__ = ("_hash", "checked", "parts", "plan", "scope")

    parts: dict[str, float]
    scope: str | None  #: the scope it is leased in: only that scope's windows count it
    #: The scheduler's own cache (``aurora_async._core.vector``): the units this cost
    #: takes from each window of the last token shape it was leased on.
    plan: tuple[tuple[str, ...], tuple[float, ...] | None] | None
    #: Also the scheduler's: the mark (``TokenIndex.tiers_mark``) of the scheduler and
    #: tiers this cost was last checked against (``TokenSet.check_parts``; None: never,
    #: not even its numbers, for a cost made by hand).
    checked: object
    _hash: int | None

    def __new__(cls, requests: float, parts: dict[str, float], scope: str | None = None) -> Costs:
        self = float.__new__(cls, requests)
        self.parts = parts
        self.scope = scope
        self._hash = None  # on first use: most costs are never hashed (never queued)
        self.plan = None
        self.checked = None
        return self

    def part(self, unit: str) -> float:
        """Its units of the resource ``unit`` (0 for one it does not name)."""
        if unit == REQUESTS:
            return float(self)
        return self.parts.get(unit, 0.0)

    def as_dict(self) -> dict[str, float]:
        """Every resource it names, requests first."""
        return {REQUESTS: float(self), **self.parts}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Costs)
            and not isinstance(other, KeyCost)
            and float(self) == float(other)
            and self.parts == other.parts
            and self.scope == other.scope
        )

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        found = self._hash
        if found is None:
            found = self._hash = hash((float(self), frozenset(self.parts.items()), self.scope))
        return found

    def __repr__(self) -> str:
        inner = ", ".join(f"{unit}={value:g}" for unit, value in self.as_dict().items())
        scope = "" if self.scope is None else f", scope={self.scope!r}"
        return f"Costs({inner}{scope})"

    def __str__(self) -> str:
        text = " + ".join(f"{value:g} {unit}" for unit, value in self.as_dict().items())
        return text if self.scope is None else f"{text} in {self.scope}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __reduce__(self) -> tuple[object, ...]:
        return (Costs, (float(self), dict(self.parts), self.scope))


class KeyCost(Costs):
    """The cost a mixed token's index key is computed for: its key cost in requests and
    nothing in any other resource (so the key is also when every other window is out of
    debt). It equals no lease's cost, itself included: the scheduler's fast paths, which
    compare a lease's cost with the token's key cost, leave such tokens to the general
    path, which reads every window's own part."""

    __slots__ = ()

    def __new__(cls, requests: float) -> KeyCost:
        return super().__new__(cls, requests, {})  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"KeyCost({float(self):g})"

    def __reduce__(self) -> tuple[object, ...]:
        return (KeyCost, (float(self),))


def part_of(cost: float, unit: str) -> float:
    """``cost``'s units of the resource ``unit``: a plain number is all requests."""
    if unit == REQUESTS:
        return float(cost)
    if isinstance(cost, Costs):
        return cost.parts.get(unit, 0.0)
    return 0.0


def scope_of(cost: float) -> str | None:
    """The scope ``cost`` is leased in (``None``: no scope)."""
    return cost.scope if isinstance(cost, Costs) else None


def cheaper(cost: float, than: float) -> bool:
    """Whether a lease of ``cost`` may fit a token that ``than`` does not fit: it asks
    less of some resource, or is leased in another scope. (For plain numbers: ``cost <
    than``.)"""
    if float(cost) < float(than) or scope_of(cost) != scope_of(than):
        return True
    mine = cost.parts if isinstance(cost, Costs) else {}
    theirs = than.parts if isinstance(than, Costs) else {}
    return any(mine.get(unit, 0.0) < value for unit, value in theirs.items())


#: Resource names already checked (a handful in any program; bounded all the same).
_CHECKED: set[object] = set()


def _units(what: str, unit: object, value: object) -> float:
    if unit not in _CHECKED:
        check_unit(unit, f"{what}: the resource {unit!r}")
        if len(_CHECKED) < 1024:
            _CHECKED.add(unit)
    if type(value) is int or type(value) is float:  # the usual (never a bool)
        number = float(value)
        if number >= 0 and number < math.inf:  # finite and >= 0 (not NaN)
            return number
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what}: {unit} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what}: {unit} must be a finite number >= 0, got {value!r}")
    return number


def scoped(cost: float, scope: str | None) -> float:
    """``cost`` leased in ``scope`` (a plain number stays one without a scope)."""
    if scope is None:
        return cost
    if isinstance(cost, Costs):
        return Costs(float(cost), cost.parts, scope)
    return Costs(float(cost), {}, scope)


def as_costs(value: Mapping[str, float], what: str = "cost") -> float | Costs:
    """A lease's cost from a mapping of resource to units. ``"requests"`` defaults to 1
    (a lease is one call) and must be above 0; other resources may be 0 (named, but
    nothing to take). A mapping of requests alone is a plain number."""
    if type(value) is not dict and not isinstance(value, Mapping):  # (a dict: no ABC check)
        raise TypeError(f"{what} must be a number or a mapping, not {type(value).__name__}")
    requests = 1.0
    parts: dict[str, float] = {}
    for unit, units in value.items():
        if unit == REQUESTS:
            requests = _units(what, unit, units)
            if requests == 0:
                raise ValueError(f"{what}: requests must be above 0 (a lease is a call)")
        else:
            number = _units(what, unit, units)
            if number:
                parts[unit] = number
    return Costs(requests, parts) if parts else requests


def check_costs(cost: Costs, what: str = "cost") -> None:
    """Raise, as :func:`as_costs` would, for a :class:`Costs` made by hand whose
    requests or parts are out of range, whose parts name requests (they are the number
    itself), or whose scope names none."""
    if REQUESTS in cost.parts:
        raise ValueError(
            f"{what}: requests are the Costs' number itself, not one of its parts: "
            "Costs(requests, {...other resources})"
        )
    as_costs(cost.as_dict(), what)
    if cost.scope is not None:
        check_scope(cost.scope, f"{what}: scope")


def settled(reserved: float, actual: Mapping[str, float], what: str = "settle") -> float:
    """``reserved`` with the resources named in ``actual`` replaced by their true units
    (each a finite number >= 0): what a lease cost once its answer is known."""
    requests = float(reserved)
    if type(reserved) is Costs:
        parts, scope = dict(reserved.parts), reserved.scope
    else:
        parts, scope = {}, scope_of(reserved)
    for unit, units in actual.items():
        kind = type(units)
        if (kind is int or kind is float) and 0 <= units < math.inf and unit in _CHECKED:
            number = float(units)  # the usual: a count, of a resource seen before
        else:
            number = _units(what, unit, units)
        if unit == REQUESTS:
            requests = number
        elif number:
            parts[unit] = number
        else:
            parts.pop(unit, None)
    return Costs(requests, parts, scope) if parts or scope is not None else requests
