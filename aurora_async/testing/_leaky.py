"""``LeakyBucket``: the mock server's default profile, GCRA per token with ``Retry-After``
and ``X-RateLimit-*`` headers (the arithmetic is in ``_bucket``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aurora_async._core.limits import Limit
from aurora_async._core.tokens import as_limits as core_as_limits

from ._bucket import Bucket, Verdict, checked
from ._numbers import EPSILON, ceil_ms, epoch_seconds, number
from ._profile import Decision, Enforcer, Profile, RetryAfterForm, ServerOptions


def as_limits(limits: Limit | Sequence[Limit], where: str) -> tuple[Limit, ...]:
    """``limits`` as a tuple: the library's one normaliser (``Token``'s and the pool's)."""
    result = core_as_limits(limits, where)
    if result is None:  # pragma: no cover - callers never pass None
        raise TypeError(f"{where} must be a Limit or a non-empty sequence of Limit objects")
    return result


@dataclass(frozen=True, slots=True, init=False)
class LeakyBucket(Profile):
    """A leaky bucket per :class:`~aurora_async.Limit` (GCRA), the way MockAPI has always
    limited tokens: a token given as ``Limit`` objects gets this profile.

    A request costs one unit and must fit every limit. Too fast: ``429`` with
    ``Retry-After`` (the time until the request would fit). Every answer carries
    ``X-RateLimit-Limit`` (the binding window's burst), ``X-RateLimit-Remaining`` (whole
    units left), ``X-RateLimit-Reset-After`` (seconds until ``Remaining`` goes up) and
    ``X-RateLimit-Reset`` (the same as a Unix time, rounded up).

    ``tolerance``, ``retry_after`` (``"float"`` or ``"int"``) and ``headers`` (whether
    to send the ``X-RateLimit-*`` headers) default to ``None``: the server's
    ``tolerance``, ``retry_after`` and ``rate_limit_headers``. On a change of profile
    (:meth:`MockAPI.set_profile`) to another ``LeakyBucket``, each window keeps the units
    it holds, matched by window length (``per``).
    """

    limits: tuple[Limit, ...]
    tolerance: float | None
    retry_after: RetryAfterForm | None
    headers: bool | None

    def __init__(
        self,
        limits: Limit | Sequence[Limit],
        *,
        tolerance: float | None = None,
        retry_after: RetryAfterForm | None = None,
        headers: bool | None = None,
    ) -> None:
        if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(
                f"LeakyBucket tolerance must be a finite number of seconds >= 0, got {tolerance!r}"
            )
        if retry_after not in (None, "float", "int"):
            raise ValueError(
                f"LeakyBucket retry_after must be 'float' or 'int', got {retry_after!r}"
            )
        object.__setattr__(self, "limits", checked(as_limits(limits, "LeakyBucket")))
        object.__setattr__(self, "tolerance", tolerance)
        object.__setattr__(self, "retry_after", retry_after)
        object.__setattr__(self, "headers", headers)

    def _enforcer(self, options: ServerOptions) -> Enforcer:
        return _LeakyEnforcer(
            Bucket(self.limits),
            options.tolerance if self.tolerance is None else self.tolerance,
            options.retry_after if self.retry_after is None else self.retry_after,
            options.rate_limit_headers if self.headers is None else self.headers,
        )


class _LeakyEnforcer(Enforcer):
    __slots__ = ("bucket", "headers", "retry_after", "tolerance")

    def __init__(
        self, bucket: Bucket, tolerance: float, retry_after: RetryAfterForm, headers: bool
    ) -> None:
        self.bucket = bucket
        self.tolerance = tolerance
        self.retry_after = retry_after
        self.headers = headers

    def decide(self, now: float, wall: float) -> Decision:
        return self._answer(self.bucket.take(now, self.tolerance), wall)

    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        wait = until - now
        return self._answer(Verdict(False, self.bucket.limits[0], 0, wait, wait), wall)

    def adopt(self, old: Enforcer, now: float) -> None:
        if not isinstance(old, _LeakyEnforcer):
            return
        held: dict[float, float] = {}
        for limit, level in zip(old.bucket.limits, old.bucket.levels(now), strict=True):
            held.setdefault(limit.per, level)
        self.bucket.fill([held.get(limit.per, 0.0) for limit in self.bucket.limits], now)

    def _answer(self, verdict: Verdict, wall: float) -> Decision:
        headers = {}
        if self.headers:
            headers = {
                "X-RateLimit-Limit": number(verdict.limit.burst),
                "X-RateLimit-Remaining": str(verdict.remaining),
                "X-RateLimit-Reset-After": f"{ceil_ms(verdict.reset_after):.3f}",
                "X-RateLimit-Reset": str(epoch_seconds(wall, verdict.reset_after)),
            }
        if verdict.admitted:
            return Decision(True, headers=headers)
        wait = verdict.retry_after
        if self.retry_after == "int":
            headers["Retry-After"] = str(max(1, math.ceil(wait - EPSILON)))
        else:
            headers["Retry-After"] = f"{max(0.001, ceil_ms(wait)):.3f}"
        return Decision(False, 429, headers)
