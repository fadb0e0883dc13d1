"""``FixedWindow``: a fixed number of requests per window, with GitHub's headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from . import _checks as check
from ._numbers import epoch_seconds
from ._profile import Decision, Enforcer, Profile, ServerOptions
from ._window import Count, WindowCounter

_OWNER: Final = "FixedWindow"


@dataclass(frozen=True, slots=True)
class FixedWindow(Profile):
    """At most ``limit`` requests per window of ``window`` seconds, the way GitHub's REST
    API counts its primary rate limit.

    The window opens at the token's first request once the previous one has ended (with
    ``aligned=True``, at the multiples of ``window`` on the loop clock instead). With
    ``headers="github"`` every answer carries ``X-RateLimit-Limit``,
    ``X-RateLimit-Remaining`` (after this request), ``X-RateLimit-Used`` (in this window,
    this request included), ``X-RateLimit-Reset`` (the window's end as a Unix time in
    whole seconds, rounded up) and ``X-RateLimit-Resource``; ``headers=None`` sends none.
    Once the window is spent, requests are answered ``status`` (403 like GitHub, or 429)
    with ``Remaining: 0`` and ``Used`` at the limit, and no ``Retry-After``; they count
    nothing.

    On a change of profile (:meth:`MockAPI.set_profile`) to another ``FixedWindow`` the
    current window and what it used carry over; the new limit and length apply to them.
    """

    limit: int
    window: float = 3600.0
    headers: Literal["github"] | None = "github"
    status: int = 403
    resource: str = "core"
    aligned: bool = False

    def __post_init__(self) -> None:
        check.whole(_OWNER, "limit", self.limit, 1)
        object.__setattr__(self, "window", check.seconds(_OWNER, "window", self.window))
        check.choice(_OWNER, "headers", self.headers, ("github", None))
        check.status(_OWNER, self.status)
        check.name(_OWNER, "resource", self.resource)

    def _enforcer(self, options: ServerOptions) -> Enforcer:
        return _FixedEnforcer(self)


class _FixedEnforcer(Enforcer):
    __slots__ = ("counter", "profile")

    def __init__(self, profile: FixedWindow) -> None:
        self.profile = profile
        self.counter = WindowCounter(profile.limit, profile.window, profile.aligned)

    def decide(self, now: float, wall: float) -> Decision:
        return self._answer(self.counter.take(now), wall)

    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        return self._answer(Count(False, self.profile.limit, until - now), wall)

    def adopt(self, old: Enforcer, now: float) -> None:
        if isinstance(old, _FixedEnforcer):
            self.counter.adopt(old.counter)

    def _answer(self, count: Count, wall: float) -> Decision:
        profile = self.profile
        headers = {}
        if profile.headers == "github":
            headers = {
                "X-RateLimit-Limit": str(profile.limit),
                "X-RateLimit-Remaining": str(max(0, profile.limit - count.used)),
                "X-RateLimit-Used": str(count.used),
                "X-RateLimit-Reset": str(epoch_seconds(wall, count.reset_after)),
                "X-RateLimit-Resource": profile.resource,
            }
        if count.admitted:
            return Decision(True, headers=headers)
        return Decision(False, profile.status, headers)
