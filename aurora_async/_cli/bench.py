"""``aurora-async bench``: run the scripts of ``benchmarks/`` and gather their results.

Each ``benchmarks/bench_*.py`` is a standalone script: it measures, prints a markdown
table and writes ``benchmarks/results/<name>.json`` (see ``benchmarks/_common.py``).
This module runs each with the same interpreter, relays its output, picks up the JSON
files it wrote, and writes one markdown summary (and, with matplotlib, a chart).

The suite is not part of the installed package: it lives in a source checkout, next to
the ``aurora_async`` package (an editable install) or in the working directory.

A script exits 1 when one of its figures misses its target, after writing its results:
that is a result to show, not a failure of the run. A script fails when it exits with
another status, or exits 1 without a missed figure among the results it wrote (a crash).
The command's exit status is 1 only for failures, and for missed targets with ``--check``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "BenchRun",
    "ScriptRun",
    "discover",
    "find_benchmarks",
    "render_markdown",
    "run_benchmarks",
]

SUMMARY = "summary.md"
CHART = "summary.png"
NOT_FOUND = (
    "the benchmark suite (a benchmarks/ directory with bench_*.py scripts) was not found "
    "next to the installed package or in the working directory. It ships with the source, "
    "not the wheel: clone the repository, install it with `pip install -e '.[all]'` and "
    "run `aurora-async bench` from the checkout (or pass --dir path/to/benchmarks)."
)


@dataclass(frozen=True, slots=True)
class ScriptRun:
    """One benchmark script's run."""

    script: str  #: file name, e.g. ``bench_lease.py``
    returncode: int
    seconds: float
    results: tuple[dict[str, Any], ...]  #: the JSON payloads it wrote

    @property
    def missed(self) -> tuple[str, ...]:
        """The figures that missed their target, as ``benchmark: figure``."""
        return tuple(
            f"{payload.get('benchmark', self.script)}: {figure.get('name', '?')}"
            for payload in self.results
            for figure in payload.get("figures", [])
            if isinstance(figure, dict) and figure.get("ok") is False
        )

    @property
    def failed(self) -> bool:
        """The script did not run to its end: an exit status other than 0, except the 1
        of a script whose results show a missed target."""
        if self.returncode == 0:
            return False
        return not (self.returncode == 1 and self.missed)

    @property
    def status(self) -> str:
        if self.failed:
            return f"failed (exit {self.returncode})"
        return "a target was missed" if self.missed else "ok"


@dataclass(frozen=True, slots=True)
class BenchRun:
    directory: Path
    quick: bool
    scripts: tuple[ScriptRun, ...]
    summary: Path | None = None
    chart: Path | None = None
    chart_problem: str | None = None
    written: tuple[Path, ...] = field(default=())

    @property
    def failed(self) -> bool:
        """No script ran, or one failed."""
        return not self.scripts or any(s.failed for s in self.scripts)

    @property
    def missed(self) -> tuple[str, ...]:
        """Every figure that missed its target, as ``benchmark: figure``."""
        return tuple(name for s in self.scripts for name in s.missed)

    def exit_code(self, *, check: bool = False) -> int:
        """1 if the run failed, or if ``check`` and a target was missed; else 0."""
        return 1 if self.failed or (check and self.missed) else 0


def find_benchmarks(cwd: Path | None = None) -> Path | None:
    """The ``benchmarks/`` directory of a source checkout: beside the package's parent
    directory (an editable install) or in the working directory; ``None`` if neither."""
    import aurora_async

    package = Path(aurora_async.__file__).resolve().parent
    for candidate in (package.parent / "benchmarks", (cwd or Path.cwd()) / "benchmarks"):
        if candidate.is_dir() and any(candidate.glob("bench_*.py")):
            return candidate
    return None


def discover(directory: Path, only: Iterable[str] = ()) -> list[Path]:
    """The scripts ``bench_*.py`` in ``directory``, in name order; ``only`` keeps those
    whose name (with or without ``bench_`` and ``.py``) is listed."""
    wanted = {name.removeprefix("bench_").removesuffix(".py") for name in only}
    scripts = sorted(directory.glob("bench_*.py"))
    if wanted:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    return scripts


