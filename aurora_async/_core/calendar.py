"""Quotas on the calendar: ``Limit.daily`` and ``Limit.monthly``.

Many keys have a quota that resets at a wall-clock time (1,000 calls a day, reset at
midnight UTC; a monthly budget) rather than draining continuously. Such a window is not a
leaky bucket: it counts what was used since the last reset and refuses more than its
count until the next one. :class:`Calendar` says when resets happen (pure arithmetic on
Unix times, with the time zone's rules); ``buckets.CalendarWindow`` is the window a
token's slot holds for one. Nothing here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Period = Literal["day", "month"]
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _zone(tz: str) -> tzinfo:
    if tz.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"tz must name a time zone like 'UTC' or 'America/New_York', got {tz!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class Calendar:
    """Resets every day at ``at`` (``"HH:MM"``) in the time zone ``tz``, or every month
    on ``day`` (the month's last day when it is shorter) at that time."""

    period: Period
    at: str = "00:00"
    tz: str = "UTC"
    day: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.at, str) or not _HHMM.fullmatch(self.at):
            raise ValueError(
                f'reset must be a time of day "HH:MM" (00:00 to 23:59), got {self.at!r}'
            )
        if not isinstance(self.tz, str):
            raise TypeError(f"tz must be a str naming a time zone, not {type(self.tz).__name__}")
        _zone(self.tz)
        if isinstance(self.day, bool) or not isinstance(self.day, int) or not 1 <= self.day <= 31:
            raise ValueError(f"day must be a day of the month from 1 to 31, got {self.day!r}")

    def _moment(self, on: date, zone: tzinfo) -> datetime:
        hour, minute = (int(part) for part in self.at.split(":"))
        return datetime.combine(on, time(hour, minute), tzinfo=zone)

    def _on(self, year: int, month: int) -> date:
        last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
        return date(year, month, min(self.day, last))

    def last_reset(self, wall: float) -> float:
        """The Unix time of the latest reset at or before ``wall``."""
        zone = _zone(self.tz)
        here = datetime.fromtimestamp(wall, zone)
        if self.period == "day":
            moment = self._moment(here.date(), zone)
            if moment.timestamp() > wall:
                moment = self._moment(here.date() - timedelta(days=1), zone)
            return moment.timestamp()
        moment = self._moment(self._on(here.year, here.month), zone)
        if moment.timestamp() > wall:
            year, month = (here.year, here.month - 1) if here.month > 1 else (here.year - 1, 12)
            moment = self._moment(self._on(year, month), zone)
        return moment.timestamp()

    def next_reset(self, wall: float) -> float:
        """The Unix time of the first reset after ``wall``."""
        zone = _zone(self.tz)
        last = datetime.fromtimestamp(self.last_reset(wall), zone)
        if self.period == "day":
            moment = self._moment(last.date() + timedelta(days=1), zone)
        else:
            year, month = (last.year, last.month + 1) if last.month < 12 else (last.year + 1, 1)
            moment = self._moment(self._on(year, month), zone)
        return moment.timestamp()

    def __str__(self) -> str:
        if self.period == "day":
            return f"day, resets {self.at} {self.tz}"
        return f"month, resets on day {self.day} at {self.at} {self.tz}"
