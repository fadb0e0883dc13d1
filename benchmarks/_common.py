"""Shared helpers of the benchmark scripts: repeat, take medians, print ratio tables.

Every benchmark measures aurora_async against a baseline *in the same run* and reports
the ratio, because these machines are noisy: absolute microseconds drift by 30% from
one minute to the next, ratios measured side by side much less.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    """One measured figure, its target, and whether the target is met."""

    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    detail: str = ""


@dataclass
class Report:
    benchmark: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

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
        sys.stdout.flush()

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.benchmark}.json"
        payload = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
        payload |= asdict(self)
        path.write_text(json.dumps(payload, indent=2))
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
