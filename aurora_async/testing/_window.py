"""A fixed-window counter: at most ``limit`` requests per window of ``window`` seconds.

Pure (``now`` goes in). A window opens at the first request after the previous one has
ended (``aligned=False``, GitHub's way: the reset is an hour after the first call), or at
the multiples of ``window`` on the loop clock (``aligned=True``, the way a per-minute
counter keyed on the clock's minute works). A rejected request counts nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._numbers import EPSILON


@dataclass(frozen=True, slots=True)
class Count:
    """What the counter decided: ``used`` units of the window after this request (what it
    had used, at most the limit, when rejected) and the seconds until the window ends."""

    admitted: bool
    used: int
    reset_after: float


class WindowCounter:
    """One token's fixed window."""

    __slots__ = ("aligned", "limit", "start", "used", "window")

    def __init__(self, limit: int, window: float, aligned: bool) -> None:
        self.limit = limit
        self.window = window
        self.aligned = aligned
        self.start = -math.inf  # when the current window opened (loop time)
        self.used = 0

    def take(self, now: float, cost: int = 1) -> Count:
        """Count a request of ``cost`` units at ``now`` if the window has room for it."""
        reset_after = self.peek(now)
        if self.used + cost > self.limit:
            return Count(False, min(self.used, self.limit), reset_after)
        self.used += cost
        return Count(True, self.used, reset_after)

    def peek(self, now: float) -> float:
        """Open a new window at ``now`` if the last one has ended; the seconds left."""
        if now >= self.start + self.window - EPSILON:
            self.start = self._opening(now)
            self.used = 0
        return self.start + self.window - now

    def adopt(self, old: WindowCounter) -> None:
        """Keep ``old``'s window and what it used (the new limit applies to them)."""
        self.start, self.used = old.start, old.used

    def _opening(self, now: float) -> float:
        if not self.aligned:
            return now
        return math.floor(now / self.window + EPSILON) * self.window
