"""The retry rules of ``pool.request`` (``_core.retry``): the full table, exact pauses,
and a property test against the conditions the attempt loop used to spell out inline."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from aurora_async._core.policy import Outcome, Verdict
from aurora_async._core.retry import (
    IDEMPOTENT,
    Retry,
    RetryBudget,
    Stop,
    attempts_allowed,
    decide,
    lease_wait,
    retries_unsafe,
)

INF = math.inf
SAFE = RetryBudget(tries=4, safe=True, deadline=INF, cap=2.0)
UNSAFE = RetryBudget(tries=4, safe=False, deadline=INF, cap=2.0)
ONCE = RetryBudget(tries=1, safe=True, deadline=INF, cap=2.0)
ONCE_UNSAFE = RetryBudget(tries=1, safe=False, deadline=INF, cap=2.0)
BY_TEN = RetryBudget(tries=4, safe=True, deadline=10.0, cap=2.0)

OK = Outcome.ok()
RESTED = Outcome.ok(cooldown=5)
CLIENT = Outcome.client_error("HTTP 404 Not Found")
LIMITED = Outcome.rate_limited(7.0)
REVOKED = Outcome.revoked("HTTP 401 Unauthorized")
SERVER = Outcome.server_error("HTTP 503 Service Unavailable")
SERVER_NO = Outcome(Verdict.SERVER_ERROR)  # a policy's 5xx that is not to be retried
REFUSED = Outcome(Verdict.TRANSPORT_ERROR, retry=True, before_server_acted=True)
DROPPED = Outcome(Verdict.TRANSPORT_ERROR, retry=True)

# (outcome, attempt, revoked, budget, backoff, now, answered) -> decision
TABLE = [
    # what the outcome says first
    pytest.param(OK, 1, 0, SAFE, 0.05, 0.0, True, Stop.FINAL, id="ok"),
    pytest.param(RESTED, 1, 0, SAFE, 0.05, 0.0, True, Stop.FINAL, id="ok-resting-the-token"),
    pytest.param(CLIENT, 1, 0, SAFE, 0.05, 0.0, True, Stop.FINAL, id="client-error"),
    pytest.param(SERVER_NO, 1, 0, SAFE, 0.05, 0.0, True, Stop.FINAL, id="policy-5xx-no-retry"),
    # 429 and 401: at once, the backoff untouched
    pytest.param(LIMITED, 1, 0, SAFE, 0.05, 0.0, True, Retry(0.0, 0.05), id="429"),
    pytest.param(LIMITED, 3, 0, SAFE, 0.4, 0.0, True, Retry(0.0, 0.4), id="429-third-of-four"),
    pytest.param(LIMITED, 4, 0, SAFE, 0.05, 0.0, True, Stop.EXHAUSTED, id="429-fourth-of-four"),
    pytest.param(LIMITED, 1, 0, UNSAFE, 0.05, 0.0, True, Retry(0.0, 0.05), id="429-post"),
    pytest.param(REVOKED, 1, 1, SAFE, 0.05, 0.0, True, Retry(0.0, 0.05), id="first-401"),
    pytest.param(REVOKED, 2, 2, SAFE, 0.05, 0.0, True, Stop.SECOND_401, id="second-401"),
    pytest.param(REVOKED, 1, 1, UNSAFE, 0.05, 0.0, True, Retry(0.0, 0.05), id="401-post"),
    # 5xx: the backoff, doubling from 50 ms up to the cap
    pytest.param(SERVER, 1, 0, SAFE, 0.05, 0.0, True, Retry(0.05, 0.1), id="5xx"),
    pytest.param(SERVER, 1, 0, SAFE, 0.0, 0.0, True, Retry(0.0, 0.05), id="5xx-backoff-0"),
    pytest.param(SERVER, 2, 0, SAFE, 1.5, 0.0, True, Retry(1.5, 2.0), id="5xx-capped"),
    pytest.param(SERVER, 3, 0, SAFE, 2.0, 0.0, True, Retry(2.0, 2.0), id="5xx-at-the-cap"),
    pytest.param(SERVER, 1, 0, UNSAFE, 0.05, 0.0, True, Stop.UNSAFE, id="5xx-post"),
    pytest.param(SERVER, 4, 0, SAFE, 0.05, 0.0, True, Stop.EXHAUSTED, id="5xx-last-attempt"),
    # no response at all: the backoff too
    pytest.param(DROPPED, 1, 0, SAFE, 0.05, 0.0, False, Retry(0.05, 0.1), id="dropped"),
    pytest.param(DROPPED, 1, 0, UNSAFE, 0.05, 0.0, False, Stop.UNSAFE, id="dropped-post"),
    pytest.param(REFUSED, 1, 0, UNSAFE, 0.05, 0.0, False, Retry(0.05, 0.1), id="refused-post"),
    pytest.param(REFUSED, 4, 0, SAFE, 0.05, 0.0, False, Stop.EXHAUSTED, id="refused-last"),
    # a policy's TRANSPORT_ERROR verdict on a response does not wait
    pytest.param(DROPPED, 1, 0, SAFE, 0.05, 0.0, True, Retry(0.0, 0.05), id="policy-transport"),
    # one attempt only, whatever else holds; then "unsafe" before "exhausted"
    pytest.param(SERVER, 1, 0, ONCE, 0.05, 0.0, True, Stop.ONE_ATTEMPT, id="one-attempt"),
    pytest.param(DROPPED, 1, 0, ONCE_UNSAFE, 0.05, 0.0, False, Stop.ONE_ATTEMPT, id="1-not-unsafe"),
    pytest.param(DROPPED, 4, 0, UNSAFE, 0.05, 0.0, False, Stop.UNSAFE, id="unsafe-before-last"),
    pytest.param(REVOKED, 4, 2, SAFE, 0.05, 0.0, True, Stop.EXHAUSTED, id="last-before-401"),
    # the deadline: never a pause past it
    pytest.param(SERVER, 1, 0, BY_TEN, 0.05, 10.0, True, Stop.DEADLINE, id="at-the-deadline"),
    pytest.param(LIMITED, 1, 0, BY_TEN, 0.05, 11.0, True, Stop.DEADLINE, id="past-the-deadline"),
    pytest.param(REVOKED, 2, 2, BY_TEN, 0.05, 11.0, True, Stop.SECOND_401, id="401-before-dl"),
    pytest.param(
        SERVER, 1, 0, BY_TEN, 0.05, 9.96875, True, Retry(0.03125, 0.1), id="pause-to-deadline"
    ),
    pytest.param(
        DROPPED, 1, 0, BY_TEN, 1.0, 9.5, False, Retry(0.5, 2.0), id="dropped-pause-to-deadline"
    ),
]


@pytest.mark.parametrize(
    ("outcome", "attempt", "revoked", "budget", "backoff", "now", "answered", "expected"), TABLE
)
def test_the_retry_table(
    outcome: Outcome,
    attempt: int,
    revoked: int,
    budget: RetryBudget,
    backoff: float,
    now: float,
    answered: bool,
    expected: Retry | Stop,
) -> None:
    got = decide(
        outcome,
        attempt=attempt,
        revoked=revoked,
        budget=budget,
        backoff=backoff,
        now=now,
        answered=answered,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("max_attempts", "replayable", "expected"),
    [(4, True, 4), (4, False, 1), (1, True, 1), (1, False, 1), (9, True, 9)],
)
def test_a_body_that_cannot_be_sent_twice_gets_one_attempt(
    max_attempts: int, replayable: bool, expected: int
) -> None:
    assert attempts_allowed(max_attempts, replayable) == expected


def test_idempotent_methods_are_those_of_rfc_9110() -> None:
    assert frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) == IDEMPOTENT


@pytest.mark.parametrize(
    ("method", "retry_unsafe", "expected"),
    [
        ("GET", False, True),
        ("HEAD", False, True),
        ("OPTIONS", False, True),
        ("PUT", False, True),
        ("DELETE", False, True),
        ("TRACE", False, True),
        ("POST", False, False),
        ("PATCH", False, False),
        ("CONNECT", False, False),
        ("POST", True, True),
        ("PATCH", True, True),
        ("get", False, False),  # the caller upper-cases the method first
    ],
)
def test_which_methods_retry_failures_that_may_have_reached_the_server(
    method: str, retry_unsafe: bool, expected: bool
) -> None:
    assert retries_unsafe(method, retry_unsafe) is expected


@pytest.mark.parametrize(
    ("lease_timeout", "deadline", "now", "expected"),
    [
        (None, INF, 5.0, None),
        (3.0, INF, 5.0, 3.0),
        (None, 10.0, 4.0, 6.0),
        (3.0, 10.0, 4.0, 3.0),
        (10.0, 10.0, 4.0, 6.0),
        (None, 10.0, 12.0, 0.0),
        (3.0, 10.0, 12.0, 0.0),
    ],
)
def test_a_lease_waits_no_longer_than_the_deadline_allows(
    lease_timeout: float | None, deadline: float, now: float, expected: float | None
) -> None:
    assert lease_wait(lease_timeout, deadline, now) == expected


# -- against the rules as the attempt loop spelled them out before they moved here -------


def _reference(
    outcome: Outcome,
    attempt: int,
    revoked: int,
    budget: RetryBudget,
    backoff: float,
    now: float,
    answered: bool,
) -> Retry | None:
    """The loop's old conditions (``None``: not retried)."""
    before = outcome.before_server_acted
    if answered:
        retry = (
            outcome.retry
            and attempt < budget.tries
            and (budget.safe or before)
            and revoked < 2
            and now < budget.deadline
        )
    else:  # a transport failure: retried whatever the 401 count (it is below 2 then)
        retry = attempt < budget.tries and (budget.safe or before) and now < budget.deadline
    if not retry:
        return None
    if answered and outcome.verdict is not Verdict.SERVER_ERROR:
        return Retry(0.0, backoff)
    pause = min(backoff, max(0.0, budget.deadline - now))
    return Retry(pause, min(budget.cap, max(backoff * 2, 0.05)))


