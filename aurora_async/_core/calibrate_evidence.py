"""``Evidence``: what a token's counters and 429s say, for its calibrator.

It keeps the current *stretch* (since when the token has used its whole rate, and with
how many units), the *marks* the measured rate is taken from, and the *episodes* of 429s
with the backoff they lead to. It decides nothing about limits; the calibrator asks it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .calibrate_grid import measured_rate

__all__ = ["MARK_EVERY", "SATURATED", "TICK", "Episode", "Evidence"]

#: How often the pool should tick a calibrator (seconds).
TICK = 0.25
#: A token used its rate if it was granted at least this share of it (less two units,
#: the most a bucket filled after a 429 holds it back).
SATURATED = 0.9
_SLACK = 2.0
#: Ticks further apart than this (seconds) mean the pool stopped ticking.
_TICK_GAP = 4 * TICK
#: At most one mark a second from ticks (plus one per episode and raise), 40 kept.
MARK_EVERY = 1.0
_MARKS = 40
_NEVER = -math.inf
_NO_MARKS: list[tuple[float, int]] = []  # shared until a token has marks (never mutated)


@dataclass(frozen=True, slots=True)
class Episode:
    """How a new episode of 429s is to be answered."""

    lower: bool  #: by lowering the limit (else by backing off: nothing was served)
    chained: bool  #: no clean saturated period since the last episode (or none served)
    step: int  #: the backoff step (0 when lowering)


class Evidence:
    """A token's stretch, marks and episodes (see the module docstring)."""

    __slots__ = (
        "_last_mark",
        "_marks",
        "_silent_since",
        "_stretch_units",
        "_ticked_at",
        "episode_at",
        "episode_ok",
        "episodes",
        "idle_at",
        "settled_at",
        "step",
        "stretch_at",
    )

    def __init__(self, now: float) -> None:
        self.episode_at = _NEVER  #: when the current (or last) episode began
        self.episode_ok = 0  #: the ok count then
        self.episodes = 0  #: how many so far
        self.step = 0  #: the backoff step
        self.settled_at = now  #: a clean saturated period ended, or the token was idle
        self.idle_at = now  #: the last time the token was seen idle (or new)
        self.stretch_at = now  #: the current saturated stretch began
        self._stretch_units = 0.0
        self._silent_since = _NEVER  # the last episode after which calls were served
        self._ticked_at = now
        self._marks = _NO_MARKS  # (time, ok count), oldest first
        self._last_mark = _NEVER

    def tick(self, now: float, ok: int, units: float, rate: float) -> float:
        """A tick: how long the token has been saturated at ``rate`` (units a second)
        without a 429; 0 if it was not (the stretch restarts and the marks go: the
        server may have drained, so they bound nothing)."""
        self._ticked_at = now
        if ok > self.episode_ok:
            self.step = 0  # served since the last episode: the backoff is over
        elapsed = now - self.stretch_at
        if elapsed <= 0.0:
            return 0.0
        if units - self._stretch_units + _SLACK < SATURATED * rate * elapsed:
            self.restart(now, units)
            self._marks = _NO_MARKS
            self.settled_at = self.idle_at = now
            return 0.0
        if now - self._last_mark >= MARK_EVERY:
            self.mark(now, ok)
        return elapsed

    def settle(self, now: float, units: float) -> None:
        """A whole clean saturated period ended now; the next one starts."""
        self.settled_at = now
        self.restart(now, units)

    def restart(self, at: float, units: float) -> None:
        """The stretch (re)starts at ``at`` with ``units`` granted so far."""
        self.stretch_at = at
        self._stretch_units = units

    def mark(self, now: float, ok: int) -> None:
        marks = self._marks
        if marks is _NO_MARKS:
            self._marks = marks = []
        elif len(marks) >= _MARKS:
            del marks[0]
        marks.append((now, ok))
        self._last_mark = now

    def forget_marks(self) -> None:
        """The server may have had room (or drained) since the marks: they bound nothing."""
        self._marks = _NO_MARKS

    def measured(self, now: float, ok: int) -> float:
        """An upper bound of the server's rate (:func:`.calibrate_grid.measured_rate`)."""
        return measured_rate(self._marks, now, ok)

    @property
    def unsettled(self) -> bool:
        """An episode since the last clean saturated period (or idle moment): ticks
        are still needed to tell when it is over."""
        return self.episode_at > self.settled_at

    def in_episode(self, granted_at: float) -> bool:
        """Whether a lease granted then was in flight when the current episode began (one
        granted at that very instant was: the 429 that began it came back after it)."""
        return granted_at <= self.episode_at

    def begin_episode(self, now: float, ok: int, quiet: float) -> Episode:
        """A 429 starts a new episode. It is answered by lowering if calls were served
        since the last one, or if the last served one was less than ``quiet`` seconds
        ago (a full server refuses the first call after a short cooldown: the rate is
        far too high); else by backing off one more step."""
        if now - self._ticked_at > _TICK_GAP:  # not ticked lately (nothing to grow):
            self._marks = _NO_MARKS  # the marks may span idle time, and the token may
            self.idle_at = now  # have been idle: blame a burst first
            self.settled_at = self._ticked_at
        served = ok > self.episode_ok or self.episodes == 0
        chained = self.unsettled or not served
        if served:
            self._silent_since = now
        self.episode_at = now
        self.episode_ok = ok
        self.episodes += 1
        if served or now - self._silent_since < quiet:
            self.step = 0
            return Episode(True, chained, 0)
        self.step += 1
        self._marks = _NO_MARKS
        return Episode(False, chained, self.step)
