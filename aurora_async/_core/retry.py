"""When ``pool.request`` tries a failed call again: the retry rules.

Pure: an outcome, the request's budget and ``now`` (the event loop's time) go in, a
:class:`Retry` or the :class:`Stop` reason comes out. The shell does what it says:
waits the pause, then leases a token for the next attempt, which goes to another token
than the failed one when one can fire now (the pool's ``RetryLease``).

A failure is retried when all of these hold, checked in this order (the first that
fails is the :class:`Stop` reason):

=====================  ==========================================================
rule                   else
=====================  ==========================================================
the outcome asks for   ``FINAL``: fine, a client error, anything the policy says
a retry                not to retry
more than one attempt  ``ONE_ATTEMPT``: the body cannot be sent twice (see
is allowed             :func:`attempts_allowed`), or ``max_attempts`` is 1
the failure came       ``UNSAFE``: a 5xx, a timeout or a dropped connection of a
before the server      non-idempotent method (POST, PATCH) without ``retry_unsafe``
acted, or retrying is
safe
attempts are left      ``EXHAUSTED``
not the second 401     ``SECOND_401``: a second revoked token within one request is
of the request         more likely the request's fault than the tokens'. Only a 401
                       from a *proven* token counts (one that has served a call):
                       an unproven token's 401 is most likely the token's own fault
                       (see :func:`counts_against_request`)
the deadline is ahead  ``DEADLINE``
=====================  ==========================================================

The pause: a 5xx (``SERVER_ERROR``) and a failure with no response at all wait the
current backoff (never past the deadline), which then doubles (from 50 ms if it was 0)
up to the cap. A 429 or a 401 is retried at once: the token it came from is cooled or
disabled, and the next attempt goes to another one.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from .policy import Outcome, Verdict

__all__ = [
    "IDEMPOTENT",
    "MIN_BACKOFF",
    "Retry",
    "RetryBudget",
    "Stop",
    "attempts_allowed",
    "counts_against_request",
    "decide",
    "lease_wait",
    "retries_unsafe",
]

#: Methods a retry cannot make worse (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: A backoff of 0 doubles from here.
MIN_BACKOFF = 0.05


class Stop(enum.Enum):
    """Why a failure is not retried (the response goes back, or the request fails)."""

    FINAL = "final"  # the outcome asks for no retry
    ONE_ATTEMPT = "one_attempt"  # only one attempt allowed (body not replayable, or max 1)
    UNSAFE = "unsafe"  # may have reached the server, and the method is not safe to repeat
    EXHAUSTED = "exhausted"  # that was the last attempt allowed
    SECOND_401 = "second_401"  # the request's second revoked token
    DEADLINE = "deadline"  # the request's deadline has passed


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``pause`` seconds (0: at once); ``backoff`` is the next pause."""

    pause: float
    backoff: float


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """What one request allows: ``tries`` attempts, the first included; ``safe``: retry
    failures that may have reached the server; ``deadline`` (loop time, ``inf``: none);
    ``cap``: the longest pause."""

    tries: int
    safe: bool
    deadline: float
    cap: float


def attempts_allowed(max_attempts: int, replayable: bool) -> int:
    """A body that cannot be sent twice (a file, a stream) gets one attempt."""
    return max_attempts if replayable else 1


def counts_against_request(outcome: Outcome, proven: bool) -> bool:
    """Whether ``outcome`` uses up the request's one retried 401: a ``REVOKED`` outcome
    from a token that has served a call (``proven``). A token that never served one and
    answers 401 is most likely dead (a revoked key in the file), not refusing this
    request: its 401 is retried on another token without counting, so dead tokens at the
    head of the list cannot make a good request fail. Such attempts still count against
    ``max_attempts``, which bounds how many tokens one bad request can disable."""
    return outcome.verdict is Verdict.REVOKED and proven


def retries_unsafe(method: str, retry_unsafe: bool) -> bool:
    """Whether failures that may have reached the server are retried: for an idempotent
    ``method`` (upper case), or for any when the caller allows it."""
    return method in IDEMPOTENT or retry_unsafe


def lease_wait(lease_timeout: float | None, deadline: float, now: float) -> float | None:
    """How long the next lease may wait: the caller's ``lease_timeout``, bounded by what
    is left before the deadline (``None``: no bound)."""
    if deadline == math.inf:
        return lease_timeout
    left = max(0.0, deadline - now)
    return left if lease_timeout is None else min(lease_timeout, left)


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    revoked: int,
    budget: RetryBudget,
    backoff: float,
    now: float,
    answered: bool = True,
) -> Retry | Stop:
    """Retry after attempt number ``attempt`` (from 1) failed with ``outcome``, or why not.

    ``revoked`` counts the request's ``REVOKED`` outcomes that count against it (see
    :func:`counts_against_request`), this one included; ``backoff``
    is the pause a 5xx or transport failure waits now; ``answered`` is false for a failure
    with no response (connection error, timeout), which always waits the backoff."""
    if not outcome.retry:
        return Stop.FINAL
    tries = budget.tries
    if tries == 1:
        return Stop.ONE_ATTEMPT
    if not (budget.safe or outcome.before_server_acted):
        return Stop.UNSAFE
    if attempt >= tries:
        return Stop.EXHAUSTED
    if revoked >= 2:
        return Stop.SECOND_401
    deadline = budget.deadline
    if now >= deadline:
        return Stop.DEADLINE
    if answered and outcome.verdict is not Verdict.SERVER_ERROR:
        return Retry(0.0, backoff)
    pause = min(backoff, deadline - now)  # now < deadline here
    return Retry(pause, min(budget.cap, max(backoff * 2, MIN_BACKOFF)))
