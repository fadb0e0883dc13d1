"""The benchmark chart: each figure against its target, and series over time.

Needs matplotlib (the ``plot`` extra), imported only here. Two kinds of panel:

* every figure whose target reads like ``"<= 2x"`` or ``">= 97%"``, as a bar of its
  value divided by the target's number (1 is the target; green where it is met);
* for a result that carries ``"series"``, a mapping of a strategy's name to
  ``[[seconds, value], ...]`` points (with an optional ``"series_unit"``), the lines of
  every strategy over time, such as throughput per strategy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["parse_target", "write_chart"]

_TARGET = re.compile(r"(<=|>=|≤|≥|<|>|at most|at least)\s*([0-9][0-9.,]*)", re.IGNORECASE)
_AT_MOST = {"<=", "≤", "<", "at most"}


def parse_target(target: str) -> tuple[bool, float] | None:
    """``(higher_is_better, number)`` for a target such as ``"<= 2x"``; else ``None``."""
    match = _TARGET.search(target or "")
    if match is None:
        return None
    try:
        number = float(match.group(2).replace(",", ""))
    except ValueError:
        return None
    if number <= 0:
        return None
    return match.group(1).lower() not in _AT_MOST, number


def _bars(results: Sequence[dict[str, Any]]) -> list[tuple[str, float, bool]]:
    bars = []
    for payload in results:
        for figure in payload.get("figures", []):
            parsed = parse_target(str(figure.get("target", "")))
            value = figure.get("value")
            if parsed is None or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            higher, number = parsed
            ratio = value / number
            ok = figure.get("ok")
            met = bool(ok) if ok is not None else (ratio >= 1 if higher else ratio <= 1)
            label = (
                f"{payload.get('benchmark', '?')}: {figure.get('name', '')} ({figure['target']})"
            )
            bars.append((label, ratio, met))
    return bars


def _series(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in results if isinstance(p.get("series"), dict) and p["series"]]


def write_chart(results: Sequence[dict[str, Any]], path: Path) -> tuple[Path | None, str | None]:
    """Write the chart to ``path``; returns it, or ``None`` and why there is none."""
    try:
        import matplotlib
    except ImportError:
        return None, "no chart: matplotlib is not installed (pip install 'aurora_async[plot]')"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = _bars(results)
    series = _series(results)
    panels = (1 if bars else 0) + len(series)
    if not panels:
        return None, "no chart: no figure has a target like '<= 2x' and no result has series"
    heights = ([max(2.0, 0.45 * len(bars) + 1.0)] if bars else []) + [3.0] * len(series)
    fig, axes = plt.subplots(
        panels, 1, figsize=(10, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    axes_list = list(axes) if panels > 1 else [axes]
    try:
        if bars:
            ax = axes_list.pop(0)
            labels = [label for label, _, _ in bars]
            ratios = [ratio for _, ratio, _ in bars]
            colors = ["tab:green" if met else "tab:red" for _, _, met in bars]
            ax.barh(range(len(bars)), ratios, color=colors)
            ax.set_yticks(range(len(bars)), labels, fontsize=8)
            ax.invert_yaxis()
            ax.axvline(1.0, color="black", linewidth=1)
            ax.set_xlabel("value / target (1 = the target; green: met)")
            ax.set_title("Benchmarks against their targets")
        for payload, ax in zip(series, axes_list, strict=True):
            for name, points in payload["series"].items():
                xs = [float(p[0]) for p in points]
                ys = [float(p[1]) for p in points]
                ax.plot(xs, ys, label=str(name))
            ax.set_xlabel("seconds")
            ax.set_ylabel(str(payload.get("series_unit", "per second")))
            ax.set_title(f"{payload.get('benchmark', '?')}: over time, per strategy")
            ax.legend()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path, None
