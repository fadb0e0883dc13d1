"""What every enforcer profile of the mock server shares: the public :class:`Profile` base,
the per-token :class:`Enforcer` state it builds, and the :class:`Decision` that state makes.

A profile is frozen configuration (how a real server limits one credential); an enforcer
is one token's mutable limiter state under that profile. Enforcers are pure: the loop time
``now`` (seconds) and the Unix time ``wall`` of the same moment go in, a decision comes out;
they never read a clock. ``wall`` is only used to write Unix times into headers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

#: How ``Retry-After`` is written: ``"0.200"`` or whole seconds rounded up.
RetryAfterForm = Literal["float", "int"]


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """The server-wide options a profile may inherit (only :class:`LeakyBucket` does)."""

    tolerance: float = 0.005
    retry_after: RetryAfterForm = "float"
    rate_limit_headers: bool = True


@dataclass(frozen=True, slots=True)
class Call:
    """What a request-aware enforcer (``Profile.reads_body``) sees of a request: its
    method, path, headers and whole body (``b""`` without one; ``None`` when it was
    bigger than the server reads)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Stream:
    """A streamed body: ``chunks`` written one by one, ``interval`` seconds apart, as
    ``content_type`` (server-sent events by default)."""

    chunks: tuple[bytes, ...]
    interval: float = 0.0
    content_type: str = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Decision:
    """What an enforcer decided for one request.

    ``admitted`` requests are counted against the limit and answered by the server (200,
    or 503 for its ``error_rate``) after ``delay`` seconds (nginx's ``limit_req`` without
    ``nodelay``); rejected ones are answered ``status``. ``headers`` go on the answer
    either way. ``page`` replaces the server's JSON body of a rejection with this HTML;
    ``body`` replaces the server's JSON body of any answer, and ``stream`` sends a body
    in chunks instead. ``tokens`` is what an admitted request was charged in tokens
    (:class:`LlmApi`); a rejection with ``bad_request`` is a malformed request, counted
    as such and not as rate limited.
    """

    admitted: bool
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    page: str | None = None
    body: dict[str, Any] | None = None
    stream: Stream | None = None
    tokens: int = 0
    bad_request: bool = False


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

    def decide_call(self, call: Call, now: float, wall: float) -> Decision:
        """:meth:`decide` for a profile that reads requests (``Profile.reads_body``):
        the server calls this one, with the request, instead. By default the request
        does not matter."""
        return self.decide(now, wall)


class Profile(ABC):
    """How the mock server limits a token: the base of :class:`LeakyBucket`,
    :class:`NginxLimitReq`, :class:`FixedWindow`, :class:`IetfRateLimit`,
    :class:`LlmApi` and :class:`GitHubApi`.

    Profiles are frozen, validated on construction and may be shared: each token gets its
    own state, as each key gets its own node in one nginx zone. A profile whose answers
    depend on the request (:class:`LlmApi`, :class:`GitHubApi`) sets ``reads_body``: the
    server then reads the request's body before deciding and calls its enforcer's
    :meth:`Enforcer.decide_call`.
    """

    __slots__ = ()

    #: Whether the server hands this profile's enforcers the request (see above).
    reads_body: ClassVar[bool] = False

    @abstractmethod
    def _enforcer(self, options: ServerOptions) -> Enforcer:
        """Fresh state for one token under this profile."""


def enforcer(profile: Profile, options: ServerOptions) -> Enforcer:
    """Fresh state for one token under ``profile`` (the server's way in)."""
    return profile._enforcer(options)
