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

from .calibrate import same_declaration
from .calibrate_types import Kept
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
        limit = _sized(ceiling, stated, max(stated, floor))
        if limit != limits[i]:
            limits[i] = limit
    restated = tuple(limits)
    return None if restated == tuple(effective) else restated


def kept_limits(
    declared: Sequence[Limit], effective: Sequence[Limit], kept: Sequence[Kept]
) -> tuple[Limit, ...]:
    """``effective`` with the per-minute windows an earlier run restated (``kept``, each
    naming the declared window it sized) sized again as they were, never above the
    declared one: what a restart keeps of :func:`stated_limits`. A window the token no
    longer declares so is left as it is (the caller tells the user)."""
    limits = list(effective)
    for item in kept:
        resource = item.declared.unit
        if not (_per_minute(item.declared, resource) and _per_minute(item.effective, resource)):
            continue
        for i, ceiling in enumerate(declared[: len(limits)]):
            if same_declaration(ceiling, item.declared):
                limits[i] = _sized(ceiling, item.effective.rate, item.effective.burst)
    return tuple(limits)


def _sized(ceiling: Limit, rate: float, burst: float) -> Limit:
    """A per-minute window of ``ceiling``'s resource sized ``rate`` per minute with a
    bucket of ``burst``, neither above ``ceiling``'s."""
    return Limit(
        min(rate, ceiling.rate),
        per=MINUTE,
        burst=min(burst, ceiling.burst),
        unit=ceiling.unit,
    )
