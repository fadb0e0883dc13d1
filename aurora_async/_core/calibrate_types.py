"""What a :class:`~aurora_async._core.calibrate.Calibrator` decides: values, no logic.

Kept apart from the calibrator so the pool, stats and the Redis backend can name these
types without importing the decision code.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .limits import Limit

__all__ = [
    "LIMIT_FROM_HEADER",
    "LIMIT_LOWERED",
    "LIMIT_RAISED",
    "CalibrationSnapshot",
    "Change",
    "LimitSource",
    "RateLimitedDecision",
]

#: Event names (structlog), one per kind of :class:`Change`.
LIMIT_LOWERED = "aurora.token.limit_lowered"
LIMIT_RAISED = "aurora.token.limit_raised"
LIMIT_FROM_HEADER = "aurora.token.limit_from_header"


class LimitSource(enum.Enum):
    """Where a token's effective limits come from."""

    DECLARED = "declared"  #: the user's limits, unchanged
    DEFAULT = "default"  #: the library's default guess, unchanged
    HEADER = "header"  #: a server's rate-limit headers
    LEARNED = "learned"  #: learned from 429s and clean saturated service


@dataclass(frozen=True, slots=True)
class Change:
    """New effective limits for one token, and why.

    ``levels``, when given, has one entry per window of ``limits``: ``None`` or the number
    of units that window's bucket holds *at least* as of the call that returned this
    change (the server counts them as used). Apply it as ``level = max(level, hint)``:
    raising a level is always safe, lowering it is not (calls still in flight are not in
    the server's count yet).
    """

    limits: tuple[Limit, ...]
    source: LimitSource
    event: str  #: one of the ``LIMIT_*`` names above
    old: tuple[Limit, ...]
    levels: tuple[float | None, ...] | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.levels is not None and len(self.levels) != len(self.limits):
            raise ValueError(
                f"Change.levels has {len(self.levels)} entries for {len(self.limits)} limits"
            )


@dataclass(frozen=True, slots=True)
class RateLimitedDecision:
    """What to do about one 429 on a lease the token's own limiter allowed.

    ``cooldown`` is how long the token must not fire from now (the pool also fills its
    buckets: the refused call counts as spent). A 429 of an episode already answered
    (``new_episode`` false: its lease was in flight when the episode began) changes
    nothing: its ``cooldown`` is what is left of the episode's (or the server's
    Retry-After, if longer). ``backoff_step`` is 0 while episodes are answered by
    lowering the limit, then 1, 2, ... for each further episode with no call served
    since the last (the cooldown doubles with each step, up to the cap).
    """

    new_episode: bool
    cooldown: float
    change: Change | None
    backoff_step: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cooldown) and self.cooldown >= 0):
            raise ValueError(f"RateLimitedDecision.cooldown must be >= 0, got {self.cooldown}")


@dataclass(frozen=True, slots=True)
class CalibrationSnapshot:
    """One token's limits for ``stats()``: declared, effective and where they came from."""

    declared: tuple[Limit, ...]
    effective: tuple[Limit, ...]
    source: LimitSource
    #: The effective rate or burst is below a trusted declared one because of evidence
    #: (429s the limiter allowed, or a server's headers).
    limit_too_high: bool
    backoff_step: int
