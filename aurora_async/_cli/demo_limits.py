"""The demo's view of self-calibrating limits: declared and effective limits per tier,
read from ``pool.stats()``, and when the mis-declared tier converged.

``stats()`` shows each token's limits as ``str(Limit)`` (``"10.2/1s (burst 1)"``); the
demo reads them back into units a second and bursts, summed up per tier.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .._core.stats import TokenStats
from .._core.tokens import mask
from .._pool.pool import TokenPool
from .demo_mix import Tier

__all__ = [
    "CONVERGED",
    "WATCH",
    "Convergence",
    "Window",
    "by_name",
    "describe_limits",
    "fastest",
    "read_limit",
    "tier_windows",
]

#: The mis-declared tier has converged once every token's effective rate is at most this
#: share above the server's rate, as the calibrator's own tests count it (the rate it
#: learns is measured, and nginx's burst lets a little more through for a while).
CONVERGED = 0.03
#: Seconds between looks at the mis-declared tier's effective limits.
WATCH = 0.05

_LIMIT = re.compile(
    r"(?P<rate>[0-9.e+-]+)/(?P<per>[0-9.e+-]+)s(?: \(burst (?P<burst>[0-9.e+-]+)\))?"
)


@dataclass(frozen=True, slots=True)
class Window:
    """One limit window as units a second and a bucket size."""

    rate: float  #: units a second
    burst: float
    per: float


def read_limit(text: str) -> Window | None:
    """A limit as ``stats()`` shows it (``str(Limit)``), or ``None`` if it is not one."""
    match = _LIMIT.fullmatch(text.strip())
    if match is None:
        return None
    try:
        rate, per = float(match["rate"]), float(match["per"])
        burst = float(match["burst"]) if match["burst"] else rate
    except ValueError:
        return None
    if not per > 0:
        return None
    return Window(rate / per, burst, per)


def fastest(limits: Iterable[str]) -> Window | None:
    """The shortest window of a token's limits (the one its calibration learns)."""
    windows = [w for w in map(read_limit, limits) if w is not None]
    return min(windows, key=lambda w: w.per, default=None)


def _number(value: float) -> str:
    return f"{value:.3g}"


def _span(values: Sequence[float]) -> str:
    low, high = _number(min(values)), _number(max(values))
    return low if low == high else f"{low}-{high}"


def describe_limits(windows: Sequence[Window], *, burst: bool = True) -> str:
    """``windows`` (one per token of a tier) in a few characters: ``"9.8-10.2/s, burst
    1"``; ``""`` for none."""
    if not windows:
        return ""
    text = f"{_span([w.rate for w in windows])}/s"
    if burst:
        text += f", burst {_span([w.burst for w in windows])}"
    return text


def by_name(pool: TokenPool) -> dict[str, TokenStats]:
    """The pool's token stats by masked name."""
    return {t.name: t for t in pool.stats().tokens}


def tier_windows(
    stats: Mapping[str, TokenStats], secrets: Iterable[str], *, declared: bool = False
) -> list[Window]:
    """The effective (or ``declared``) fast windows of ``secrets`` in ``stats``."""
    windows = []
    for secret in secrets:
        token = stats.get(mask(secret))
        if token is not None:
            window = fastest(token.declared_limits if declared else token.limits)
            if window is not None:
                windows.append(window)
    return windows


class Convergence:
    """Watches the mis-declared tier while the pool runs: the first moment every one of
    its tokens had an effective rate at most :data:`CONVERGED` above the server's."""

    def __init__(self, tier: Tier, pool: TokenPool, start: float) -> None:
        self.tier = tier
        self.after: float | None = None  #: seconds from the start, once converged
        self._pool = pool
        self._start = start

    def check(self, now: float) -> bool:
        """Look now; whether the tier has converged (by now or before)."""
        if self.after is None:
            windows = tier_windows(by_name(self._pool), self.tier.secrets)
            ceiling = self.tier.rate * (1 + CONVERGED)
            if len(windows) == len(self.tier.secrets) and all(w.rate <= ceiling for w in windows):
                self.after = max(0.0, now - self._start)
        return self.after is not None

    def highest(self) -> float | None:
        """The highest effective rate among the tier's tokens now."""
        windows = tier_windows(by_name(self._pool), self.tier.secrets)
        return max((w.rate for w in windows), default=None)

    async def watch(self) -> None:
        """Look every :data:`WATCH` seconds until the tier has converged (or this task
        is cancelled)."""
        loop = asyncio.get_running_loop()
        while not self.check(loop.time()):  # noqa: ASYNC110  # polling stats() is the point
            await asyncio.sleep(WATCH)
