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

if TYPE_CHECKING:
    from .._pool.lease import Lease
    from .options import PolicyFunction
    from .port import PoolPort

__all__ = ["ELSEWHERE", "Judge", "may_carry_rate_limits"]

#: What a response from another origin means for the token: nothing (it went fine).
ELSEWHERE = Outcome(Verdict.OK)
_NO_HEADERS = RateLimitInfo()


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
        return self.account(resp, lease, None)

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
            info, problems = parse_rate_limit_headers(headers, now=time.time())
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
