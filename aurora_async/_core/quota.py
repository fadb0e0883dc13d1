"""Tell "quota exhausted until <reset>" from a short rate limit, in a refusal.

Pure: no I/O, no clock; ``wall_now`` is the Unix time the answer arrived. A short rate
limit (a per-minute window: 429 with ``Retry-After``) is the pool's ordinary business:
it cools the token and learns from it. An exhausted *quota* (a daily or monthly budget,
spent credit, GitHub's hourly calendar) is not evidence about the rate: the token is
parked until the quota comes back, or until someone reloads or enables it when no time
is stated. :func:`classify` says which, from the shapes the big APIs answer with:

=================================  ========  ============================================
shape                               status    reset
=================================  ========  ============================================
OpenAI ``insufficient_quota``       429       none stated (spent credit / billing)
OpenAI ``rate_limit_exceeded`` on   429       the message's "try again in <duration>",
a *per day* limit (RPD, TPD)                  else the ``x-ratelimit-reset-*`` header
Anthropic "reached your specified   400/4xx   the time the message states ("regain access
API usage limits"                             on 2026-04-01 at 00:00 UTC")
Anthropic "credit balance is too    400/4xx   none stated
low"
Google ``RESOURCE_EXHAUSTED`` with  429/403   per-day quotas: the next midnight, Pacific
``google.rpc.QuotaFailure``                   time (when Google resets them); otherwise
                                              ``RetryInfo.retryDelay``; per-minute quotas
                                              are short limits (``None``)
Google's older ``quotaExceeded`` /  403/429   the next midnight, Pacific time
``dailyLimitExceeded`` reasons
GitHub primary limit: ``x-rate-     403/429   ``x-ratelimit-reset`` (GitHub: "do not retry
limit-remaining: 0`` with           (200 for  until then"), whatever the window, with the
``x-ratelimit-resource``            GraphQL   resource as ``scope`` (a spent ``search``
                                    errors)   bucket leaves ``core`` usable)
any vendor header family            403/429   that reset, when it is at least
(``vendor_headers``) at 0 with a              :data:`LONG_RESET` away
long reset
=================================  ========  ============================================

Google's per-day answers carry a ``retryDelay`` of some seconds all the same; it is
ignored for them, since retrying then only collects more refusals until midnight.

:data:`LONG_RESET` is 5 minutes: a per-minute window is whole again within 60 seconds,
and OpenAI's ``x-ratelimit-reset-*`` (the time until the window is *full* again) stays
within that too, so a reset further away than five times the longest short window can
only come from an hourly, daily or monthly quota. Below it, the pool's ordinary cooling
(which reads the same reset) is the right treatment.

``reset_at`` ``None`` means no time is known: the quota comes back when the account is
topped up. :meth:`QuotaExhausted.parked_until` then suggests :data:`DEFAULT_PARK` (one
hour): a probe an hour per parked token is nothing, credit added is noticed within the
hour, and ``pool.enable(name)`` ends the parking at once.

Bodies are read only up to :data:`MAX_BODY` bytes (a bigger body is not parsed: error
bodies are small) and nothing raises. ``reason`` is fixed text of this module, never a
piece of the body or of a header, which may echo a secret.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Final

from .vendor_headers import ResourceReading, parse_duration, parse_vendor

__all__ = ["DEFAULT_PARK", "LONG_RESET", "MAX_BODY", "QuotaExhausted", "classify"]

LONG_RESET: Final = 300.0  # seconds: a vendor reset at least this far is a quota's
DEFAULT_PARK: Final = 3600.0  # seconds to park a token whose quota names no reset
MAX_BODY: Final = 64 * 1024  # bytes of a body parsed at most

_GOOGLE_QUOTA_FAILURE: Final = "type.googleapis.com/google.rpc.QuotaFailure"
_GOOGLE_RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
_GOOGLE_ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"
_GOOGLE_DAILY_REASONS: Final = frozenset({"quotaExceeded", "dailyLimitExceeded"})
_PERIOD: Final = re.compile(r"per ?(minute|hour|day)", re.IGNORECASE)
_TRY_AGAIN: Final = re.compile(r"try again in ([0-9][0-9.hmsuµμn]{0,30})")
_OPENAI_DAILY: Final = re.compile(r"per day \((RPD|TPD)\)")
_REGAIN: Final = re.compile(
    r"regain access on ([0-9]{4})-([0-9]{2})-([0-9]{2}) at ([0-9]{2}):([0-9]{2}) UTC"
)
_SCOPE: Final = re.compile(r"[a-z][a-z_]{0,39}")


@dataclass(frozen=True, slots=True)
class QuotaExhausted:
    """A refusal that means "this token's quota is spent until ``reset_at``".

    ``reset_at`` is a Unix time, or ``None`` when the answer names none (see
    :meth:`parked_until`); ``reason`` is short fixed text, safe for logs;
    ``resource`` the pool unit that is spent (``"requests"``, ``"tokens"``, ...) or
    ``None`` for the whole credential; ``scope`` the API's own bucket name where it has
    several (GitHub: ``"search"``, ``"core"``, ``"graphql"``), else ``None``.
    """

    reset_at: float | None
    reason: str
    resource: str | None = None
    scope: str | None = None

    def parked_until(self, wall_now: float, default: float = DEFAULT_PARK) -> float:
        """The Unix time to park the token until: ``reset_at``, or ``default`` seconds
        from ``wall_now`` when no reset is known."""
        return wall_now + default if self.reset_at is None else self.reset_at


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str | None,
    wall_now: float,
) -> QuotaExhausted | None:
    """Whether an answer means the token's quota is exhausted (see the module docs);
    ``None`` for a short rate limit, any other answer, or one that cannot be read.

    ``headers`` is any mapping (case-insensitive lookup is done here), ``body`` the
    raw body (only its first :data:`MAX_BODY` bytes are looked at; a longer body is not
    parsed), ``wall_now`` the Unix time the answer arrived. Never raises for what the
    server sent.
    """
    if status not in (200, 400, 402, 403, 429) or not math.isfinite(wall_now):
        return None
    try:
        document = _document(body)
        readings = parse_vendor(headers, wall_now)
        return _classify(status, document, readings, wall_now)
    except (ValueError, OverflowError, RecursionError):
        return None  # a date out of range, or a body nested too deep: nothing to tell


def _classify(
    status: int, document: Mapping[str, Any], readings: tuple[ResourceReading, ...], now: float
) -> QuotaExhausted | None:
    error = document.get("error")
    if isinstance(error, Mapping):
        for rule in (_openai, _anthropic, _google):
            found = rule(status, error, readings, now)
            if found is not None:
                return found
    github = _github(status, document, readings, now)
    if github is not None or status not in (403, 429):
        return github
    return _long_reset(readings, now)


# --- bodies -----------------------------------------------------------------------------


def _document(body: bytes | str | None) -> Mapping[str, Any]:
    """The body's JSON object, or an empty mapping (no body, too big, not JSON)."""
    if body is None or len(body) > MAX_BODY:
        return {}
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    if "{" not in text:
        return {}
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# --- OpenAI -----------------------------------------------------------------------------


