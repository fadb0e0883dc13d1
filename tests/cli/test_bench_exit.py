"""``aurora-async bench``'s exit status (issue 12): a missed target is a result to show,
not a failed command; the status is 1 when a script fails, or with ``--check`` when a
figure misses its target."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aurora_async._cli.app import app

SCRIPT = """\
import json, sys
from pathlib import Path
results = Path(__file__).resolve().parent / "results"
results.mkdir(exist_ok=True)
(results / "{name}.json").write_text(json.dumps({{"benchmark": "{name}", "figures": {figures}}}))
sys.exit({code})
"""
MET = {"name": "lease / acquire", "value": 1.5, "unit": "x", "target": "<= 2x", "ok": True}
MISSED = {"name": "429 share", "value": 1.2, "unit": "%", "target": "<= 0.5%", "ok": False}


def suite(root: Path, **scripts: tuple[list[dict[str, object]] | None, int]) -> Path:
    """A benchmarks/ directory: for each name, the figures its script writes (None: it
    writes nothing) and its exit status."""
    bench = root / "benchmarks"
    bench.mkdir()
    for name, (figures, code) in scripts.items():
        if figures is None:
            text = f"raise SystemExit({code})\n"
        else:
            text = SCRIPT.format(name=name, figures=repr(figures), code=code)
        (bench / f"bench_{name}.py").write_text(text)
    return bench


def bench(directory: Path, *flags: str) -> Result:
    return CliRunner().invoke(app, ["bench", "--quick", "--dir", str(directory), *flags])


def test_a_missed_target_is_shown_and_exits_0(tmp_path: Path) -> None:
    directory = suite(tmp_path, lease=([MET], 0), tiers=([MET, MISSED], 1))
    result = bench(directory)
    assert result.exit_code == 0, result.output
    assert "bench_lease.py: ok (" in result.stdout
    assert "bench_tiers.py: a target was missed (" in result.stdout
    assert "targets missed: tiers: 429 share\n" in result.stdout
    summary = (directory / "results" / "summary.md").read_text()
    assert "| tiers | 429 share | 1.20 % | <= 0.5% | **NO** |" in summary


def test_check_makes_a_missed_target_exit_1(tmp_path: Path) -> None:
    directory = suite(tmp_path, lease=([MET], 0), tiers=([MISSED], 1))
    result = bench(directory, "--check")
    assert result.exit_code == 1
    assert "targets missed: tiers: 429 share\n" in result.stdout


def test_check_with_every_target_met_exits_0(tmp_path: Path) -> None:
    result = bench(suite(tmp_path, lease=([MET], 0)), "--check")
    assert result.exit_code == 0
    assert "targets missed" not in result.stdout


@pytest.mark.parametrize(
    ("figures", "code"),
    [
        (None, 1),  # a crash: a traceback exits 1 and writes nothing
        ([MET], 1),  # exit 1, yet every figure met: something else went wrong
        (None, 3),
        ([MISSED], 2),
    ],
)
def test_a_failed_script_exits_1(
    tmp_path: Path, figures: list[dict[str, object]] | None, code: int
) -> None:
    directory = suite(tmp_path, lease=([MET], 0), broken=(figures, code))
    result = bench(directory)
    assert result.exit_code == 1
    assert f"bench_broken.py: failed (exit {code}) (" in result.stdout
