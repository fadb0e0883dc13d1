"""``IetfRateLimit``: a fixed-window quota announced in the IETF ``RateLimit`` headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from . import _checks as check
from ._numbers import ceil_seconds
from ._profile import Decision, Enforcer, Profile, ServerOptions
from ._window import Count, WindowCounter

_OWNER: Final = "IetfRateLimit"

IetfForm = Literal["structured", "dictionary", "separate"]


@dataclass(frozen=True, slots=True)
class IetfRateLimit(Profile):
    """A quota of ``limit`` requests per window of ``window`` whole seconds, announced in
    the headers of draft-ietf-httpapi-ratelimit-headers, in one of the three forms that
    ``aurora_async`` reads (``_core/headers.py``):

    - ``form="structured"`` (draft-08 and later, structured fields)::

          RateLimit-Policy: "default";q=100;w=10
          RateLimit: "default";r=50;t=3

    - ``form="dictionary"`` (draft-07)::

          RateLimit-Policy: 100;w=10
          RateLimit: limit=100, remaining=50, reset=3

    - ``form="separate"`` (draft-06 and earlier; ``RateLimit-Policy`` from draft-03 on)::

          RateLimit-Policy: 100;w=10
          RateLimit-Limit: 100
          RateLimit-Remaining: 50
          RateLimit-Reset: 3

    ``r``/``remaining`` counts what is left after this request, ``t``/``reset`` the whole
    seconds until the window ends (rounded up: the drafts make them integers). ``policy``
    names the quota policy in the structured form. The window opens at the token's first
    request once the previous one has ended (with ``aligned=True``, at the multiples of
    ``window`` on the loop clock). Once the quota is spent, requests are answered
    ``status`` with ``remaining`` 0 and, if ``retry_after``, a ``Retry-After`` of the same
    whole seconds as ``t``; they count nothing.

    On a change of profile (:meth:`MockAPI.set_profile`) to another ``IetfRateLimit``
    the current window and what it used carry over.
    """

    limit: int
    window: int
    form: IetfForm = "structured"
    policy: str = "default"
    status: int = 429
    retry_after: bool = True
    aligned: bool = False

    def __post_init__(self) -> None:
        check.whole(_OWNER, "limit", self.limit, 1)
        check.whole(_OWNER, "window", self.window, 1)
        check.choice(_OWNER, "form", self.form, ("structured", "dictionary", "separate"))
        check.name(_OWNER, "policy", self.policy)
        check.status(_OWNER, self.status)

    def _enforcer(self, options: ServerOptions) -> Enforcer:
        return _IetfEnforcer(self)


class _IetfEnforcer(Enforcer):
    __slots__ = ("counter", "profile")

    def __init__(self, profile: IetfRateLimit) -> None:
        self.profile = profile
        self.counter = WindowCounter(profile.limit, profile.window, profile.aligned)

    def decide(self, now: float, wall: float) -> Decision:
        return self._answer(self.counter.take(now))

    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        return self._answer(Count(False, self.profile.limit, until - now))

    def adopt(self, old: Enforcer, now: float) -> None:
        if isinstance(old, _IetfEnforcer):
            self.counter.adopt(old.counter)

    def _answer(self, count: Count) -> Decision:
        profile = self.profile
        quota, window = profile.limit, profile.window
        left = max(0, quota - count.used)
        reset = ceil_seconds(count.reset_after)
        if profile.form == "structured":
            name = profile.policy
            headers = {
                "RateLimit-Policy": f'"{name}";q={quota};w={window}',
                "RateLimit": f'"{name}";r={left};t={reset}',
            }
        elif profile.form == "dictionary":
            headers = {
                "RateLimit-Policy": f"{quota};w={window}",
                "RateLimit": f"limit={quota}, remaining={left}, reset={reset}",
            }
        else:
            headers = {
                "RateLimit-Policy": f"{quota};w={window}",
                "RateLimit-Limit": str(quota),
                "RateLimit-Remaining": str(left),
                "RateLimit-Reset": str(reset),
            }
        if count.admitted:
            return Decision(True, headers=headers)
        if profile.retry_after:
            headers["Retry-After"] = str(max(1, reset))
        return Decision(False, profile.status, headers)
