"""The default outcome policy: what an HTTP status and its rate-limit headers mean for a token.

Pure: a status and a :class:`~aurora_async._core.headers.RateLimitInfo` go in, an
:class:`Outcome` comes out. APIs differ, so the policy is pluggable: a user's own policy
returns an :class:`Outcome` too, best built with its class-method constructors.

=================================================  =============================================
response                                           outcome
=================================================  =============================================
below 400 (1xx, 2xx, 3xx)                          ``OK``; if the headers say nothing remains
                                                   and give a reset, cool the token until then
429, or 403 with Retry-After or nothing remaining  ``RATE_LIMITED``, retry on another token;
                                                   cool for Retry-After, else the reset, else
                                                   the pool's backoff decides
401                                                ``REVOKED``, retry on another token
other 403, other 4xx                               ``CLIENT_ERROR``, returned to the caller
5xx (and any status from 600 on)                   ``SERVER_ERROR``, retry on another token
=================================================  =============================================
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from http import HTTPStatus

from .headers import RateLimitInfo

__all__ = ["Outcome", "Verdict", "classify"]


class Verdict(enum.Enum):
    """What happened to one call, as far as the token is concerned."""

    OK = "ok"  # 2xx/3xx
    RATE_LIMITED = "rate_limited"  # 429, or 403 with Retry-After or remaining 0
    REVOKED = "revoked"  # 401
    CLIENT_ERROR = "client_error"  # other 4xx incl. other 403: returned, nothing disabled
    SERVER_ERROR = "server_error"  # 5xx
    TRANSPORT_ERROR = "transport_error"  # connection errors, timeouts (no response)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one call and what the pool should do about it.

    ``cooldown`` is how long to cool the token, in seconds; ``None`` lets the pool's backoff
    decide for ``RATE_LIMITED`` and means no cooldown otherwise. ``retry`` asks for the
    request to be retried on another token, and ``before_server_acted`` says the failure
    came before the server acted on the request (429, 401, connection refused), so even a
    non-idempotent method may be retried. For ``REVOKED``, ``reason`` becomes the reason the
    token is disabled.
    """

    verdict: Verdict
    cooldown: float | None = None
    retry: bool = False
    reason: str | None = None
    before_server_acted: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, Verdict):
            raise TypeError(f"Outcome verdict must be a Verdict, not {self.verdict!r}")
        if self.cooldown is None:
            return
        if isinstance(self.cooldown, bool) or not isinstance(self.cooldown, int | float):
            raise TypeError(
                f"Outcome cooldown must be a number of seconds or None, "
                f"not {type(self.cooldown).__name__}"
            )
        if not math.isfinite(self.cooldown) or self.cooldown < 0:
            raise ValueError(f"Outcome cooldown must be finite and >= 0, got {self.cooldown!r}")
        object.__setattr__(self, "cooldown", float(self.cooldown))

    @classmethod
    def ok(cls, *, cooldown: float | None = None) -> Outcome:
        """A call that went through; ``cooldown`` rests the token if its quota is spent."""
        return cls(Verdict.OK, cooldown=cooldown)

    @classmethod
    def rate_limited(cls, retry_after: float | None = None, reason: str | None = None) -> Outcome:
        """The server refused the call for rate: cool the token, retry on another one."""
        return cls(
            Verdict.RATE_LIMITED,
            cooldown=retry_after,
            retry=True,
            reason=reason,
            before_server_acted=True,
        )

    @classmethod
    def revoked(cls, reason: str) -> Outcome:
        """The token is dead: disable it with ``reason``, retry on another one."""
        return cls(Verdict.REVOKED, retry=True, reason=reason, before_server_acted=True)

    @classmethod
    def client_error(cls, reason: str | None = None) -> Outcome:
        """The request itself is at fault: return the response, keep the token."""
        return cls(Verdict.CLIENT_ERROR, reason=reason)

    @classmethod
    def server_error(cls, reason: str | None = None) -> Outcome:
        """The server failed, perhaps after acting: retry on another token if allowed."""
        return cls(Verdict.SERVER_ERROR, retry=True, reason=reason)

    @classmethod
    def transport_error(cls, reason: str, *, before_server_acted: bool) -> Outcome:
        """No response (connection error, timeout): retry on another token if allowed."""
        return cls(
            Verdict.TRANSPORT_ERROR,
            retry=True,
            reason=reason,
            before_server_acted=before_server_acted,
        )


def classify(status: int, info: RateLimitInfo) -> Outcome:
    """The default outcome of a response with ``status`` and rate-limit headers ``info``."""
    if status < 400:
        return _success(info)
    if status == 401:
        return Outcome.revoked(_describe(status))
    if status == 429 or (status == 403 and (info.retry_after is not None or info.exhausted)):
        return Outcome.rate_limited(_rate_limit_cooldown(info), reason=_describe(status))
    if status < 500:
        return Outcome.client_error(_describe(status))
    return Outcome.server_error(_describe(status))


_OK = Outcome(Verdict.OK)  # the usual verdict, made once (Outcome is immutable)


def _success(info: RateLimitInfo) -> Outcome:
    """Fine; when nothing remains and the reset is known, rest the token until then."""
    if info.exhausted and info.reset_after is not None:
        return Outcome.ok(cooldown=info.reset_after)
    return _OK


def _rate_limit_cooldown(info: RateLimitInfo) -> float | None:
    """Retry-After if given, else the reset of the window, else ``None`` (backoff)."""
    return info.retry_after if info.retry_after is not None else info.reset_after


def _describe(status: int) -> str:
    """``"HTTP 401 Unauthorized"``, or ``"HTTP 499"`` for a status without a standard name."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
