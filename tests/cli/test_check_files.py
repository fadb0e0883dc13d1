"""``aurora-async check``: special files refused at once (issue 12), an empty file with a
hint of its own, and the limits annotated in a token file (issue 11), listed by masked
name with ``--names``. Every output is scanned for the secrets: none may appear."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aurora_async._cli.app import app
from tests.io.guard import guarded

SECRET_A = "sk-live-4f9c2e7a1b8d3f60"
SECRET_B = "sk-live-9a0b1c2d3e4f5a6b"
SECRET_C = "ghp_R2d2C3po0123456789abcdef"
SECRETS = (SECRET_A, SECRET_B, SECRET_C)
FRAGMENTS = {s[i : i + 9] for s in SECRETS for i in range(len(s) - 8)}


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURORA_TOKENS_FILE", raising=False)
    monkeypatch.delenv("AURORA_TOKENS_MAX_BYTES", raising=False)
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    for text in (result.stdout, result.stderr):
        assert [f for f in FRAGMENTS if f in text] == [], f"a secret leaked: {text!r}"
    return result


def outcome(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """(exit status, stdout) of the command, run in a child that may not hang."""
    result = guarded(lambda: (lambda r: (r.exit_code, r.stdout))(invoke(*args, env=env)))
    assert result[0] == "returned", result
    code, stdout = result[1]
    return code, stdout


# -- special files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "kind"),
    [
        ("fifo", "a FIFO (named pipe)"),
        ("/dev/zero", "a character device"),
        ("/dev/urandom", "a character device"),
    ],
)
def test_check_refuses_a_special_file_at_once(isolated: Path, which: str, kind: str) -> None:
    path = isolated / "fifo" if which == "fifo" else Path(which)
    if which == "fifo":
        os.mkfifo(path)
    for args, env, how in (
        ((str(path),), None, "given"),
        ((), {"AURORA_TOKENS_FILE": str(path)}, "from $AURORA_TOKENS_FILE"),
    ):
        code, stdout = outcome("check", *args, env=env)
        assert code == 1
        lines = stdout.splitlines()
        assert lines[0] == f"token file: {path} ({how})"
        assert lines[1].startswith(f"error: {path} is {kind}, not a regular file ({how}; ")
        assert lines[-1] == "result: NOT usable"


def test_check_refuses_a_file_over_the_size_limit(isolated: Path) -> None:
    (isolated / "t.txt").write_text(f"{SECRET_A}\n{SECRET_B}\n")  # 50 bytes
    result = invoke("check", "t.txt", env={"AURORA_TOKENS_MAX_BYTES": "49"})
    assert result.exit_code == 1
    assert "is too large for a token file: 50 bytes, over the limit of 49 bytes" in result.stdout
    assert "set AURORA_TOKENS_MAX_BYTES to its size in bytes or more" in result.stdout
    assert invoke("check", "t.txt", env={"AURORA_TOKENS_MAX_BYTES": "50"}).exit_code == 0


# -- an empty file ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "# tokens go here\n\n"])
def test_an_empty_file_has_its_own_hint(isolated: Path, content: str) -> None:
    (isolated / "t.txt").write_text(content)
    result = invoke("check", "t.txt")
    assert result.exit_code == 1
    assert "The file is there but holds no token: fill it" in result.stdout
    assert "an empty file at the mount point usually means the secret itself is empty" in (
        result.stdout
    )
    assert "docker run -v" not in result.stdout  # the hint for a file that is missing


def test_a_missing_file_keeps_the_mount_hint(isolated: Path) -> None:
    result = invoke("check", "nope.txt")
    assert result.exit_code == 1
    assert "docker run -v" in result.stdout
    assert "holds no token" not in result.stdout


# -- annotations ---------------------------------------------------------------------------

ANNOTATED = (
    f"# tiers\n{SECRET_A}  limit=20/1s,burst=5 limit=5000/1h\n"
    f"{SECRET_C}\tmax_in_flight=2\n{SECRET_B}\n"
)


def test_names_show_each_tokens_limits(isolated: Path) -> None:
    (isolated / "t.txt").write_text(ANNOTATED)
    result = invoke("check", "--names", "t.txt")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1:] == [
        "tokens: 3 (2 with limits of their own; 1 line blank or comments)",
        "  sk-l…3f60  limits 20/1s (burst 5), 5000/3600s",
        "  ghp_…cdef  max_in_flight 2",
        "  sk-l…5a6b  the pool's default limits",
        "result: usable: 3 tokens",
    ]


def test_annotations_in_json(isolated: Path) -> None:
    (isolated / "t.txt").write_text(ANNOTATED)
    report = json.loads(invoke("check", "--json", "t.txt").stdout)
    assert report["usable"] is True
    assert report["names"] == ["sk-l…3f60", "ghp_…cdef", "sk-l…5a6b"]
    assert report["token_limits"] == [
        {
            "name": "sk-l…3f60",
            "limits": [
                {"rate": 20.0, "per": 1.0, "burst": 5.0},
                {"rate": 5000.0, "per": 3600.0, "burst": 5000.0},
            ],
            "max_in_flight": None,
        },
        {"name": "ghp_…cdef", "limits": [], "max_in_flight": 2},
        {"name": "sk-l…5a6b", "limits": [], "max_in_flight": None},
    ]


def test_every_bad_annotation_is_listed_by_line(isolated: Path) -> None:
    (isolated / "t.txt").write_text(
        f"{SECRET_A} limit=20/1s\n{SECRET_B} limit=fast\n{SECRET_C} tier=gold\n"
    )
    result = invoke("check", "--names", "t.txt")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1:3] == [
        "tokens: 1 valid (1 with limits of their own)",
        "  sk-l…3f60  limits 20/1s",
    ]
    assert lines[3] == "bad lines: 2"
    assert lines[4].startswith("  line 2: bad limit= annotation: cannot read the limit 'fast'")
    assert lines[5].startswith("  line 3: an unknown annotation after the token: the annotations")
    assert lines[-1] == "result: NOT usable: fix 2 lines (the pool refuses a file with a bad line)"


def test_a_plain_file_reads_as_before(isolated: Path) -> None:
    (isolated / "t.txt").write_text(f"{SECRET_A}\n{SECRET_C}\n")
    result = invoke("check", "--names", "t.txt")
    assert result.stdout.splitlines()[1:] == [
        "tokens: 2",
        "  sk-l…3f60",
        "  ghp_…cdef",
        "result: usable: 2 tokens",
    ]
