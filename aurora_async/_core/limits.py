"""``Limit``: one leaky-bucket window of a token."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .calendar import Calendar


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"Limit {name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"Limit {name} must be a positive finite number, got {value!r}")
    return number


#: ``per``, ``burst`` and ``rate / per`` (units a second) lie between these, so that
#: ``rate`` itself, ``burst / (rate / per)`` (the seconds a full bucket takes to drain)
#: and the product or quotient of any two of these numbers (the scheduler's, the
#: calibration's and the Redis scripts' arithmetic) are finite and not 0.
SMALLEST = 1e-150
LARGEST = 1e150


#: The resource a :class:`Limit` counts unless told otherwise: calls.
REQUESTS = "requests"

_UNIT = re.compile(r"[a-z][a-z0-9_]{0,39}")


def check_unit(unit: object, where: str = "Limit unit") -> str:
    """``unit`` if it names a resource (``"requests"``, ``"tokens"``, ``"input_tokens"``,
    ``"points"``: lowercase letters, digits and ``_``, from a letter, at most 40)."""
    if not isinstance(unit, str):
        raise TypeError(f"{where} must be a str naming a resource, not {type(unit).__name__}")
    if not _UNIT.fullmatch(unit):
        raise ValueError(
            f"{where} must name a resource in lowercase letters, digits and _ "
            f"(like 'requests', 'tokens', 'input_tokens'), got {unit!r}"
        )
    return unit


#: ``Limit(..., scope=EACH_SCOPE)``: a window each scope gets its own of, made from this
#: one the first time a lease names that scope (and forgotten once drained, when a token
#: has many): per-model or per-endpoint limits that need no list of the scopes.
EACH_SCOPE = "*"

_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")


def check_scope(scope: object, where: str = "scope") -> str:
    """``scope`` if it names a scope: an endpoint group or a model (``"search"``,
    ``"gpt-4o-mini"``, ``"claude-3-5-haiku@2024"``): letters, digits and ``._:/@+-``, from a
    letter or digit, at most 100."""
    if not isinstance(scope, str):
        raise TypeError(f"{where} must be a str naming a scope, not {type(scope).__name__}")
    if not _SCOPE.fullmatch(scope):
        raise ValueError(
            f"{where} must name an endpoint group or a model in letters, digits and "
            f"._:/@+- (like 'search' or 'gpt-4o-mini'), at most 100 characters, got {scope!r}"
        )
    return scope


def _in_range(what: str, value: float, shown: str) -> None:
    if not SMALLEST <= value <= LARGEST:
        raise ValueError(
            f"Limit {what} must be between {SMALLEST:g} and {LARGEST:g}, got {shown}: "
            "beyond that the pool's arithmetic on the limit would overflow or lose it; "
            "choose a rate, per and burst of saner sizes"
        )


def _derived(rate: float, per: float, burst: float) -> float:
    """``rate / per``, once it, ``per`` and ``burst`` are in range."""
    _in_range("per", per, repr(per))
    per_second = rate / per
    _in_range("rate / per (units a second)", per_second, f"{rate!r} / {per!r} = {per_second!r}")
    _in_range("burst", burst, repr(burst))
    return per_second


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``rate`` units per ``per`` seconds, from a bucket of ``burst`` units.

    This is aiolimiter's leaky bucket: the bucket drains continuously at ``rate / per``
    units a second and a lease of ``cost`` units fits when the bucket has room for it.
    ``burst`` defaults to ``rate`` (aiolimiter's meaning), so an idle token may fire
    ``rate`` units at once and then ``rate / per`` a second. Over any interval of length
    ``t`` a token never takes more than ``burst + rate * t / per`` units.

    ``unit`` names the resource the window counts: ``"requests"`` (the default: every
    lease costs its ``cost`` here) or another, like ``"tokens"`` for an LLM API's tokens
    per minute: ``Limit(200_000, per=60, unit="tokens")``. A lease says what it costs in
    each resource (``pool.lease(cost={"requests": 1, "tokens": 1200})``, a plain number
    being requests) and needs room in every window for its part; a lease that names no
    cost in a resource costs 0 there, but still waits while that window is in debt
    (``Lease.settle`` charged more than its bucket held).

    Costs may be fractional: a lease of ``cost`` units fits a window only when ``cost <=
    burst``, so a burst below 1 serves only leases of at most that cost, and a lease that
    fits no token's burst raises ``ValueError`` at once. (``Limit(0.5)`` has a burst of
    0.5 and takes no ``cost=1`` lease; one call every two seconds is ``Limit(1, per=2)``.)

    Checked here, so a limit the pool cannot keep fails at once: ``rate``, ``per`` and
    ``burst`` must be positive finite numbers, and ``per``, ``burst`` and ``rate / per``
    (units a second) between ``SMALLEST`` and ``LARGEST`` (1e-150 and 1e150), where the
    pool's arithmetic on them can neither overflow nor round to 0.

    A fresh bucket admits a whole burst, so a server that counts a fixed number of calls
    per sliding window may see up to twice ``rate`` in one window. For such servers use
    :meth:`sliding_window`.
    """

    rate: float
    per: float
    burst: float  #: the bucket's size; ``rate`` unless given
    #: How many units the bucket drains per second (computed once: every window of this
    #: limit shares the one float, which keeps the scheduler's hot loop in cache).
    per_second: float = field(repr=False, compare=False)
    #: Whether ``burst`` was given (trusted) rather than defaulted to ``rate`` (a guess);
    #: not part of equality, hashing or the repr.
    burst_given: bool = field(repr=False, compare=False)
    #: The resource it counts: ``"requests"`` unless given.
    unit: str = REQUESTS
    #: For a quota on the calendar (:meth:`daily`, :meth:`monthly`): when it resets.
    calendar: Calendar | None = None
    #: The scope it counts (an endpoint group or a model), or ``None``: every lease.
    scope: str | None = None

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        burst: float | None = None,
        *,
        unit: str = REQUESTS,
        scope: str | None = None,
    ) -> None:
        rate = _positive("rate", rate)
        per = _positive("per", per)
        size = rate if burst is None else _positive("burst", burst)
        per_second = _derived(rate, per, size)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "per", per)
        object.__setattr__(self, "burst", size)
        object.__setattr__(self, "per_second", per_second)
        object.__setattr__(self, "burst_given", burst is not None)
        object.__setattr__(self, "unit", unit if unit is REQUESTS else check_unit(unit))
        object.__setattr__(self, "calendar", None)
        if scope is not None and scope != EACH_SCOPE:
            scope = check_scope(scope)
        object.__setattr__(self, "scope", scope)

    @classmethod
    def daily(
        cls,
        count: float,
        *,
        reset: str = "00:00",
        tz: str = "UTC",
        unit: str = REQUESTS,
        scope: str | None = None,
    ) -> Limit:
        """A quota of ``count`` units a calendar day, all back at ``reset`` (``"HH:MM"``)
        in the time zone ``tz``: ``Limit.daily(1000, reset="00:00", tz="UTC")``.

        Unlike a leaky bucket, nothing drains during the day: once ``count`` units are
        used, the token takes no lease that needs this window until the reset (and
        ``pool.stats()`` shows it waiting for it). Pair it with a short limit for the
        rate: ``[Limit(10), Limit.daily(1000)]``. Kept by the state file across restarts.
        """
        return cls._on_calendar(count, 86_400.0, Calendar("day", reset, tz), unit, scope)

    @classmethod
    def monthly(
        cls,
        count: float,
        *,
        day: int = 1,
        reset: str = "00:00",
        tz: str = "UTC",
        unit: str = REQUESTS,
        scope: str | None = None,
    ) -> Limit:
        """A quota of ``count`` units a calendar month, all back on ``day`` (the last day
        of a shorter month) at ``reset`` in ``tz``. See :meth:`daily`."""
        month = Calendar("month", reset, tz, day)
        return cls._on_calendar(count, 30 * 86_400.0, month, unit, scope)

    @classmethod
    def _on_calendar(
        cls, count: float, per: float, calendar: Calendar, unit: str, scope: str | None
    ) -> Limit:
        limit = cls(count, per=per, burst=count, unit=unit, scope=scope)
        object.__setattr__(limit, "calendar", calendar)
        return limit

    @classmethod
    def sliding_window(
        cls,
        count: float,
        per: float = 1.0,
        *,
        burst: float = 2,
        unit: str = REQUESTS,
        scope: str | None = None,
    ) -> Limit:
        """A limit that never exceeds ``count`` units in *any* window of ``per`` seconds.

        For servers that count calls in a sliding (or fixed) window. The bucket holds
        ``burst`` units and drains ``count - burst`` units per ``per`` seconds, so any
        window of ``per`` seconds sees at most ``burst + (count - burst) = count`` units.
        The steady rate is ``count - burst``: the smaller ``burst``, the less is lost
        (2% of ``count=100``, but a third of ``count=3``). ``burst`` must be at least the
        largest ``cost`` you lease and below ``count``. The default of 2 (rather than 1)
        keeps the loop's timer lateness from costing throughput (see the README).
        """
        count = _positive("count", count)
        burst = _positive("burst", burst)
        if burst >= count:
            raise ValueError(
                f"Limit.sliding_window: burst ({burst:g}) must be below count ({count:g})"
            )
        return cls(rate=count - burst, per=per, burst=burst, unit=unit, scope=scope)

    def __repr__(self) -> str:
        unit = "" if self.unit == REQUESTS else f", unit={self.unit!r}"
        if self.scope is not None:
            unit += f", scope={self.scope!r}"
        calendar = self.calendar
        if calendar is not None:
            how = "daily" if calendar.period == "day" else "monthly"
            day = f", day={calendar.day}" if calendar.period == "month" else ""
            where = f"reset={calendar.at!r}, tz={calendar.tz!r}"
            return f"Limit.{how}({self.rate!r}{day}, {where}{unit})"
        return f"Limit(rate={self.rate!r}, per={self.per!r}, burst={self.burst!r}{unit})"

    def __str__(self) -> str:
        text = self._text()
        return text if self.scope is None else f"{text} [{self.scope}]"

    def _text(self) -> str:
        calendar = self.calendar
        if calendar is not None:
            what = "" if self.unit == REQUESTS else f" {self.unit}"
            return f"{self.rate:g}{what}/{calendar}"
        text = f"{self.rate:g}/{self.per:g}s"
        if self.unit != REQUESTS:
            text = f"{self.rate:g} {self.unit}/{self.per:g}s"
        return text if self.burst == self.rate else f"{text} (burst {self.burst:g})"
