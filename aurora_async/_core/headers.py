"""Read rate-limit headers into one :class:`RateLimitInfo`.

Pure: no I/O, no clock. The caller passes ``now`` (Unix epoch seconds) and gets back
durations relative to it, so the shell can turn them into loop times.

Families understood (header names are case-insensitive):

- ``Retry-After``: delta seconds (``"120"``, also ``"0.25"``) or an HTTP date
  (IMF-fixdate, RFC 850 or asctime); a date in the past means 0.
- ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (GitHub, Discord, Cloudflare), also spelled
  ``X-Rate-Limit-*``, and Discord's ``X-RateLimit-Reset-After`` (seconds), which is preferred
  over ``X-RateLimit-Reset`` when both are valid. ``X-RateLimit-Reset`` is told apart by size:
  a number of at least 1e12 is a Unix time in milliseconds, at least 1e9 a Unix time in
  seconds (1e9 seconds is 31 years, no sane delay), anything smaller is seconds from now; a
  value that is not a number is read as an HTTP date (Cloudflare). A time in the past means 0.
- OpenAI: ``x-ratelimit-{limit,remaining,reset}-requests`` with Go durations (``"6m0s"``);
  the ``-tokens`` dimension only when no ``-requests`` header is present.
- Anthropic: ``anthropic-ratelimit-requests-{limit,remaining,reset}`` with an RFC 3339 reset;
  the ``tokens`` dimension only when no ``requests`` header is present.
- IETF drafts up to -06: ``RateLimit-Limit``/``-Remaining``/``-Reset`` (reset read like
  ``X-RateLimit-Reset``, normally delta seconds).
- IETF draft-07: ``RateLimit: limit=100, remaining=50, reset=5``.
- IETF draft-08 and later: ``RateLimit: "default";r=50;t=30`` with
  ``RateLimit-Policy: "default";q=100;w=60``; the quota comes from the policy of the same
  name. Several lines of these two fields are joined, as structured fields require.

Each family gives one reading (limit, remaining, reset). Of several readings, and of several
IETF policies, the most restrictive one wins whole: the least remaining, then the longest
reset, then the least limit (an unknown value counts as the least restrictive). Readings are
not mixed: an exhausted per-minute window is not given another family's hourly reset.
A value that cannot be read (not a number, negative, NaN, infinite, or a delay more than a
year away) is skipped and reported as a :class:`HeaderProblem`; parsing never raises for it.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

__all__ = ["HeaderProblem", "RateLimitInfo", "parse_rate_limit_headers", "parse_retry_after"]

_MAX_DELAY = 365 * 24 * 3600.0  # a reset or Retry-After further away than this is a problem
_EPOCH_SECONDS_FROM = 1e9  # X-RateLimit-Reset at or above this is a Unix time in seconds
_EPOCH_MILLISECONDS_FROM = 1e12  # ... and at or above this, a Unix time in milliseconds
_EXCERPT = 40  # at most this many characters of a bad value go into a HeaderProblem

_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(f"(?:{_GO_PART.pattern})+")
_GO_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),  # micro sign
    "μs": Decimal("1e-6"),  # Greek mu
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_STRUCTURED = frozenset({"ratelimit", "ratelimit-policy"})  # repeated lines are joined


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a response's headers say about the token's rate limit; every field is optional.

    Durations are seconds from the ``now`` given to the parser. All fields are finite and
    non-negative (checked on construction).
    """

    limit: float | None = None  # quota of the current window, if stated
    remaining: float | None = None  # what remains in it
    reset_after: float | None = None  # seconds until the quota is restored
    retry_after: float | None = None  # seconds from Retry-After
    window: float | None = None  # seconds the quota is for, where stated (RateLimit-Policy w)

    def __post_init__(self) -> None:
        for value in (
            self.limit,
            self.remaining,
            self.reset_after,
            self.retry_after,
            self.window,
        ):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RateLimitInfo fields must be finite and >= 0 or None: {self!r}")

    @property
    def exhausted(self) -> bool:
        """Whether the headers say nothing remains in the current window."""
        return self.remaining is not None and self.remaining <= 0


_NOTHING = RateLimitInfo()


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    """A rate-limit header that was present but could not be read, and was ignored."""

    header: str  # lower-case header name
    reason: str  # short, with at most 40 characters of the value
    #: The reason without the value, for logs: a header's value may echo a secret (a
    #: server quoting the key), so no log line carries any of it.
    cause: str = field(default="", compare=False)