def _openai(
    status: int, error: Mapping[str, Any], readings: tuple[ResourceReading, ...], now: float
) -> QuotaExhausted | None:
    code, kind = _text(error.get("code")), _text(error.get("type"))
    if status == 429 and "insufficient_quota" in (code, kind):
        return QuotaExhausted(None, "openai insufficient_quota: spent credit, no reset stated")
    if status != 429 or code != "rate_limit_exceeded":
        return None
    message = _text(error.get("message"))
    daily = _OPENAI_DAILY.search(message)
    if daily is None:
        return None  # a per-minute limit: the ordinary 429
    resource = "requests" if daily.group(1) == "RPD" else "tokens"
    wait = _try_again(message)
    if wait is None:
        wait = next((r.reset_after for r in readings if r.resource == resource), None)
    reset_at = None if wait is None else now + wait
    return QuotaExhausted(reset_at, f"openai daily {resource} limit reached", resource)


def _try_again(message: str) -> float | None:
    match = _TRY_AGAIN.search(message)
    return None if match is None else parse_duration(match.group(1).rstrip("."))


# --- Anthropic --------------------------------------------------------------------------


def _anthropic(
    status: int, error: Mapping[str, Any], readings: tuple[ResourceReading, ...], now: float
) -> QuotaExhausted | None:
    if not 400 <= status < 500 or _text(error.get("type")) != "invalid_request_error":
        return None
    message = _text(error.get("message"))
    if "reached your specified API usage limits" in message:
        regain = _REGAIN.search(message)
        reset_at = None if regain is None else _utc(*map(int, regain.groups()))
        return QuotaExhausted(reset_at, "anthropic usage limit reached")
    if "credit balance is too low" in message:
        return QuotaExhausted(None, "anthropic credit balance too low, no reset stated")
    return None


def _utc(year: int, month: int, day: int, hour: int, minute: int) -> float | None:
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()
    except ValueError:  # not a date: the limit holds, its end is unknown
        return None


# --- Google -----------------------------------------------------------------------------


