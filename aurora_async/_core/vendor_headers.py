"""Read the big APIs' own rate-limit headers: one reading per resource they name.

Pure: no I/O, no clock. The caller passes ``wall_now`` (the Unix time the response
arrived) and gets durations relative to it. Header names are matched case-insensitively;
a value that cannot be read is skipped and reported as a :class:`VendorProblem` whose
reason never contains the value (a server may echo a secret in any header).

Families (each reading's ``resource`` uses the pool's unit names):

- **OpenAI** (and the APIs that copy it: Azure OpenAI, Groq, ...):
  ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; the reset is a Go duration
  (``6m0s``, ``1.5s``, ``20ms``, ``1h2m3.5s``; plain seconds too), the time until the
  window is back to its full limit. ``-requests`` gives ``"requests"``, ``-tokens``
  gives ``"tokens"``. Other suffixes (``-tokens_usage_based``) are not read.
- **Anthropic**: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
  {limit,remaining,reset}``; the reset is an RFC 3339 time (``2024-08-12T18:32:41Z``).
  Resources ``"requests"``, ``"tokens"``, ``"input_tokens"``, ``"output_tokens"``.
- **GitHub**: ``x-ratelimit-{limit,remaining,used,reset}`` with ``x-ratelimit-resource``
  (the bucket the request counted against: ``core``, ``search``, ``graphql``, ...) as
  the reading's ``scope``; the reset is a Unix time in seconds. GitHub counts *points*
  for ``graphql`` (its docs: "the maximum number of points that you can use per hour")
  and requests elsewhere, so the resource is ``"points"`` for ``graphql`` and
  ``"requests"`` otherwise. The family is recognised by ``x-ratelimit-resource`` or
  ``x-ratelimit-used``: plain ``X-RateLimit-*`` headers without them are other APIs'
  (Discord, Cloudflare, ...), which ``headers.py`` reads.

A value is malformed when it is not a plain non-negative decimal number (Azure sends
``-1`` for "unknown"), not a duration or time of the expected form, or a reset more than
a year away. A time in the past means a reset of 0. A family whose headers are all
malformed gives no reading. A ``scope`` that is not a plain lower-case name (letters and
``_``, at most 40) is dropped, so nothing secret-shaped can travel in a reading.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

__all__ = [
    "Family",
    "ResourceReading",
    "VendorHeaders",
    "VendorProblem",
    "parse_duration",
    "parse_rfc3339",
    "parse_vendor",
    "read_vendor",
]

Family = Literal["openai", "anthropic", "github"]

MAX_DELAY: Final = 365 * 24 * 3600.0  # a reset further away than this is malformed
MAX_VALUE: Final = 64  # a value longer than this many characters is malformed, unread
EPOCH_FROM: Final = 1e9  # a GitHub reset below this is not a Unix time

_PREFIXES: Final = ("x-ratelimit-", "anthropic-ratelimit-")
_DECIMAL: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
#: One ``<amount><unit>`` of a Go duration; the amount starts with a digit or a dot, so
#: the parts cannot be split two ways (no backtracking blow-up on hostile input).
_GO_PART: Final = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION: Final = re.compile(rf"(?:{_GO_PART.pattern})+")
_GO_UNITS: Final = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),  # micro sign, as Go writes it
    "μs": Decimal("1e-6"),  # Greek mu
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_RFC3339: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_SCOPE: Final = re.compile(r"[a-z][a-z_]{0,39}")

_OPENAI: Final = (("requests", "requests"), ("tokens", "tokens"))
_ANTHROPIC: Final = (
    ("requests", "requests"),
    ("tokens", "tokens"),
    ("input-tokens", "input_tokens"),
    ("output-tokens", "output_tokens"),
)


@dataclass(frozen=True, slots=True)
class ResourceReading:
    """What one family's headers say about one resource of the token.

    ``resource`` is the pool's unit name (``"requests"``, ``"tokens"``,
    ``"input_tokens"``, ``"output_tokens"``, ``"points"``); ``limit`` the window's
    quota, ``remaining`` what is left of it, ``reset_after`` the seconds from
    ``wall_now`` until it is restored (OpenAI: until the window is full again; Anthropic
    and GitHub: the time they state), ``scope`` the bucket's own name where the API
    gives one (GitHub's ``x-ratelimit-resource``), ``family`` who wrote the headers.
    Numbers are finite and >= 0 (checked on construction); ``None`` is not stated.
    """

    resource: str
    limit: float | None
    remaining: float | None
    reset_after: float | None
    scope: str | None
    family: Family

    def __post_init__(self) -> None:
        for value in (self.limit, self.remaining, self.reset_after):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ResourceReading numbers must be finite and >= 0: {self!r}")

    @property
    def exhausted(self) -> bool:
        """Whether nothing of the resource remains in its window."""
        return self.remaining is not None and self.remaining <= 0


@dataclass(frozen=True, slots=True)
class VendorProblem:
    """A vendor header that was present but unreadable, and was ignored.

    ``header`` is its lower-case name (one this module knows); ``reason`` says why in a
    few words and the value's length, never the value, so it is safe for any log.
    """

    header: str
    reason: str


@dataclass(frozen=True, slots=True)
class VendorHeaders:
    """Every reading found, and every header skipped (for a debug log)."""

    readings: tuple[ResourceReading, ...] = ()
    problems: tuple[VendorProblem, ...] = ()


_NOTHING: Final = VendorHeaders()


def parse_vendor(headers: Mapping[str, str], wall_now: float) -> tuple[ResourceReading, ...]:
    """The readings of every vendor family in ``headers`` (see the module docs).

    ``headers`` is any mapping (aiohttp's ``CIMultiDictProxy``, a dict in any case; the
    first of repeated names wins); ``wall_now`` the Unix time of the response. Returns
    ``()`` at once when no ``x-ratelimit-*`` or ``anthropic-ratelimit-*`` name is
    present. Never raises for a header's value.
    """
    return read_vendor(headers, wall_now).readings


def read_vendor(headers: Mapping[str, str], wall_now: float) -> VendorHeaders:
    """:func:`parse_vendor` with the problems found, for a debug log."""
    found = _vendor_names(headers)
    if not found:
        return _NOTHING
    if not math.isfinite(wall_now):
        raise ValueError(f"wall_now must be a finite Unix time in seconds, got {wall_now!r}")
    reader = _Reader(found, wall_now)
    readings = [*_openai(reader), *_anthropic(reader), *_github(reader)]
    return VendorHeaders(tuple(readings), tuple(reader.problems))


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration (``"6m0s"``, ``"1.5s"``, ``"20ms"``, ``"1h2m3.5s"``,
    ``"0s"``) or plain decimal seconds (``"12"``, ``"0.25"``); ``None`` if malformed
    (negative, empty, unknown unit, more than a year)."""
    try:
        return _duration(_short(text))
    except _Malformed:
        return None


def parse_rfc3339(text: str) -> float | None:
    """The Unix time of an RFC 3339 timestamp (``"2024-08-12T18:32:41Z"``, with
    fractions and offsets; read as UTC without an offset), or ``None`` if malformed."""
    try:
        return _timestamp(_short(text))
    except _Malformed:
        return None


# --- values -----------------------------------------------------------------------------


class _Malformed(Exception):
    """A value that cannot be read; the message says why (never quoting the value)."""


def _short(text: str) -> str:
    """``text``, unless it is too long to be a value worth reading."""
    if len(text) > MAX_VALUE:
        raise _Malformed("too long")
    return text


def _number(text: str) -> float:
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        raise _Malformed("not a number")
    if text.startswith("-"):
        raise _Malformed("negative")
    value = float(text)
    if not math.isfinite(value):
        raise _Malformed("too large")
    return value


def _delay(seconds: float) -> float:
    if seconds > MAX_DELAY:
        raise _Malformed("more than a year away")
    return seconds


def _duration(text: str) -> float:
    text = text.strip()
    if _DECIMAL.fullmatch(text):
        return _delay(_number(text))
    if not _GO_DURATION.fullmatch(text):
        raise _Malformed("not a duration")
    total = sum(Decimal(amount) * _GO_UNITS[unit] for amount, unit in _GO_PART.findall(text))
    if total > Decimal(MAX_DELAY):  # before rounding to a float
        raise _Malformed("more than a year away")
    return float(total)


def _timestamp(text: str) -> float:
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise _Malformed("not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(part) for part in match.group(*range(1, 7)))
    fraction, offset = match.group(7), match.group(8)
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise _Malformed("not a date")
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        raise _Malformed("not a time of day")
    moment = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if offset and offset not in "Zz":
        sign = -1 if offset[0] == "+" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise _Malformed("not a time zone offset")
        moment += sign * (hours * 3600 + minutes * 60)
    return moment + (float(fraction) if fraction else 0.0)


def _epoch(text: str) -> float:
    value = _number(text)
    if value < EPOCH_FROM:
        raise _Malformed("not a Unix time")
    return value


# --- collecting -------------------------------------------------------------------------


def _vendor_names(headers: Mapping[str, str]) -> dict[str, str]:
    """The vendor headers by lower-case name (the first of repeated names)."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        if name[:1] not in ("x", "X", "a", "A"):
            continue
        key = name.lower()
        if key.startswith(_PREFIXES) and key not in found:
            found[key] = value
    return found


class _Reader:
    """The vendor headers, ``wall_now`` and the problems found so far."""

    __slots__ = ("headers", "problems", "wall_now")

    def __init__(self, headers: dict[str, str], wall_now: float) -> None:
        self.headers = headers
        self.wall_now = wall_now
        self.problems: list[VendorProblem] = []

    def has(self, *names: str) -> bool:
        return any(name in self.headers for name in names)

    def field(self, name: str, parse: Callable[[str], float]) -> float | None:
        """``parse`` of header ``name``, or ``None`` if absent or malformed."""
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            return parse(_short(value))
        except _Malformed as error:
            self.problems.append(VendorProblem(name, f"{error} ({len(value)} chars)"))
            return None

    def until(self, moment: float | None) -> float | None:
        """Seconds from ``wall_now`` until the Unix time ``moment`` (0 if past)."""
        if moment is None:
            return None
        return _delay(max(0.0, moment - self.wall_now))

    def reset(self, name: str, parse: Callable[[str], float]) -> float | None:
        """A reset given as a Unix time, as seconds from ``wall_now``."""
        try:
            return self.until(self.field(name, parse))
        except _Malformed as error:
            self.problems.append(VendorProblem(name, str(error)))
            return None


def _reading(
    resource: str,
    family: Family,
    limit: float | None,
    remaining: float | None,
    reset_after: float | None,
    scope: str | None = None,
) -> list[ResourceReading]:
    if limit is None and remaining is None and reset_after is None:
        return []
    return [ResourceReading(resource, limit, remaining, reset_after, scope, family)]


def _openai(reader: _Reader) -> list[ResourceReading]:
    readings: list[ResourceReading] = []
    for suffix, resource in _OPENAI:
        names = [f"x-ratelimit-{part}-{suffix}" for part in ("limit", "remaining", "reset")]
        if reader.has(*names):
            readings += _reading(
                resource,
                "openai",
                reader.field(names[0], _number),
                reader.field(names[1], _number),
                reader.field(names[2], _duration),
            )
    return readings


def _anthropic(reader: _Reader) -> list[ResourceReading]:
    readings: list[ResourceReading] = []
    for dimension, resource in _ANTHROPIC:
        prefix = f"anthropic-ratelimit-{dimension}"
        names = [f"{prefix}-{part}" for part in ("limit", "remaining", "reset")]
        if reader.has(*names):
            readings += _reading(
                resource,
                "anthropic",
                reader.field(names[0], _number),
                reader.field(names[1], _number),
                reader.reset(names[2], _timestamp),
            )
    return readings


def _github(reader: _Reader) -> list[ResourceReading]:
    if not reader.has("x-ratelimit-resource", "x-ratelimit-used"):
        return []
    scope = reader.headers.get("x-ratelimit-resource")
    if scope is not None and not _SCOPE.fullmatch(scope.strip()):
        reader.problems.append(
            VendorProblem("x-ratelimit-resource", f"not a resource name ({len(scope)} chars)")
        )
        scope = None
    scope = None if scope is None else scope.strip()
    limit = reader.field("x-ratelimit-limit", _number)
    remaining = reader.field("x-ratelimit-remaining", _number)
    used = reader.field("x-ratelimit-used", _number)
    if remaining is None and limit is not None and used is not None:
        remaining = max(0.0, limit - used)
    reset_after = reader.reset("x-ratelimit-reset", _epoch)
    resource = "points" if scope == "graphql" else "requests"
    return _reading(resource, "github", limit, remaining, reset_after, scope)
