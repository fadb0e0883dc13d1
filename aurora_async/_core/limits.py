"""``Limit``: one leaky-bucket window of a token."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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

    def __init__(self, rate: float, per: float = 1.0, burst: float | None = None) -> None:
        rate = _positive("rate", rate)
        per = _positive("per", per)
        size = rate if burst is None else _positive("burst", burst)
        per_second = _derived(rate, per, size)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "per", per)
        object.__setattr__(self, "burst", size)
        object.__setattr__(self, "per_second", per_second)
        object.__setattr__(self, "burst_given", burst is not None)

    @classmethod
    def sliding_window(cls, count: float, per: float = 1.0, *, burst: float = 2) -> Limit:
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
        return cls(rate=count - burst, per=per, burst=burst)

    def __str__(self) -> str:
        text = f"{self.rate:g}/{self.per:g}s"
        return text if self.burst == self.rate else f"{text} (burst {self.burst:g})"
