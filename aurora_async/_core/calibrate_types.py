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
    "LIMIT_RESTORED",
    "CalibrationSnapshot",
    "Change",
    "Kept",
    "LimitSource",
    "Memory",
    "RateLimitedDecision",
]

#: Event names (structlog), one per kind of :class:`Change`.
LIMIT_LOWERED = "aurora.token.limit_lowered"
LIMIT_RAISED = "aurora.token.limit_raised"
LIMIT_FROM_HEADER = "aurora.token.limit_from_header"
#: Not a :class:`Change`: limits an earlier run learned, restored from a state file.
LIMIT_RESTORED = "aurora.token.limit_restored"


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


@dataclass(frozen=True, slots=True)
class Memory:
    """What a calibrator knows beyond its limits that a restart must keep for it to go on
    as it would have (``calibrate.py`` names each: ``_lo``, ``_hi``, ...). ``refused``
    and ``refused_burst`` are ``inf`` when nothing was refused; ``probe`` is the raise
    not yet confirmed, as ``(kind, rate or burst before)``, or ``("", 0.0)``.

    Checked here, so a state file's damaged figures fail with the field they name."""

    served: float  #: the highest rate served cleanly for a whole period
    refused: float  #: the least rate refused since
    refused_burst: float  #: the least burst refused
    step_of: float  #: the rate at the last decrease: rate probes add 2% of it
    patience: int  #: rate probes wait this many periods
    slow: bool  #: slow start: the rate doubles until the first episode
    probe: tuple[str, float] = ("", 0.0)

    def __post_init__(self) -> None:
        for name in ("served", "refused", "refused_burst", "step_of"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f'"{name}" must be a number')
            if name.startswith("refused"):  # inf: none refused yet
                if math.isnan(value) or value < 0:
                    raise ValueError(f'"{name}" must be >= 0 or none, got {value!r}')
            elif not (math.isfinite(value) and value >= 0):
                raise ValueError(f'"{name}" must be finite and >= 0, got {value!r}')
        if isinstance(self.patience, bool) or not isinstance(self.patience, int):
            raise TypeError('"patience" must be a whole number')
        if not 1 <= self.patience <= 1 << 10:
            raise ValueError(f'"patience" must be between 1 and 1024, got {self.patience!r}')
        if not isinstance(self.slow, bool):
            raise TypeError('"slow" must be true or false')
        kind, before = self.probe
        if kind not in ("", "burst", "probe", "climb", "slow"):
            raise ValueError('"probe" must be burst, probe, climb or slow')
        if isinstance(before, bool) or not isinstance(before, int | float):
            raise TypeError('"probe" must name the value before it as a number')
        if not (math.isfinite(before) and before >= 0):
            raise ValueError(f'"probe" value must be finite and >= 0, got {before!r}')


@dataclass(frozen=True, slots=True)
class Kept:
    """One window whose effective limit is not its declared one, as a restart keeps it:
    the ``effective`` limit, where it came from, and the ``declared`` one it was derived
    from (a restart whose declared limits changed since discards it)."""

    effective: Limit
    source: LimitSource
    declared: Limit
