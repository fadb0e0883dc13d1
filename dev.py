#!/usr/bin/env python3
"""The two commands of this repository, for a machine with nothing but Python 3.11+.

    python3 dev.py demo [options]   run the demo: a local rate-limited API, a token pool
    python3 dev.py test             run every quality gate: ruff, mypy --strict, pytest

Both create ``.venv`` beside this file on first use and install the project into it
(editable, with every extra), then reinstall only when ``pyproject.toml`` changes.
Anything after ``demo`` is passed to ``aurora-async demo``; anything after ``test`` to
pytest. Other verbs: ``bench`` (the benchmark suite), ``cli`` (the ``aurora-async`` tool).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".aurora-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def _say(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr, flush=True)


def _ensure_venv() -> None:
    """Create .venv and install the project into it, unless it is already current."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and PY.exists():
        return
    if not PY.exists():
        _say(f"creating {VENV.relative_to(ROOT)} with {sys.executable}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    _say("installing aurora_async with every extra (first run only, about a minute)")
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        check=True,
    )
    subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[all,dev]"],
        check=True,
    )
    STAMP.write_text(wanted + "\n")


def _run(argv: list[str]) -> int:
    print("+ " + " ".join(argv), file=sys.stderr, flush=True)
    return subprocess.run(argv, cwd=ROOT, check=False).returncode


def test(extra: list[str]) -> int:
    """Lint, format check, strict typing and the test suite with branch coverage."""
    steps = [
        [str(PY), "-m", "ruff", "check", "."],
        [str(PY), "-m", "ruff", "format", "--check", "."],
        [str(PY), "-m", "mypy", "--strict", "aurora_async", "tests/typing"],
        [
            str(PY),
            "-m",
            "pytest",
            "--cov=aurora_async",
            "--cov-branch",
            "--cov-report=term",
            "--cov-fail-under=90",
            *extra,
        ],
    ]
    failed = [step for step in steps if _run(step) != 0]
    if failed:
        _say("FAILED: " + "; ".join(" ".join(s[2:4]) for s in failed))
        return 1
    _say("all quality gates passed")
    return 0


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 (this file runs before any install)
        _say(f"aurora_async needs Python 3.11 or newer; this is {sys.version.split()[0]}")
        return 2
    verb, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if verb in {"help", "-h", "--help"}:
        print(__doc__)
        return 0
    if verb not in {"demo", "test", "bench", "cli"}:
        _say(f"unknown verb {verb!r}; use demo, test, bench or cli")
        return 2
    _ensure_venv()
    if verb == "test":
        return test(rest)
    cli = [str(BIN / "aurora-async")]
    if verb == "cli":
        return _run(cli + rest)
    return _run([*cli, verb, *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
