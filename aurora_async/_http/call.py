"""``Call``: one ``pool.request``, its arguments prepared once and its attempts so far."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._core.policy import Outcome, Verdict
from .._core.redirect import follow_ourselves
from .._core.retry import (
    Retry,
    RetryBudget,
    Stop,
    attempts_allowed,
    counts_against_request,
    decide,
    lease_wait,
    retries_unsafe,
)
from . import timeouts, urls
from .body import replayable as _replayable

if TYPE_CHECKING:
    from yarl import URL

    from .._core.scheduler import Slot
    from .options import HttpOptions

__all__ = ["TRANSPORT_AFTER", "TRANSPORT_BEFORE", "Call"]

#: A failure with no response, before the server saw the request (connection refused) ...
TRANSPORT_BEFORE = Outcome(Verdict.TRANSPORT_ERROR, retry=True, before_server_acted=True)
#: ... or perhaps after it acted (a timeout, a dropped connection).
TRANSPORT_AFTER = Outcome(Verdict.TRANSPORT_ERROR, retry=True)


class Call:
    """One request: what to send (``kwargs`` are the other aiohttp arguments), how the
    retry rules apply to it, and what happened so far (``notes``: one line per attempt
    that failed, for ``RequestFailed``)."""

    __slots__ = (
        "attempt",
        "backoff",
        "cost",
        "deadline",
        "headers_in",
        "kwargs",
        "last",
        "lease_timeout",
        "max_redirects",
        "method",
        "notes",
        "options",
        "params_in",
        "read",
        "replayable",
        "revoked",
        "target",
        "timeout",
        "tries",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        target: URL,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool | None,
        options: HttpOptions,
    ) -> None:
        self.method = method  # upper case
        self.url = url  # as given, for messages
        self.target = target
        self.cost = cost
        self.lease_timeout = lease_timeout
        self.kwargs = kwargs
        self.read = read  # None: streaming; else read the body, raise_for_status if true
        self.options = options  # the pool's, with this request's own put over them

    def prepare(self, token_in_authorization: bool, now: float) -> None:
        """Check and sort the arguments, once, when the request starts (``now``)."""
        options = self.options
        self.deadline = math.inf if options.deadline is None else now + options.deadline
        kwargs = self.kwargs
        headers_in = self.headers_in = kwargs.pop("headers", None)
        self.params_in = urls.query(kwargs.pop("params", None))
        self.timeout = timeouts.checked(kwargs.pop("timeout", timeouts.UNSET))
        replayable = self.replayable = _replayable(kwargs.get("data"))
        manual = follow_ourselves(
            token_in_authorization=token_in_authorization,
            replayable=replayable,
            caller_cookies="cookies" in kwargs,
            caller_headers=headers_in,
            caller_credentials=urls.has_credentials,
            allow_redirects=bool(kwargs.get("allow_redirects", True)),
        )
        # The caller's max_redirects, as given (aiohttp's default 10); None: aiohttp
        # follows the redirects.
        self.max_redirects: Any = None
        if manual:
            self.max_redirects = kwargs.pop("max_redirects", 10)
            kwargs["allow_redirects"] = False
        self.tries = attempts_allowed(options.max_attempts, replayable)
        self.attempt = 0
        self.revoked = 0  # REVOKED outcomes so far, from proven tokens
        self.backoff = options.retry_backoff[0]
        self.last: Slot | None = None  # the previous attempt's token: the next avoids it
        self.notes: list[str] = []

    def lease_wait(self, now: float) -> float | None:
        """How long the next lease may wait."""
        return lease_wait(self.lease_timeout, self.deadline, now)

    def retry(
        self, outcome: Outcome, now: float, answered: bool = True, proven: bool = True
    ) -> Retry | Stop:
        """The retry rules' answer to this attempt's ``outcome``; a retry's backoff is
        kept for the next pause. ``proven``: the attempt's token had served a call (a
        401 from one that had not does not use up the request's retried 401)."""
        if counts_against_request(outcome, proven):
            self.revoked += 1
        options = self.options
        budget = RetryBudget(
            self.tries,
            retries_unsafe(self.method, options.retry_unsafe),
            self.deadline,
            options.retry_backoff[1],
        )
        step = decide(
            outcome,
            attempt=self.attempt,
            revoked=self.revoked,
            budget=budget,
            backoff=self.backoff,
            now=now,
            answered=answered,
        )
        if isinstance(step, Retry):
            self.backoff = step.backoff
        return step
