"""The benchmark chart: each figure against its target, and series over time.

Needs matplotlib (the ``plot`` extra), imported only here. Two kinds of panel:

* every figure whose target reads like ``"<= 2x"`` or ``">= 97%"``, as a bar of its
  value divided by the target's number (1 is the target; green where it is met);
* for a result that carries ``"series"``, a mapping of a strategy's name to
  ``[[seconds, value], ...]`` points, one panel with the line of every strategy over
  time, such as throughput per strategy. Optional keys beside it: ``"series_unit"``
  (the y axis), ``"series_title"``, ``"series_marks"`` (``{label: seconds}``, dashed
  vertical lines such as the end of a warm-up) and ``"series_levels"``
  (``{label: value}``, dotted horizontal lines such as a capacity).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_figure", "parse_target", "write_chart"]

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


def _bars(results: Sequence[dict[str, Any]]) -> list[tuple[str, float, bool, str]]:
    """``(label, value / target, met, value as text)`` of each figure with a target."""
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
            shown = f"{value:.3g} {figure.get('unit', '')}".strip()
            bars.append((label, ratio, met, shown))
    return bars


def _points(raw: object) -> tuple[list[float], list[float]]:
    """The finite ``[seconds, value]`` pairs of ``raw``, as xs and ys; others skipped."""
    xs: list[float] = []
    ys: list[float] = []
    if not isinstance(raw, list | tuple):
        return xs, ys
    for point in raw:
        if not isinstance(point, list | tuple) or len(point) != 2:
            continue
        x, y = point
        if not all(_number(v) for v in (x, y)):
            continue
        xs.append(float(x))
        ys.append(float(y))
    return xs, ys


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _references(payload: dict[str, Any], key: str) -> list[tuple[str, float]]:
    raw = payload.get(key)
    if not isinstance(raw, dict):
        return []
    return [(str(label), float(value)) for label, value in raw.items() if _number(value)]


def _series(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results with at least one line of two points or more."""
    return [
        p
        for p in results
        if isinstance(p.get("series"), dict)
        and any(len(_points(points)[0]) >= 2 for points in p["series"].values())
    ]


def _draw_bars(ax: Any, bars: list[tuple[str, float, bool, str]]) -> None:
    labels = [label for label, _, _, _ in bars]
    ratios = [ratio for _, ratio, _, _ in bars]
    colors = ["tab:green" if met else "tab:red" for _, _, met, _ in bars]
    drawn = ax.barh(range(len(bars)), ratios, color=colors)
    ax.bar_label(drawn, [shown for _, _, _, shown in bars], padding=3, fontsize=7)
    ax.set_yticks(range(len(bars)), labels, fontsize=8)
    ax.set_xlim(0, max([*ratios, 1.0]) * 1.15)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("value / target (1 = the target; green: met, red: missed)")
    ax.set_title("Benchmarks against their targets", fontweight="bold")
    ax.grid(axis="x", alpha=0.3)


def _draw_series(ax: Any, payload: dict[str, Any]) -> None:
    unit = str(payload.get("series_unit") or "per second")
    for name, raw in payload["series"].items():
        xs, ys = _points(raw)
        if len(xs) >= 2:
            # Each point is the middle of a bucket: steps out to the buckets' edges.
            first, last = (xs[1] - xs[0]) / 2, (xs[-1] - xs[-2]) / 2
            xs = [xs[0] - first, *xs, xs[-1] + last]
            ys = [ys[0], *ys, ys[-1]]
            ax.step(xs, ys, where="mid", label=str(name), linewidth=1.6)
    for label, value in _references(payload, "series_levels"):
        ax.axhline(value, color="grey", linestyle=":", linewidth=1.2, label=label)
    for label, value in _references(payload, "series_marks"):
        ax.axvline(value, color="black", linestyle="--", linewidth=0.9, label=label)
    ax.set_xlabel("seconds since the start of the run")
    ax.set_ylabel(unit)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    title = payload.get("series_title") or (
        f"{payload.get('benchmark', '?')}: {unit} over time, per strategy"
    )
    ax.set_title(str(title), fontweight="bold")
    ax.legend(fontsize=8, loc="best", framealpha=0.9)


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def build_figure(results: Sequence[dict[str, Any]]) -> Any:
    """The matplotlib figure of ``results`` (bars, then one panel per result with
    series), or ``None`` if there is nothing to draw. Needs matplotlib."""
    plt = _pyplot()
    bars = _bars(results)
    series = _series(results)
    panels = (1 if bars else 0) + len(series)
    if not panels:
        return None
    heights = ([max(2.0, 0.3 * len(bars) + 1.2)] if bars else []) + [3.6] * len(series)
    # One subfigure per panel, so that the long labels of the bars do not push the
    # series panels' axes to the right: each panel gets its own margins.
    fig = plt.figure(figsize=(11, sum(heights)), layout="constrained")
    subfigures = fig.subfigures(panels, 1, height_ratios=heights) if panels > 1 else [fig]
    axes = [sub.subplots() for sub in subfigures]
    if bars:
        _draw_bars(axes.pop(0), bars)
    for payload, ax in zip(series, axes, strict=True):
        _draw_series(ax, payload)
    return fig


def write_chart(results: Sequence[dict[str, Any]], path: Path) -> tuple[Path | None, str | None]:
    """Write the chart to ``path``; returns it, or ``None`` and why there is none."""
    try:
        plt = _pyplot()
    except ImportError:
        return None, "no chart: matplotlib is not installed (pip install 'aurora_async[plot]')"
    fig = build_figure(results)
    if fig is None:
        return None, "no chart: no figure has a target like '<= 2x' and no result has series"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path, None
