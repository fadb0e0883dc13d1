"""``Belief``: what a calibrator believes about one limit window of one token.

Also the header arithmetic: a quota a server states for a window, turned into a leaky
bucket that can never overrun it, and the bucket level that re-syncs with the server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .calibrate_grid import standard_window
from .limits import Limit

__all__ = [
    "RESET_ROUNDING",
    "Belief",
    "guess_window",
    "header_level",
    "place_quota",
    "quota_bucket",
]


#: Learned limits are few (a grid of rates): tokens share one object per value.
_SHARED: dict[tuple[float, float, float], Limit] = {}
_SHARED_MAX = 4096


def _shared(rate: float, per: float, burst: float) -> Limit:
    key = (rate, per, burst)
    limit = _SHARED.get(key)
    if limit is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        limit = _SHARED[key] = Limit(rate, per=per, burst=burst)
    return limit


@dataclass(slots=True)
class Belief:
    """One window: its effective rate and burst and how far they may grow.

    ``declared`` is the window the token was given (``None`` for one a server announced);
    ``quota`` is what a server stated for it (units per ``per``), if it did.
    """

    per: float
    rate: float  #: effective, units a second
    burst: float  #: effective
    ceiling: float  #: the rate may not grow above this (``inf``: no ceiling)
    burst_cap: float  #: the burst may not grow above this
    declared: Limit | None
    trusted: bool  #: ``declared`` is the user's (a ceiling), not the library's guess
    quota: float | None = None
    limit: Limit | None = None  #: cached effective ``Limit`` (see :meth:`effective`)

    @classmethod
    def from_limit(cls, limit: Limit, *, trusted: bool, floor: float) -> Belief:
        """A declared window. A burst that was not given starts at ``floor`` (no opening
        volley) and may grow back to the declared one; a trusted rate is a ceiling."""
        burst = limit.burst if trusted and limit.burst_given else min(limit.burst, floor)
        ceiling = limit.per_second if trusted else math.inf
        return cls(limit.per, limit.per_second, burst, ceiling, limit.burst, limit, trusted)

    def effective(self) -> Limit:
        """The window as a ``Limit``: the declared object itself while it is unchanged,
        else one shared by every window of the same value (cached until :meth:`set`)."""
        limit = self.limit
        if limit is None:
            declared = self.declared
            if (
                declared is not None
                and self.rate == declared.per_second
                and self.burst == declared.burst
            ):
                limit = declared
            else:
                limit = _shared(self.rate * self.per, self.per, self.burst)
            self.limit = limit
        return limit

    def set(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.limit = None

    @property
    def lowered(self) -> bool:
        """Evidence says the user declared too much: a server's quota below the declared
        rate, or a rate (or a burst they gave) learned below its ceiling."""
        declared = self.declared
        if declared is None or not self.trusted:
            return False
        if self.quota is not None and self.quota < declared.rate * (1 - 1e-9):
            return True
        if self.rate < self.ceiling * (1 - 1e-9):
            return True
        return declared.burst_given and self.burst < self.burst_cap


#: How far past a window's end a stated reset may run: a Unix time in whole seconds;
#: at most this share of the reset, so a short window's precise reset (1.2 s) still
#: means a longer window (2 s), as it must.
RESET_ROUNDING = 1.0
_ROUNDING_SHARE = 0.02


def quota_bucket(quota: float, per: float, floor: float) -> tuple[float, float]:
    """(rate a second, burst) of a leaky bucket that never takes more than ``quota`` units
    in any ``per`` seconds, fixed or sliding window alike: a bucket of ``b`` draining
    ``(quota - b) / per`` (``Limit.sliding_window``), with ``b`` the least burst the pool
    needs (``floor``), so only ``b / quota`` of the quota is given up. A quota at most
    ``floor`` gets a bucket of the whole quota draining over two windows."""
    burst = floor
    if quota <= burst:
        return quota / (2 * per), quota
    return (quota - burst) / per, burst


def header_level(
    rate: float, burst: float, remaining: float | None, reset_after: float | None
) -> float | None:
    """The level a bucket (``rate`` a second, ``burst``) must hold at least so that it
    admits no more than ``remaining`` units until the server's reset: it admits its room
    now, ``burst - level``, plus what drains until then, ``rate * reset_after``. For a
    server that counts in fixed windows this makes a restart, or another client on the
    same key, cost no 429. ``None`` when the headers ask for nothing (or lack
    ``remaining``)."""
    if remaining is None:
        return None
    level = burst - remaining + (rate * reset_after if reset_after is not None else 0.0)
    return level if level > 0.0 else None


def guess_window(
    windows: list[Belief], resets: dict[float, float], quota: float, reset_after: float | None
) -> float | None:
    """The window a server means by a quota it states without one (``X-RateLimit-*``):
    the window that already has this quota or declares it, else the first standard
    window at least as long as the longest reset seen for it (``resets`` keeps them;
    a window can only be longer than its resets, and guessing long is safe), less
    :data:`RESET_ROUNDING`: a reset stated as a Unix time in whole seconds (GitHub's
    ``X-RateLimit-Reset``) runs up to a second past the window's true end, and a
    60-second window read as 60.4 seconds must not be taken for a 120-second one."""
    for belief in windows:
        if belief.quota == quota:
            if reset_after is None or reset_after <= belief.per + min(
                RESET_ROUNDING, belief.per * _ROUNDING_SHARE
            ):
                return belief.per
        elif belief.declared is not None and belief.declared.rate == quota:
            return belief.per
    if reset_after is None:
        return None
    longest = max(resets.get(quota, 0.0), reset_after)
    resets[quota] = longest
    return standard_window(longest - min(RESET_ROUNDING, longest * _ROUNDING_SHARE))


def place_quota(
    windows: list[Belief], per: float, quota: float, floor: float
) -> tuple[list[Belief], Belief]:
    """The windows once a server stated ``quota`` per ``per`` seconds, and the one that
    holds it. Windows the library guessed give way to it (as does an earlier guess of
    this quota's window length); a window of the same ``per`` takes it (capped by what
    the user declared), else a new one is added. A quota already known changes nothing,
    so limits learned below it since are kept."""
    kept = [
        w
        for w in windows
        if (w.trusted or w.quota is not None)
        and not (w.declared is None and w.quota == quota and w.per != per)
    ]
    found = [w for w in kept if abs(w.per - per) <= 1e-9 * per]
    if found:
        belief = found[0]
    else:
        belief = Belief(per, quota / per, quota, math.inf, quota, None, False)
        kept.append(belief)
    if belief.quota != quota:
        rate, burst = quota_bucket(quota, per, floor)
        declared = belief.declared
        if declared is not None and belief.trusted:
            rate, burst = min(rate, declared.per_second), min(burst, declared.burst)
        belief.quota = quota
        belief.ceiling = rate
        belief.burst_cap = burst
        belief.set(rate, burst)
    if len(kept) == len(windows) and all(a is b for a, b in zip(kept, windows, strict=True)):
        return windows, belief
    return kept, belief
