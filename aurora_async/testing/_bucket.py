"""The mock server's own limit arithmetic: GCRA per token, pure (``now`` goes in).

This is deliberately *not* the client library's scheduler code: the mock checks the
library from the outside, so it keeps its own books.

GCRA (the generic cell rate algorithm) is the leaky bucket written as one number per
window, the *theoretical arrival time* ``tat``: the moment the bucket would be empty
if nothing else came. With ``T = per / rate`` seconds per unit and a bucket of ``burst``
units, the bucket's level at time ``now`` is ``max(0, tat - now) / T`` units, a request
of one unit fits when ``max(0, tat - now) + T <= burst * T``, that is from
``tat - (burst - 1) * T`` on, and taking it moves ``tat`` to ``max(tat, now) + T``.

``tolerance`` is GCRA's delay-variation tolerance: a request is admitted if it would fit
``tolerance`` seconds later. A server needs one because it sees requests when they
*arrive*, not when the client sent them: a client pacing itself exactly at the limit sees
its requests delayed by varying amounts (a new connection, a busy loop, the network), so
two of them can arrive closer together than they left. With a tolerance ``tau`` the
server admits at most ``burst + rate * (t + tau) / per`` units in any interval of length
``t`` (never more than the nominal rate in the long run), instead of the nominal
``burst + rate * t / per``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aurora_async._core.limits import Limit

from ._numbers import EPSILON


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the bucket decided for one request, described by its *binding* window.

    The binding window is the one with the fewest whole units left (admitted) or the
    longest wait (rejected). ``remaining`` counts whole units left after this request
    (0 when rejected), ``reset_after`` is the time until that window frees its next whole
    unit (when ``remaining`` goes up; for a rejected request, when it would fit) and
    ``retry_after`` the time until a rejected request would fit (0 when admitted).
    """

    admitted: bool
    limit: Limit
    remaining: int
    reset_after: float
    retry_after: float


def checked(limits: Sequence[Limit]) -> tuple[Limit, ...]:
    """``limits`` as a tuple, if the mock can enforce them (one unit per request)."""
    if not limits:
        raise ValueError("a token needs at least one Limit")
    for limit in limits:
        if limit.burst < 1:
            raise ValueError(
                f"MockAPI charges 1 unit per request, so every burst must be at least 1; "
                f"got {limit}"
            )
    return tuple(limits)


class Bucket:
    """The GCRA state of one token: one theoretical arrival time per limit.

    A request costs one unit and must fit every limit: all are checked, then all are
    charged; a rejected request charges nothing.
    """

    __slots__ = ("_burst", "_interval", "_slack", "_tat", "limits")

    def __init__(self, limits: Sequence[Limit]) -> None:
        self.limits: tuple[Limit, ...] = checked(limits)
        self._burst = tuple(limit.burst for limit in self.limits)
        # Seconds per unit, and how far ahead of ``now`` ``tat`` may be for one more unit.
        self._interval = tuple(limit.per / limit.rate for limit in self.limits)
        self._slack = tuple(
            (limit.burst - 1) * interval
            for limit, interval in zip(self.limits, self._interval, strict=True)
        )
        self._tat = [-math.inf] * len(self.limits)

    def take(self, now: float, tolerance: float = 0.0) -> Verdict:
        """Admit one request at ``now`` (charging every window) or reject it (charging none).

        Admitted when the request fits every window at ``now + tolerance``.
        ``retry_after`` is the nominal wait: the time until it fits without the tolerance.
        """
        tat = self._tat
        longest, wait = 0, -math.inf
        for index, slack in enumerate(self._slack):
            if tat[index] - slack - now > wait:
                longest, wait = index, tat[index] - slack - now
        if wait > tolerance + EPSILON:
            return Verdict(
                admitted=False,
                limit=self.limits[longest],
                remaining=0,
                reset_after=wait,
                retry_after=wait,
            )
        # Charge every window. The binding one has the fewest whole units left; on a tie,
        # it is the one that takes longest to empty.
        binding, left, ahead = -1, 0, 0.0
        for index, interval in enumerate(self._interval):
            tat[index] = max(tat[index], now) + interval
            until_empty = tat[index] - now
            units = max(0, math.floor(self._burst[index] - until_empty / interval + EPSILON))
            if binding < 0 or (units, -until_empty) < (left, -ahead):
                binding, left, ahead = index, units, until_empty
        # When the binding window frees its next whole unit: the moment ``remaining``
        # goes up (for a client at full speed, one interval; not the time until empty).
        interval = self._interval[binding]
        next_unit = ahead - (self._burst[binding] - left - 1) * interval
        return Verdict(
            admitted=True,
            limit=self.limits[binding],
            remaining=left,
            reset_after=max(0.0, next_unit),
            retry_after=0.0,
        )

    def levels(self, now: float) -> tuple[float, ...]:
        """How many units each window holds at ``now``."""
        return tuple(
            max(0.0, tat - now) / interval
            for tat, interval in zip(self._tat, self._interval, strict=True)
        )

    def fill(self, levels: Sequence[float], now: float) -> None:
        """Make each window hold ``levels`` units at ``now`` (one level per limit)."""
        self._tat = [
            now + level * interval if level > 0 else -math.inf
            for level, interval in zip(levels, self._interval, strict=True)
        ]
