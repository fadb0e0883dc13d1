"""What every enforcer profile of the mock server shares: the public :class:`Profile` base,
the per-token :class:`Enforcer` state it builds, and the :class:`Decision` that state makes.

A profile is frozen configuration (how a real server limits one credential); an enforcer
is one token's mutable limiter state under that profile. Enforcers are pure: the loop time
``now`` (seconds) and the Unix time ``wall`` of the same moment go in, a decision comes out;
they never read a clock. ``wall`` is only used to write Unix times into headers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

#: How ``Retry-After`` is written: ``"0.200"`` or whole seconds rounded up.
RetryAfterForm = Literal["float", "int"]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The server-wide options a profile may inherit (only :class:`LeakyBucket` does)."""

    tolerance: float = 0.005
    retry_after: RetryAfterForm = "float"
    rate_limit_headers: bool = True


@dataclass(frozen=True, slots=True)
class Decision:
    """What an enforcer decided for one request.

    ``admitted`` requests are counted against the limit and answered by the server (200,
    or 503 for its ``error_rate``) after ``delay`` seconds (nginx's ``limit_req`` without
    ``nodelay``); rejected ones are answered ``status``. ``headers`` go on the answer
    either way. ``page`` replaces the server's JSON body of a rejection with this HTML.
    """

    admitted: bool
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    page: str | None = None


class Enforcer(ABC):
    """One token's limiter state under one profile (see the module docs)."""

    __slots__ = ()

    @abstractmethod
    def decide(self, now: float, wall: float) -> Decision:
        """Admit one request arriving at ``now`` (charging it) or reject it."""

    @abstractmethod
    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        """The rejection for a request at ``now`` while another client has spent the
        token's quota until the loop time ``until`` (nothing is charged)."""

    def adopt(self, old: Enforcer, now: float) -> None:  # noqa: B027  # optional hook
        """Take over what ``old`` (the token's previous state) has spent, when the token's
        profile changes at ``now``. By default nothing carries over."""


class Profile(ABC):
    """How the mock server limits a token: the base of :class:`LeakyBucket`,
    :class:`NginxLimitReq`, :class:`FixedWindow` and :class:`IetfRateLimit`.

    Profiles are frozen, validated on construction and may be shared: each token gets its
    own state, as each key gets its own node in one nginx zone.
    """

    __slots__ = ()

    @abstractmethod
    def _enforcer(self, options: ServerOptions) -> Enforcer:
        """Fresh state for one token under this profile."""


def enforcer(profile: Profile, options: ServerOptions) -> Enforcer:
    """Fresh state for one token under ``profile`` (the server's way in)."""
    return profile._enforcer(options)
