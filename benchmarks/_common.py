"""Shared helpers of the benchmark scripts: repeat, take medians, print ratio tables,
record throughput over time.

Every benchmark measures aurora_async against a baseline *in the same run* and reports
the ratio, because these machines are noisy: absolute microseconds drift by 30% from
one minute to the next, ratios measured side by side much less.

A result (``results/<name>.json``) holds ``figures`` and ``notes``, and may hold a
series over time for the chart of ``aurora-async bench``: ``series`` (each strategy's
``[[seconds, value], ...]``), ``series_unit``, ``series_title``, ``series_marks``
(vertical lines, ``{label: seconds}``) and ``series_levels`` (horizontal lines,
``{label: value}``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

RESULTS = Path(__file__).resolve().parent / "results"

T = TypeVar("T")


@dataclass
class Figure:
    """One measured figure, its target, and whether the target is met."""

    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    detail: str = ""


Points = list[list[float]]  # [[seconds, value], ...]


@dataclass
class Series:
    """Lines over time, one per strategy, drawn as one panel of the benchmark chart."""

    unit: str  #: of the values, e.g. "requests/s"
    title: str = ""
    lines: dict[str, Points] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)  #: label -> seconds
    levels: dict[str, float] = field(default_factory=dict)  #: label -> value


class Throughput:
    """Counts events (grants, answered requests) into buckets of ``bucket`` seconds
    from the moment it is made, by ``clock``; ``points`` gives events per second."""

    def __init__(self, clock: Callable[[], float], bucket: float) -> None:
        self.clock = clock
        self.bucket = bucket
        self.origin = clock()
        self.counts: list[int] = []

    def tick(self) -> None:
        i = int((self.clock() - self.origin) / self.bucket)
        if i >= len(self.counts):
            self.counts.extend([0] * (i + 1 - len(self.counts)))
        self.counts[i] += 1

    def points(self, until: float) -> Points:
        """Events per second in each whole bucket up to ``until`` seconds from the
        origin, each at the middle of its bucket."""
        n = int(until / self.bucket + 1e-9)
        counts = self.counts[:n] + [0] * max(0, n - len(self.counts))
        return [[round((i + 0.5) * self.bucket, 6), c / self.bucket] for i, c in enumerate(counts)]


def bucket_for(span: float, points: int = 20) -> float:
    """One second, or finer for a short run: at least ``points`` buckets over ``span``."""
    for size in (1.0, 0.5, 0.25, 0.2, 0.1):
        if span / size >= points - 1e-9:
            return size
    return 0.05


@dataclass
class Report:
    benchmark: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    series: Series | None = None

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def add_series(
        self,
        name: str,
        points: Points,
        *,
        unit: str,
        title: str = "",
        marks: dict[str, float] | None = None,
        levels: dict[str, float] | None = None,
    ) -> Series:
        """Add one strategy's line over time to the report's series (one unit for all
        its lines), with the panel's title and reference lines if given."""
        if self.series is None:
            self.series = Series(unit)
        elif self.series.unit != unit:
            raise ValueError(f"series in {unit!r} beside series in {self.series.unit!r}")
        self.series.title = title or self.series.title
        self.series.lines[name] = points
        self.series.marks |= marks or {}
        self.series.levels |= levels or {}
        return self.series

    def print(self) -> None:
        print(f"\n## {self.benchmark}")
        print("| figure | value | target | met |")
        print("| --- | --- | --- | --- |")
        for f in self.figures:
            met = {True: "yes", False: "NO", None: ""}[f.ok]
            detail = f" ({f.detail})" if f.detail else ""
            print(f"| {f.name} | {_fmt(f.value)} {f.unit}{detail} | {f.target} | {met} |")
        for note in self.notes:
            print(f"\n{note}")
        if self.series is not None:
            lines = self.series.lines
            points = len(next(iter(lines.values()), []))
            print(
                f"\nOver time: {', '.join(lines)}, {points} points each in "
                f"{self.series.unit}; in results/{self.benchmark}.json, drawn by "
                "`aurora-async bench`."
            )
        sys.stdout.flush()

    def payload(self) -> dict[str, Any]:
        """What ``save`` writes: machine, time, figures, notes and any series."""
        payload: dict[str, Any] = {
            "machine": machine(),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "benchmark": self.benchmark,
            "figures": [asdict(f) for f in self.figures],
            "notes": list(self.notes),
        }
        if self.series is not None:
            payload |= {
                "series": self.series.lines,
                "series_unit": self.series.unit,
                "series_title": self.series.title,
                "series_marks": self.series.marks,
                "series_levels": self.series.levels,
            }
        return payload

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.benchmark}.json"
        path.write_text(json.dumps(self.payload(), indent=2))
        return path

    @property
    def passed(self) -> bool:
        return all(f.ok is not False for f in self.figures)


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> str:
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform(terse=True)}"
    )


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def interleaved(repeats: int, measures: Sequence[Callable[[], float]]) -> list[float]:
    """Median of each measure, run in turn (A B C A B C ...) so drift hits all alike."""
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(repeats):
        for i, measure in enumerate(measures):
            samples[i].append(measure())
    return [statistics.median(s) for s in samples]


def quick() -> bool:
    """``--quick`` on the command line or AURORA_BENCH_QUICK=1: smaller, faster runs."""
    return "--quick" in sys.argv or os.environ.get("AURORA_BENCH_QUICK") == "1"


def secrets(n: int, prefix: str = "tok") -> list[str]:
    """Distinct, realistic-looking token values."""
    import hashlib

    return [f"{prefix}-{hashlib.sha256(str(i).encode()).hexdigest()[:32]}" for i in range(n)]


def finish(report: Report) -> int:
    report.print()
    report.save()
    return 0 if report.passed else 1


def as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)


def on_virtual_time(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of looptime's virtual clock, from 0 (minutes in seconds)."""
    import looptime

    loop = looptime.new_event_loop(start=0.0)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