def _google(
    status: int, error: Mapping[str, Any], readings: tuple[ResourceReading, ...], now: float
) -> QuotaExhausted | None:
    if status not in (403, 429):
        return None
    details = [item for item in _list(error.get("details")) if isinstance(item, Mapping)]
    kinds = {_text(item.get("@type")) for item in details}
    if _GOOGLE_QUOTA_FAILURE in kinds:
        return _quota_failure(details, now)
    errors = [item for item in _list(error.get("errors")) if isinstance(item, Mapping)]
    reasons = {_text(item.get("reason")) for item in errors}
    if reasons & _GOOGLE_DAILY_REASONS:
        return QuotaExhausted(_next_pacific_midnight(now), "google daily quota exceeded")
    return None


def _quota_failure(details: list[Mapping[str, Any]], now: float) -> QuotaExhausted | None:
    """``RESOURCE_EXHAUSTED`` with a ``QuotaFailure``: the quota's period from its id."""
    names: list[str] = []
    delay: float | None = None
    for item in details:
        kind = _text(item.get("@type"))
        if kind == _GOOGLE_QUOTA_FAILURE:
            for violation in _list(item.get("violations")):
                if isinstance(violation, Mapping):
                    names += [_text(violation.get(key)) for key in ("quotaId", "quotaMetric")]
        elif kind == _GOOGLE_ERROR_INFO and isinstance(item.get("metadata"), Mapping):
            names.append(_text(item["metadata"].get("quota_limit")))
        elif kind == _GOOGLE_RETRY_INFO:
            delay = parse_duration(_text(item.get("retryDelay")))
    periods = {match.lower() for name in names for match in _PERIOD.findall(name)}
    resource = _google_resource(names)
    if "day" in periods:
        return QuotaExhausted(_next_pacific_midnight(now), "google daily quota exceeded", resource)
    if "minute" in periods and "hour" not in periods:
        return None  # a per-minute quota is a short rate limit
    if delay is not None and delay < LONG_RESET and "hour" not in periods:
        return None  # no period stated and a short wait: a rate limit
    reset_at = None if delay is None else now + delay
    return QuotaExhausted(reset_at, "google quota exceeded", resource)


def _google_resource(names: list[str]) -> str | None:
    joined = " ".join(names).lower()
    for marker, resource in (
        ("inputtoken", "input_tokens"),
        ("outputtoken", "output_tokens"),
        ("token", "tokens"),
        ("request", "requests"),
    ):
        if marker in joined.replace("_", ""):
            return resource
    return None


def _pacific() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    except ImportError:  # pragma: no cover - zoneinfo is in the standard library
        return timezone(timedelta(hours=-8))
    try:
        return ZoneInfo("America/Los_Angeles")
    except (ZoneInfoNotFoundError, ValueError):  # pragma: no cover - no time zone data
        return timezone(timedelta(hours=-8))  # Pacific Standard Time, an hour early in DST


def _next_pacific_midnight(now: float) -> float:
    """The next midnight in US Pacific time after the Unix time ``now`` (when Google
    resets per-day quotas)."""
    zone = _pacific()
    today = datetime.fromtimestamp(now, zone).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)
    return midnight.timestamp()


# --- GitHub and the vendor header families ----------------------------------------------


def _github(
    status: int, document: Mapping[str, Any], readings: tuple[ResourceReading, ...], now: float
) -> QuotaExhausted | None:
    """GitHub's primary limit: 403/429 (REST) or 200 with a ``RATE_LIMITED`` error
    (GraphQL), and ``x-ratelimit-remaining: 0``."""
    if status == 200:
        errors = _list(document.get("errors"))
        limited = any(isinstance(e, Mapping) and e.get("type") == "RATE_LIMITED" for e in errors)
        if not limited:
            return None
    elif status not in (403, 429):
        return None
    for reading in readings:
        if reading.family == "github" and reading.exhausted and reading.reset_after is not None:
            scope = reading.scope if reading.scope and _SCOPE.fullmatch(reading.scope) else None
            reason = "github primary rate limit spent until its reset"
            return QuotaExhausted(now + reading.reset_after, reason, reading.resource, scope)
    return None


def _long_reset(readings: tuple[ResourceReading, ...], now: float) -> QuotaExhausted | None:
    """A vendor reading at 0 whose reset is at least :data:`LONG_RESET` away (the
    latest of them: the token is of no use before)."""
    spent = [
        reading
        for reading in readings
        if reading.exhausted
        and reading.reset_after is not None
        and reading.reset_after >= LONG_RESET
    ]
    if not spent:
        return None
    latest = max(spent, key=lambda reading: reading.reset_after or 0.0)
    assert latest.reset_after is not None
    reason = f"{latest.family} {latest.resource} spent for longer than the short windows"
    return QuotaExhausted(now + latest.reset_after, reason, latest.resource, latest.scope)
