"""Limits the server states: the big APIs' headers say how large a token's per-minute
windows are (OpenAI's ``x-ratelimit-limit-tokens``, Anthropic's
``anthropic-ratelimit-input-tokens-limit``, ...), resource by resource.

Pure: limits and readings in, limits out. For a token whose windows count several
resources (the calibrator, ``calibrate.py``, learns the requests windows of plain tokens
from evidence; it does not take these), a window of the resource a reading names, per
minute, of no scope and no calendar, is restated to the server's size, never above what
the user declared for it (the declared limit is a ceiling, as for calibration): declared
2x too high, it comes down to the server's at its first answer; declared right, nothing
changes; a server that raises the size later raises it back, up to the declaration.

Only the OpenAI and Anthropic families: their documented limits of requests and tokens
are per minute (RPM, TPM, ITPM, OTPM), so a stated limit sizes a window of 60 s.
GitHub's buckets are hourly or per minute by resource, and named by scope; they are read
for levels (``responses.account_levels``), not sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .limits import Limit
from .vendor_headers import ResourceReading

#: Families whose stated limits are per minute.
PER_MINUTE = ("openai", "anthropic")
MINUTE = 60.0


def _per_minute(limit: Limit, resource: str) -> bool:
    return (
        limit.unit == resource
        and limit.scope is None
        and limit.calendar is None
        and limit.per == MINUTE
    )


def stated_limits(
    declared: Sequence[Limit],
    effective: Sequence[Limit],
    readings: Sequence[ResourceReading],
    floors: Mapping[str, float] | None = None,
) -> tuple[Limit, ...] | None:
    """``effective`` with each per-minute window a reading sizes restated to
    ``min(stated, declared)`` (rate and burst each); ``None`` if nothing changes. A
    burst never goes below ``floors[resource]`` (the largest part of it leased so far: a
    restated size never makes a cost the pool took impossible; as calibration's floor),
    nor above the declared one. A resource with no such window declared, or with
    several, is left alone (nothing to restate, or no telling which)."""
    limits = list(effective)
    for reading in readings:
        stated = reading.limit
        if stated is None or stated <= 0 or reading.family not in PER_MINUTE:
            continue
        if reading.scope is not None:
            continue
        resource = reading.resource
        mine = [i for i, limit in enumerate(limits) if _per_minute(limit, resource)]
        ceilings = [limit for limit in declared if _per_minute(limit, resource)]
        if len(mine) != 1 or len(ceilings) != 1:
            continue
        (i,), (ceiling,) = mine, ceilings
        floor = floors.get(resource, 0.0) if floors else 0.0
        limit = Limit(
            min(stated, ceiling.rate),
            per=MINUTE,
            burst=min(max(stated, floor), ceiling.burst),
            unit=resource,
        )
        if limit != limits[i]:
            limits[i] = limit
    restated = tuple(limits)
    return None if restated == tuple(effective) else restated
