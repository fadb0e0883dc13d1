"""Numbers the calibrator shares: the rate grid, measured rates, standard windows.

Pure arithmetic, no state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = [
    "GRID_STEPS_PER_DECADE",
    "grid_above",
    "grid_floor",
    "measured_rate",
    "standard_window",
]

#: Learned rates (units a second) sit on a geometric grid of 2% steps with every power of
#: ten on it (10 ** (1/116) = 1.0200), rounded down: tokens of one server tier then end up
#: with equal ``Limit`` values, which the scheduler serves from one lane.
GRID_STEPS_PER_DECADE = 116

#: Windows servers commonly use, in seconds; an unstated window is guessed as the first
#: of these at least as long as the longest reset seen (longer means slower: safe).
_STANDARD_WINDOWS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0)
_STANDARD_WINDOWS += (300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 86400.0)


def _index(rate: float) -> int:
    return math.floor(math.log10(rate) * GRID_STEPS_PER_DECADE + 1e-9)


def grid_floor(rate: float) -> float:
    """The largest grid rate at most ``rate`` (a positive finite number)."""
    return float(10.0 ** (_index(rate) / GRID_STEPS_PER_DECADE))


def grid_above(rate: float) -> float:
    """The smallest grid rate strictly above ``rate``."""
    return float(10.0 ** ((_index(rate) + 1) / GRID_STEPS_PER_DECADE))


def measured_rate(marks: Iterable[tuple[float, int]], now: float, ok: int) -> float:
    """An upper bound of the rate a server accepts, from marks ``(time, ok count)``.

    Each mark was taken while the token kept the server busy (saturated, at a rate at or
    above the server's), and ``now`` is a moment the server refused a call (its bucket
    full). From a mark to ``now`` the server accepted ``n`` calls, drained ``rate * dt``
    and ended fuller than it began minus one unit, so ``rate < (n + 1) / dt``. Every
    mark gives such a bound; the least is kept. A mark from the start of a stretch also
    counts the server's burst, so early bounds are loose (too high). A server with no
    burst to spare (nginx ``burst=0``) idles between a refused call and the next one,
    and there the bound can fall below its rate: see :func:`probe_target`, which climbs
    back. ``inf`` when no mark is older than ``now``.
    """
    best = math.inf
    for at, count in marks:
        span = now - at
        if span > 0.0:
            bound = (ok - count + 1) / span
            if bound < best:
                best = bound
    return best


def standard_window(seconds: float) -> float:
    """The first standard window at least ``seconds`` long (``seconds`` if none is)."""
    for window in _STANDARD_WINDOWS:
        if window >= seconds - 1e-9:
            return window
    return seconds