def parse_rate_limit_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], *, now: float
) -> tuple[RateLimitInfo, tuple[HeaderProblem, ...]]:
    """Read every known rate-limit header family into one conservative reading.

    ``headers`` is a mapping (a dict in any case, aiohttp's ``CIMultiDictProxy``) or an
    iterable of ``(name, value)`` pairs; the first occurrence of a name wins, except for the
    structured ``RateLimit`` and ``RateLimit-Policy`` fields, whose lines are joined.
    ``now`` is the current Unix time in seconds. See the module docstring for the rules.
    """
    reader = _Reader(_by_lower_name(headers), _checked_now(now))
    present = reader.headers.keys()
    if not present:
        return _NOTHING, ()
    # Only the families with a header present are read: an absent one would read nothing.
    readings = [family(reader) for family, names in _FAMILIES if not present.isdisjoint(names)]
    chosen = _most_restrictive(readings)
    retry_after = None
    if "retry-after" in present:
        retry_after = reader.field(("retry-after",), partial(_retry_after, now=reader.now))
    if retry_after is None:  # chosen has none either: no family reads it
        return chosen, tuple(reader.problems)
    info = RateLimitInfo(
        chosen.limit, chosen.remaining, chosen.reset_after, retry_after, chosen.window
    )
    return info, tuple(reader.problems)


