"""``--help`` of every command: no ``<bool>`` beside flags, no ``<str>`` beside arguments
(typer 0.28+ prints both), typed options keep their type, and docstring paragraphs are
wrapped by the terminal rather than at the source's line breaks (issue 12)."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from aurora_async._cli.app import app
from aurora_async._cli.help import reflow

COMMANDS = [[], ["check"], ["demo"], ["plan"], ["bench"]]
WIDE = {"COLUMNS": "300"}  # every paragraph fits on one line


def help_of(command: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "aurora-async")
def test_no_type_beside_flags_and_arguments(command: list[str]) -> None:
    text = help_of(command)
    assert "<bool>" not in text
    assert "<str>" not in text
    assert re.search(r"--help\s+Show this message and exit\.", text)


def test_the_check_argument_is_shown_as_file() -> None:
    text = help_of(["check"], WIDE)
    assert "Usage: aurora-async check [OPTIONS] [FILE]" in text
    assert re.search(r"│\s+FILE\s+The token file\. Default: \$AURORA_TOKENS_FILE", text)
    assert re.search(r"--json\s+Print one JSON object, for tooling\.", text)


def test_typed_options_keep_their_type() -> None:
    plan = help_of(["plan"], WIDE)
    assert re.search(r"--rate\s+<float>\s+Target requests per second\.", plan)
    assert re.search(r"--limit\s+<list\[str\]>\s+A per-token limit", plan)
    assert re.search(r"--json\s+Print one JSON object\.", plan)
    bench = help_of(["bench"], WIDE)
    assert re.search(r"--check\s+Exit 1 when a figure misses its target", bench)
    assert re.search(r"--out\s+<dir>\s+Where to write", bench)


def test_paragraphs_are_not_cut_at_the_source_line_breaks() -> None:
    text = help_of(["check"], WIDE)
    assert (
        " Reports the file used and how it was chosen, the token count, duplicates, limits "
        "annotated on token lines (limit=20/1s,burst=5) and every bad line by number. Never "
        "prints a token: only masked names. Usable as a container health check: "
        "`aurora-async check -q`."
    ) in text


def test_reflow() -> None:
    assert reflow("One\n    two.\n\n    Three\n    four.\n") == "One two.\n\nThree four."
    assert reflow("A\n\n\b\nkeep\nthis") == "A\n\n\b\nkeep\nthis"
