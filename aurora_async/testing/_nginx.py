"""``NginxLimitReq``: nginx's ``limit_req`` for one key, computed the way nginx computes it.

This follows ``src/http/modules/ngx_http_limit_req_module.c`` (nginx 1.x,
``ngx_http_limit_req_lookup`` and ``ngx_http_limit_req_account``), in nginx's integers:

- The zone's rate is ``rate * 1000 / scale`` requests per 1000 seconds, i.e. milli-requests
  per second (``scale`` 1 for ``r/s``, 60 for ``r/m``; integer division, so ``7r/m`` is 116).
- Each key has a node with ``excess`` (milli-requests) and ``last`` (milliseconds). Time is
  nginx's ``ngx_current_msec``: whole milliseconds (here ``floor(loop.time() * 1000)``).
- The first request of a key creates its node with ``excess = 0`` and ``last = now``, and
  passes.
- A later request computes ``ms = now - last`` (clamped: below -60000 counts as 1, other
  negative values as 0) and ``excess = max(0, excess - rate * ms / 1000 + 1000)`` (integer
  division). If ``excess > burst * 1000`` the request is rejected and the node is **not**
  updated. Otherwise the node keeps the new ``excess`` (and ``last = now`` if ``ms != 0``).
- An admitted request whose ``excess`` is above the delay threshold waits
  ``(excess - threshold) * 1000 / rate`` milliseconds (integer division) before it is
  served: the threshold is ``delay * 1000`` (0 when ``delay=`` is not given), and infinite
  with ``nodelay``. With ``burst=2 nodelay`` at ``5r/s`` a fresh key passes 3 requests at
  once, then one every 200 ms.

Not modelled: several ``limit_req`` directives on one location (a token has one zone here),
``limit_req_dry_run``, and node expiry. nginx forgets a node that has been idle for a
minute with nothing left in excess only when it needs room for a *new* key; that key's next
request then starts at ``excess = 0``, one request more than a kept node admits. With a
fixed set of tokens nginx creates no new nodes after their first requests, so nodes are
kept for good, as here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final, Literal

from . import _checks as check
from ._profile import Decision, Enforcer, Profile, ServerOptions

_OWNER: Final = "NginxLimitReq"
_SCALE: Final = {"r/s": 1, "r/m": 60}
#: nginx treats a clock that went back more than this many ms as having moved 1 ms.
_BACKWARDS_MS: Final = 60000
_NO_THRESHOLD: Final = math.inf  # nodelay: never delay


def error_page(status: int) -> str:
    """The HTML page nginx answers a rejected request with (``server_tokens off``)."""
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = str(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


@dataclass(frozen=True, slots=True)
class NginxLimitReq(Profile):
    """nginx ``limit_req_zone ... rate={rate}{unit}`` with ``limit_req ... burst={burst}
    [nodelay | delay={delay}]`` and ``limit_req_status {status}``, for one token.

    Admitted requests carry no rate-limit headers; rejected ones are answered ``status``
    with nginx's HTML error page and **no** ``Retry-After`` or rate-limit headers, and do
    not change the token's state. Without ``nodelay`` an admitted request whose excess is
    above ``delay`` requests is held and answered late, as nginx does: a fresh token's
    first ``delay + 1`` requests go at once, the rest of its burst at the rate. The
    arithmetic, exact to nginx's milliseconds and integer milli-requests, is described in
    this module's docstring.

    On a change of profile (:meth:`MockAPI.set_profile`) to another ``NginxLimitReq`` the
    node keeps its ``excess`` and ``last``, as nginx keeps a zone across a reload.
    """

    rate: int
    burst: int = 0
    nodelay: bool = True
    delay: int = 0
    status: int = 429
    unit: Literal["r/s", "r/m"] = "r/s"

    def __post_init__(self) -> None:
        check.whole(_OWNER, "rate", self.rate, 1)
        check.whole(_OWNER, "burst", self.burst, 0)
        check.whole(_OWNER, "delay", self.delay, 0)
        check.status(_OWNER, self.status)
        check.choice(_OWNER, "unit", self.unit, tuple(_SCALE))
        check.choice(_OWNER, "nodelay", self.nodelay, (True, False))
        if self.nodelay and self.delay:
            raise ValueError(
                "NginxLimitReq: nodelay and delay= are exclusive; pass nodelay=False with delay"
            )

    @property
    def milli_rate(self) -> int:
        """The zone's rate as nginx stores it: milli-requests per second."""
        return self.rate * 1000 // _SCALE[self.unit]

    def _enforcer(self, options: ServerOptions) -> Enforcer:
        return NginxNode(self)


def msec(now: float) -> int:
    """nginx's ``ngx_current_msec`` for the loop time ``now``: whole milliseconds."""
    return math.floor(now * 1000 + 1e-6)  # 1 ns of slack for float noise


class NginxNode(Enforcer):
    """One key's node in a ``limit_req`` zone: ``excess`` in milli-requests, ``last`` in
    milliseconds (``None`` until the key's first request creates the node)."""

    __slots__ = ("burst", "excess", "last", "page", "rate", "status", "threshold")

    def __init__(self, profile: NginxLimitReq) -> None:
        self.rate = profile.milli_rate
        self.burst = profile.burst * 1000
        self.threshold = _NO_THRESHOLD if profile.nodelay else profile.delay * 1000
        self.status = profile.status
        self.page = error_page(profile.status)
        self.excess = 0
        self.last: int | None = None

    def decide(self, now: float, wall: float) -> Decision:
        now_ms = msec(now)
        if self.last is None:  # a new node: excess 0, and the request passes
            self.last = now_ms
            self.excess = 0
            return Decision(True)
        ms = now_ms - self.last
        if ms < -_BACKWARDS_MS:
            ms = 1
        elif ms < 0:
            ms = 0
        excess = max(0, self.excess - self.rate * ms // 1000 + 1000)
        if excess > self.burst:
            return Decision(False, self.status, page=self.page)
        self.excess = excess
        if ms:
            self.last = now_ms
        if excess <= self.threshold:
            return Decision(True)
        held_ms = int((excess - self.threshold) * 1000 // self.rate)
        return Decision(True, delay=held_ms / 1000)

    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        return Decision(False, self.status, page=self.page)

    def adopt(self, old: Enforcer, now: float) -> None:
        if isinstance(old, NginxNode):
            self.excess, self.last = old.excess, old.last