def _snapshot(results: Path) -> dict[Path, tuple[int, int]]:
    if not results.is_dir():
        return {}
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in results.glob("*.json")}


def _run_one(script: Path, *, quick: bool, out: IO[str]) -> ScriptRun:
    results = script.parent / "results"
    before = _snapshot(results)
    env = dict(os.environ)
    env.pop("AURORA_BENCH_QUICK", None)  # the mode asked for here, not one left set
    args = [sys.executable, str(script)]
    if quick:
        env["AURORA_BENCH_QUICK"] = "1"
        args.append("--quick")
    out.write(f"\n$ {Path(sys.executable).name} {script.name}{' --quick' if quick else ''}\n")
    out.flush()
    started = time.perf_counter()
    with subprocess.Popen(
        args,
        cwd=script.parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
        returncode = proc.wait()
    seconds = time.perf_counter() - started
    after = _snapshot(results)
    payloads = []
    for path in sorted(after):
        if before.get(path) == after[path]:
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out.write(f"(could not read {path.name}: {exc})\n")
            continue
        if isinstance(payload, dict):
            payload.setdefault("benchmark", path.stem)
            payload["_file"] = str(path)
            payloads.append(payload)
    return ScriptRun(script.name, returncode, seconds, tuple(payloads))


def _fmt(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(run: BenchRun) -> str:
    """One markdown table of every figure of every script that ran."""
    machines = sorted({str(p.get("machine")) for s in run.scripts for p in s.results} - {"None"})
    lines = [
        "# Benchmark results",
        "",
        f"Mode: {'quick' if run.quick else 'full'}; written {time.strftime('%Y-%m-%d %H:%M:%S')}"
        " by `aurora-async bench`.",
    ]
    lines += [f"Machine: {machine}" for machine in machines]
    lines += [
        "",
        "| benchmark | figure | value | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for script in run.scripts:
        for payload in script.results:
            for figure in payload.get("figures", []):
                met = {True: "yes", False: "**NO**", None: ""}.get(figure.get("ok"), "")
                detail = f" ({figure['detail']})" if figure.get("detail") else ""
                value = f"{_fmt(figure.get('value'))} {figure.get('unit', '')}".strip()
                lines.append(
                    f"| {_cell(payload['benchmark'])} | {_cell(figure.get('name', ''))} | "
                    f"{_cell(value + detail)} | {_cell(figure.get('target', ''))} | {met} |"
                )
    lines += ["", "| script | status | seconds |", "| --- | --- | --- |"]
    for script in run.scripts:
        lines.append(f"| {script.script} | {script.status} | {script.seconds:.1f} |")
    notes = [n for s in run.scripts for p in s.results for n in p.get("notes", [])]
    if notes:
        lines += ["", *(f"- {_cell(note)}" for note in notes)]
    return "\n".join(lines) + "\n"


def run_benchmarks(
    directory: Path,
    *,
    quick: bool,
    out_dir: Path | None,
    only: Sequence[str] = (),
    out: IO[str],
    chart: bool = True,
) -> BenchRun:
    """Run the scripts, write ``summary.md`` (and ``summary.png``) into ``out_dir``
    (default: ``directory/results``), copying the JSON results there too."""
    target = out_dir or directory / "results"
    runs = tuple(_run_one(script, quick=quick, out=out) for script in discover(directory, only))
    run = BenchRun(directory, quick, runs)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for script in runs:
        for payload in script.results:
            source = Path(payload["_file"])
            if source.parent.resolve() != target.resolve():
                written.append(Path(shutil.copy2(source, target / source.name)))
    summary = target / SUMMARY
    summary.write_text(render_markdown(run), encoding="utf-8")
    png: Path | None = None
    problem: str | None = None
    if chart:
        from .chart import write_chart

        png, problem = write_chart([p for s in runs for p in s.results], target / CHART)
    return BenchRun(directory, quick, runs, summary, png, problem, tuple(written))
