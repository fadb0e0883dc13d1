"""Every script in ``examples/`` runs on its own, offline, and exits 0 without showing a
secret. They start together (each against its own local API) and each test waits for
its own, so the module takes as long as the slowest example, not the sum."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
#: Every example's secrets start so; their masked names show four characters of them.
SECRET = re.compile(r"sk-example-[\w-]{6,}")
TIMEOUT = 120

#: What each example must print (every one of the texts, for a tuple).
EXPECTED: dict[str, str | tuple[str, ...]] = {
    "crawler.py": "crawled 600 of 600 pages",
    "bot_max_in_flight.py": "120 of 120 messages sent",
    "lease_with_your_own_client.py": "60 forecasts fetched with leased tokens",
    "multiple_windows.py": (
        "the first 23 paced by the per-second window, 2.0 a second",
        "then the per-minute window held a call back",
        "the 20/60s window is spent",
        "0 answered 429",
    ),
    "token_file_reload.py": "broken edit rejected",
    "llm_batch.py": "0 answered 429",
    "github_scopes.py": "0 refused by a rate limit",
}


@pytest.fixture(scope="module")
def started() -> Iterator[dict[str, subprocess.Popen[str]]]:
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=EXAMPLES.parent,
        )
        for name in SCRIPTS
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_every_example_is_listed() -> None:
    assert sorted(EXPECTED) == SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_runs(name: str, started: dict[str, subprocess.Popen[str]]) -> None:
    out, err = started[name].communicate(timeout=TIMEOUT)
    assert started[name].returncode == 0, err
    expected = EXPECTED[name]
    for text in expected if isinstance(expected, tuple) else (expected,):
        assert text in out
    assert SECRET.search(out) is None
    assert SECRET.search(err) is None