def _old_transport_why(before: bool, safe: bool, tries: int) -> str:
    """The loop's old message choice for a transport failure that is not retried."""
    if tries == 1:
        return "body"
    if before or safe:
        return "last"
    return "unsafe"


_WHY = {Stop.ONE_ATTEMPT: "body", Stop.UNSAFE: "unsafe"}

OUTCOMES = [OK, RESTED, CLIENT, SERVER_NO, LIMITED, REVOKED, SERVER, REFUSED, DROPPED]


def _check(
    outcome: Outcome,
    attempt: int,
    revoked: int,
    budget: RetryBudget,
    backoff: float,
    now: float,
    answered: bool,
) -> None:
    if outcome.verdict is Verdict.REVOKED:
        revoked += 1  # counted before the rules are asked, as the loop does
    got = decide(
        outcome,
        attempt=attempt,
        revoked=revoked,
        budget=budget,
        backoff=backoff,
        now=now,
        answered=answered,
    )
    expected = _reference(outcome, attempt, revoked, budget, backoff, now, answered)
    if expected is None:
        assert isinstance(got, Stop)
        if not answered:  # the reason picks the RequestFailed message, as it used to
            old = _old_transport_why(outcome.before_server_acted, budget.safe, budget.tries)
            assert _WHY.get(got, "last") == old
    else:
        assert got == expected
        assert got.pause <= max(0.0, budget.deadline - now)


