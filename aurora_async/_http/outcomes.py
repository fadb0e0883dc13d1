"""What a response means for its token: the policy's verdict (yours first, then the
default table of ``_core.policy``), accounted on the lease's token through the port."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING

import aiohttp

from .. import _log
from .._core.headers import RateLimitInfo, parse_rate_limit_headers
from .._core.policy import Outcome, Verdict, classify
from .._core.quota import MAX_BODY
from .._core.quota import classify as classify_quota
from .._core.vendor_headers import parse_vendor

if TYPE_CHECKING:
    from .._pool.lease import Lease
    from .options import PolicyFunction
    from .port import PoolPort

__all__ = ["ELSEWHERE", "Judge", "may_carry_rate_limits"]

#: What a response from another origin means for the token: nothing (it went fine).
ELSEWHERE = Outcome(Verdict.OK)
_NO_HEADERS = RateLimitInfo()
#: The statuses a spent quota is answered with (OpenAI and Google 429, GitHub 403 or
#: 429, Anthropic 400): their bodies are read and looked at before the default table.
QUOTA_STATUSES = frozenset({400, 403, 429})


def may_carry_rate_limits(headers: Mapping[str, str]) -> bool:
    """Whether any header name could matter to ``parse_rate_limit_headers``: those with
    "rate" in them, and ``Retry-After`` (its rule, checked on every name at once). When
    none does, the parser would find nothing: its answer is known without it."""
    names = "\n".join(headers.keys()).lower()
    return "rate" in names or "retry-after" in names


class Judge:
    """Classifies responses and accounts for them on the lease's token."""

    __slots__ = ("_policy", "_port", "_slack")

    def __init__(self, port: PoolPort, policy: PolicyFunction | None, slack: float) -> None:
        self._port = port
        self._policy = policy
        self._slack = slack

    def judge(
        self, resp: aiohttp.ClientResponse, lease: Lease, foreign: bool
    ) -> Outcome | Awaitable[Outcome | None]:
        """The outcome, accounted for; or, from a policy that must be awaited, its
        awaitable (then :meth:`judged` finishes the work). ``foreign``: the response came
        from another origin after a redirect, and says nothing of the token."""
        if foreign:
            self._port.succeeded(lease)
            return ELSEWHERE
        policy = self._policy
        if policy is not None:
            result = policy(resp)
            if inspect.isawaitable(result):
                return result
            return self.account(resp, lease, _checked(result))
        if resp.status in QUOTA_STATUSES:
            return self._quota(resp, lease)
        return self.account(resp, lease, None)

    async def _quota(self, resp: aiohttp.ClientResponse, lease: Lease) -> Outcome | None:
        """A refusal that may say the token's quota is spent until a reset (``_core.quota``
        knows the shapes): then the token is parked until then, not cooled for a moment
        and retried into the same refusal. ``None``: the default table decides."""
        size = resp.content_length
        body = await resp.read() if size is None or size <= MAX_BODY else None
        wall = time.time()
        spent = classify_quota(resp.status, resp.headers, body, wall)
        if spent is None:
            return None
        seconds = max(0.0, spent.parked_until(wall) - wall)
        if spent.reset_at is None:  # the token's own calendar quota says when, if it has one
            declared = self._port.calendar_reset(lease, spent.resource)
            if declared is not None:
                seconds = declared
        _log.warning(
            "aurora.token.quota_exhausted",
            token=self._port.name(lease),
            reason=spent.reason,  # fixed text: never the body, which may echo a secret
            resource=spent.resource,
            seconds=round(seconds, 3),
        )
        return Outcome(Verdict.RATE_LIMITED, seconds, retry=True, before_server_acted=True)

    async def judged(
        self, pending: Awaitable[Outcome | None], resp: aiohttp.ClientResponse, lease: Lease
    ) -> Outcome:
        return self.account(resp, lease, _checked(await pending))

    def account(
        self, resp: aiohttp.ClientResponse, lease: Lease, outcome: Outcome | None
    ) -> Outcome:
        """Read the rate-limit headers, classify (unless the policy did) and report."""
        headers = resp.headers
        info = _NO_HEADERS
        if may_carry_rate_limits(headers):
            wall = time.time()
            readings = parse_vendor(headers, wall)
            if readings:
                self._port.server_levels(lease, readings)
            info, problems = parse_rate_limit_headers(headers, now=wall)
            for problem in problems:
                _log.debug(
                    "aurora.http.header_ignored",
                    token=self._port.name(lease),
                    header=problem.header,
                    reason=problem.cause,  # never the value: it may echo a secret
                )
        if outcome is None:
            outcome = classify(resp.status, info)
        self._port.account(lease, outcome, info, self._slack)
        return outcome


def _checked(outcome: object) -> Outcome | None:
    if outcome is not None and not isinstance(outcome, Outcome):
        raise TypeError(
            f"the policy returned {type(outcome).__name__}; it must return an Outcome or None"
        )
    return outcome