def parse_retry_after(value: str, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` if it cannot be read.

    Accepts delta seconds (``"120"``, ``"0.25"``) and HTTP dates; a date in the past gives 0.
    Negative values and delays more than a year away give ``None``.
    """
    try:
        return _retry_after(value, now=_checked_now(now))
    except _Malformed:
        return None


# --- reading values ---------------------------------------------------------------------


class _Malformed(Exception):
    """A header value that cannot be read; the message says why."""


def _checked_now(now: float) -> float:
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite Unix time in seconds, got {now!r}")
    return now


def _number(text: str) -> float:
    """A plain non-negative decimal number such as ``"12"`` or ``"0.25"``."""
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        raise _Malformed("not a number")
    if text.startswith("-"):
        raise _Malformed("negative number")
    value = float(text)
    if not math.isfinite(value):
        raise _Malformed("too large")
    return value


def _leading_number(text: str) -> float:
    """The first item of a list such as ``"10, 10;w=1, 50;w=60"`` (older IETF drafts)."""
    return _number(text.split(",")[0].split(";")[0])


def _delay(seconds: float) -> float:
    if seconds > _MAX_DELAY:
        raise _Malformed("more than a year away")
    return seconds


def _seconds(text: str) -> float:
    """Delta seconds, as in ``X-RateLimit-Reset-After: 1.2`` or ``t=30``."""
    return _delay(_number(text))


def _until(moment: float, now: float) -> float:
    """Seconds from ``now`` until the Unix time ``moment``; 0 if it has passed."""
    return _delay(max(0.0, moment - now))


def _http_date(text: str) -> float:
    """The Unix time of an HTTP date (IMF-fixdate, RFC 850 or asctime, read as UTC)."""
    try:
        moment = email.utils.parsedate_to_datetime(text.strip())
        return moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()
    except (ValueError, TypeError, OverflowError, IndexError):
        raise _Malformed("not a number or HTTP date") from None


def _retry_after(text: str, *, now: float) -> float:
    if _DECIMAL.fullmatch(text.strip()):
        return _seconds(text)
    return _until(_http_date(text), now)


def _reset(text: str, *, now: float) -> float:
    """An ``X-RateLimit-Reset``: epoch milliseconds, epoch seconds, delta seconds or a date."""
    if not _DECIMAL.fullmatch(text.strip()):
        return _until(_http_date(text), now)
    value = _number(text)
    if value >= _EPOCH_MILLISECONDS_FROM:
        return _until(value / 1000, now)
    if value >= _EPOCH_SECONDS_FROM:
        return _until(value, now)
    return _delay(value)


def _duration(text: str) -> float:
    """A Go duration such as ``"1h2m3.5s"`` or ``"20ms"`` (OpenAI), or plain seconds."""
    text = text.strip()
    if _DECIMAL.fullmatch(text):
        return _seconds(text)
    if not _GO_DURATION.fullmatch(text):
        raise _Malformed("not a duration")
    total = sum(Decimal(amount) * _GO_UNITS[unit] for amount, unit in _GO_PART.findall(text))
    return _delay(float(total))


def _timestamp(text: str, *, now: float) -> float:
    """An RFC 3339 time such as ``"2023-11-14T22:13:50Z"`` (Anthropic), read as UTC if bare."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _Malformed("not an RFC 3339 time") from None
    return _until(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp(), now)


def _excerpt(value: str) -> str:
    return repr(value[:_EXCERPT]) + ("…" if len(value) > _EXCERPT else "")


# --- collecting headers -----------------------------------------------------------------


def _by_lower_name(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """One value per lower-case name: the first, or all lines joined for structured fields.

    Only names that may matter are kept: those with "rate" in them, and ``retry-after``.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    values: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if "rate" not in key and key != "retry-after":
            continue
        if key not in values:
            values[key] = value
        elif key in _STRUCTURED:
            values[key] = f"{values[key]}, {value}"
    return values


class _Reader:
    """The headers, ``now`` and the problems found so far."""

    __slots__ = ("headers", "now", "problems")

    def __init__(self, headers: dict[str, str], now: float) -> None:
        self.headers = headers
        self.now = now
        self.problems: list[HeaderProblem] = []

    def field(self, names: tuple[str, ...], parse: Callable[[str], float]) -> float | None:
        """The value of the first of ``names`` present, or ``None`` if absent or malformed."""
        for name in names:
            if name in self.headers:
                return self.read(name, self.headers[name], parse)
        return None

    def param(
        self, header: str, params: Mapping[str, str], key: str, parse: Callable[[str], float]
    ) -> float | None:
        """Parameter ``key`` of a structured field, or ``None`` if absent or malformed."""
        value = params.get(key)
        return None if value is None else self.read(header, value, parse, key)

    def read(
        self, header: str, value: str, parse: Callable[[str], float], part: str = ""
    ) -> float | None:
        """``parse(value)``, or ``None`` with a problem recorded against ``header``."""
        try:
            return parse(value)
        except _Malformed as error:
            reason = f"{part}: {error}" if part else str(error)
            excerpt = f"{reason} (got {_excerpt(value)})"
            self.problems.append(HeaderProblem(header, excerpt, f"{reason} ({len(value)} chars)"))
            return None


def _most_restrictive(readings: Iterable[RateLimitInfo]) -> RateLimitInfo:
    """The reading with the least remaining, then the longest reset, then the least limit.

    Readings with nothing in them are ignored; an unknown value counts as the least
    restrictive.
    """
    known = [r for r in readings if r is not _NOTHING and r != _NOTHING]
    if not known:
        return _NOTHING
    return min(known, key=_restrictiveness)


def _restrictiveness(reading: RateLimitInfo) -> tuple[float, float, float]:
    remaining = math.inf if reading.remaining is None else reading.remaining
    reset = -1.0 if reading.reset_after is None else reading.reset_after
    limit = math.inf if reading.limit is None else reading.limit
    return remaining, -reset, limit


# --- header families --------------------------------------------------------------------


def _x_ratelimit(reader: _Reader) -> RateLimitInfo:
    """GitHub, Discord, Cloudflare and many more: ``X-RateLimit-*`` or ``X-Rate-Limit-*``."""
    reset_after = reader.field(("x-ratelimit-reset-after",), _seconds)
    reset = reader.field(
        ("x-ratelimit-reset", "x-rate-limit-reset"), partial(_reset, now=reader.now)
    )
    return RateLimitInfo(
        limit=reader.field(("x-ratelimit-limit", "x-rate-limit-limit"), _number),
        remaining=reader.field(("x-ratelimit-remaining", "x-rate-limit-remaining"), _number),
        reset_after=reset if reset_after is None else reset_after,
    )


def _openai(reader: _Reader) -> RateLimitInfo:
    """``x-ratelimit-*-requests``, else ``x-ratelimit-*-tokens``."""
    for limit, remaining, reset in _OPENAI:
        reading = RateLimitInfo(
            limit=reader.field((limit,), _number),
            remaining=reader.field((remaining,), _number),
            reset_after=reader.field((reset,), _duration),
        )
        if reading != _NOTHING:
            return reading
    return _NOTHING


def _anthropic(reader: _Reader) -> RateLimitInfo:
    """``anthropic-ratelimit-requests-*``, else ``anthropic-ratelimit-tokens-*``."""
    reset = partial(_timestamp, now=reader.now)
    for limit, remaining, reset_name in _ANTHROPIC:
        reading = RateLimitInfo(
            limit=reader.field((limit,), _number),
            remaining=reader.field((remaining,), _number),
            reset_after=reader.field((reset_name,), reset),
        )
        if reading != _NOTHING:
            return reading
    return _NOTHING


def _ietf_separate(reader: _Reader) -> RateLimitInfo:
    """IETF drafts up to -06: ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``."""
    return RateLimitInfo(
        limit=reader.field(("ratelimit-limit",), _leading_number),
        remaining=reader.field(("ratelimit-remaining",), _number),
        reset_after=reader.field(("ratelimit-reset",), partial(_reset, now=reader.now)),
    )


def _ietf_structured(reader: _Reader) -> RateLimitInfo:
    """The ``RateLimit`` field: a draft-07 dictionary or draft-08+ items with policies."""
    quotas = _policy_quotas(reader)
    text = reader.headers.get("ratelimit")
    if text is None:
        return _NOTHING
    parts = [part for part in _split_outside_quotes(text, ",") if part]
    if parts and _is_dictionary_member(parts[0]):
        return _ietf_dictionary(reader, parts)
    members = [_member(part) for part in parts]
    return _most_restrictive(_ietf_item(reader, name, params, quotas) for name, params in members)


def _is_dictionary_member(part: str) -> bool:
    """``limit=100`` (draft-07) rather than ``default;r=50`` or ``"default";r=50`` (draft-08+)."""
    name = part.split(";")[0]
    return "=" in name and not name.startswith('"')


def _ietf_dictionary(reader: _Reader, parts: list[str]) -> RateLimitInfo:
    """Draft-07: ``limit=100, remaining=50, reset=5`` (reset in delta seconds)."""
    values: dict[str, str] = {}
    for part in parts:
        key, _, value = part.partition("=")
        values.setdefault(key.strip().lower(), value)
    return RateLimitInfo(
        limit=reader.param("ratelimit", values, "limit", _number),
        remaining=reader.param("ratelimit", values, "remaining", _number),
        reset_after=reader.param("ratelimit", values, "reset", _seconds),
    )


def _ietf_item(
    reader: _Reader,
    name: str,
    params: dict[str, str],
    quotas: dict[str, tuple[float, float | None]],
) -> RateLimitInfo:
    """Draft-08+: one ``"policy";r=50;t=30`` item, with its quota (and window, ``w``) from
    ``RateLimit-Policy``."""
    quota, window = quotas.get(name, (None, None))
    return RateLimitInfo(
        limit=quota,
        remaining=reader.param("ratelimit", params, "r", _number),
        reset_after=reader.param("ratelimit", params, "t", _seconds),
        window=window,
    )


def _policy_quotas(reader: _Reader) -> dict[str, tuple[float, float | None]]:
    """The ``q`` and ``w`` of each named policy in ``RateLimit-Policy`` (draft-08+)."""
    quotas: dict[str, tuple[float, float | None]] = {}
    text = reader.headers.get("ratelimit-policy", "")
    for part in _split_outside_quotes(text, ","):
        name, params = _member(part)
        quota = reader.param("ratelimit-policy", params, "q", _number)
        if quota is not None:
            window = reader.param("ratelimit-policy", params, "w", _number)
            quotas.setdefault(name, (quota, window if window else None))
    return quotas


def _member(text: str) -> tuple[str, dict[str, str]]:
    """A list member ``name;key=value;flag`` as its name (unquoted) and its parameters."""
    name, *segments = _split_outside_quotes(text, ";")
    params: dict[str, str] = {}
    for segment in segments:
        key, _, value = segment.partition("=")
        params[key.strip().lower()] = value.strip()
    return name.strip('"'), params


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` except inside double quotes, each part stripped."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


#: The names each family reads, (limit, remaining, reset) per dimension where it has them.
_OPENAI = tuple(
    tuple(f"x-ratelimit-{what}-{dimension}" for what in ("limit", "remaining", "reset"))
    for dimension in ("requests", "tokens")
)
_ANTHROPIC = tuple(
    tuple(f"anthropic-ratelimit-{dimension}-{what}" for what in ("limit", "remaining", "reset"))
    for dimension in ("requests", "tokens")
)
_X_RATELIMIT = frozenset(
    f"{prefix}-{what}"
    for prefix in ("x-ratelimit", "x-rate-limit")
    for what in ("limit", "remaining", "reset")
) | {"x-ratelimit-reset-after"}
#: Each family with the header names it reads: one with none of them present is skipped.
_FAMILIES: tuple[tuple[Callable[[_Reader], RateLimitInfo], frozenset[str]], ...] = (
    (_x_ratelimit, _X_RATELIMIT),
    (_openai, frozenset(name for names in _OPENAI for name in names)),
    (_anthropic, frozenset(name for names in _ANTHROPIC for name in names)),
    (_ietf_separate, frozenset({"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"})),
    (_ietf_structured, _STRUCTURED),
)