def test_decide_keeps_the_loops_old_rules_on_every_combination() -> None:
    for outcome, attempt, revoked, tries, safe, answered, (deadline, now) in itertools.product(
        OUTCOMES,
        range(1, 6),
        range(2),
        range(1, 5),
        (False, True),
        (False, True),
        ((INF, 0.0), (10.0, 10.0), (10.0, 9.5), (10.0, 11.0)),
    ):
        if answered or outcome.verdict is Verdict.TRANSPORT_ERROR:
            budget = RetryBudget(tries, safe, deadline, 2.0)
            _check(outcome, attempt, revoked, budget, 0.7, now, answered)


@given(
    outcome=st.sampled_from(OUTCOMES),
    attempt=st.integers(1, 6),
    revoked=st.integers(0, 1),
    budget=st.builds(
        RetryBudget,
        tries=st.integers(1, 6),
        safe=st.booleans(),
        deadline=st.one_of(st.just(INF), st.floats(0, 1e6)),
        cap=st.floats(0, 1e4),
    ),
    backoff=st.floats(0, 1e4),
    now=st.floats(0, 1e6),
    answered=st.booleans(),
)
def test_decide_keeps_the_loops_old_pauses(
    outcome: Outcome,
    attempt: int,
    revoked: int,
    budget: RetryBudget,
    backoff: float,
    now: float,
    answered: bool,
) -> None:
    # A failure without a response is a TRANSPORT_ERROR (and retryable in kind).
    assume(answered or outcome.verdict is Verdict.TRANSPORT_ERROR)
    _check(outcome, attempt, revoked, budget, backoff, now, answered)
