"""Limits annotated in the token file (issue 11): ``TOKEN  limit=20/1s,burst=5
limit=5000/1h max_in_flight=4``. A plain file reads as before; an annotated line becomes a
``Token`` with its limits; a bad annotation names the file, line and column, never the
token; ``TokenPool.from_file`` and ``read_tokens`` use them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

import aurora_async
from aurora_async import LeaseTimeout, Limit, Token, TokenFileError, TokenPool, read_tokens
from aurora_async._core.tokenfile import TokenEntry, parse_token_list, parse_token_text
from aurora_async._core.tokens import mask

SRC = "tokens.txt"
A = "sk-live-aaaa-0123456789abcdef"
B = "sk-live-bbbb-0123456789abcdef"
SECRET = "sk-live-SECRETPART-0123456789"
SYNTAX = (
    "the annotations are limit=RATE/PERIOD[,burst=B] (one per window, e.g. "
    "limit=20/1s,burst=5 limit=5000/1h) and max_in_flight=N, after the token and separated "
    "by spaces; comments go on their own line"
)


def error(text: str) -> TokenFileError:
    with pytest.raises(TokenFileError) as info:
        parse_token_text(text, source=SRC)
    return info.value


# -- parsing -------------------------------------------------------------------------------


def test_an_annotated_line_is_a_token_with_its_limits() -> None:
    text = f"# tiers\n{A}  limit=20/1s,burst=5\tlimit=5000/1h max_in_flight=4\n{B}\n"
    parsed = parse_token_text(text, source=SRC)
    limits = (Limit(20, per=1, burst=5), Limit(5000, per=3600))
    assert parsed.entries == (TokenEntry(A, 2, limits, 4), TokenEntry(B, 3))
    assert parsed.values == (Token(A, limits, max_in_flight=4), B)
    assert parsed.tokens == (Token(A, limits, max_in_flight=4), Token(B))
    assert parsed.values[0].limits == limits  # type: ignore[union-attr]
    assert parsed.skipped == 1


@pytest.mark.parametrize(
    ("annotation", "limits", "in_flight"),
    [
        ("limit=5/s", (Limit(5),), None),
        ("limit=30/min", (Limit(30, per=60),), None),
        ("limit=5/1s,burst=2", (Limit(5, burst=2),), None),
        ("limit=1000/1day", (Limit(1000, per=86400),), None),
        ("limit=0.5/1s,burst=1", (Limit(0.5, burst=1),), None),
        ("max_in_flight=1", (), 1),
        ("max_in_flight=12 limit=3/1s", (Limit(3),), 12),
    ],
)
def test_each_annotation(annotation: str, limits: tuple[Limit, ...], in_flight: int | None) -> None:
    for spacing in (" ", "\t", "   ", " \t "):
        parsed = parse_token_text(f"  {A}{spacing}{annotation}  \r\n", source=SRC)
        assert parsed.entries == (TokenEntry(A, 1, limits, in_flight),)


def test_a_duplicate_is_kept_once_with_its_first_annotations() -> None:
    parsed = parse_token_text(f"{A} limit=1/1s\n{B}\n{A} limit=9/1s\n", source=SRC)
    assert parsed.values == (Token(A, Limit(1)), B)
    assert [(d.name, d.lines) for d in parsed.duplicates] == [(mask(A), (1, 3))]


def test_the_reprs_show_limits_and_never_the_token() -> None:
    parsed = parse_token_text(f"{SECRET} limit=2/1s max_in_flight=3\n", source=SRC)
    text = repr(parsed) + repr(parsed.entries) + repr(parsed.values) + repr(parsed.tokens)
    assert "SECRET" not in text
    assert repr(parsed.entries[0]) == (
        f"TokenEntry(name={mask(SECRET)!r}, line=1, "
        "limits=[Limit(rate=2.0, per=1.0, burst=2.0)], max_in_flight=3)"
    )


TOKENS = st.text(
    st.characters(exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cf", "Cs")), min_size=1
).filter(lambda t: not t.startswith("#"))


@given(st.lists(TOKENS, min_size=1, max_size=20))
def test_property_a_plain_file_reads_as_strings_as_before(tokens: list[str]) -> None:
    """No annotation, no Token: a plain file gives the pool the very strings it gave."""
    parsed = parse_token_text("\n".join(tokens) + "\n", source=SRC)
    assert parsed.values == tuple(dict.fromkeys(tokens))
    assert all(type(value) is str for value in parsed.values)
    assert all(not entry.annotated for entry in parsed.entries)


# -- bad annotations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            f"{A}\n{SECRET} limit=5/x\n",
            2,
            "bad limit= annotation: cannot read the limit '5/x': write RATE/PERIOD such as "
            "'5/1s', '5000/3600s', '30/min' or '5/1s,burst=2' (units: ms, s, min, h, day) "
            f"(at column {len(SECRET) + 2})",
        ),
        (
            f"{SECRET}  limit=0/1s",
            1,
            f"bad limit= annotation: the limit '0/1s' needs a positive rate (at column "
            f"{len(SECRET) + 3})",
        ),
        (
            f"{SECRET} limit=5/1s,burst=0",
            1,
            "bad limit= annotation: the limit '5/1s,burst=0' needs a positive burst "
            f"(at column {len(SECRET) + 2})",
        ),
        (
            f"  {SECRET} rate=5/s",
            1,
            f"an unknown annotation after the token: {SYNTAX} (at column {len(SECRET) + 4})",
        ),
        (
            f"{SECRET} limit=5/s junk",
            1,
            f"not an annotation: {SYNTAX} (at column {len(SECRET) + 12})",
        ),
        (
            f"{SECRET} limit=5/s # a comment",
            1,
            f"not an annotation: {SYNTAX} (at column {len(SECRET) + 12})",
        ),
        (
            f"{SECRET} limit=5/s mood=calm",
            1,
            f"not an annotation: {SYNTAX} (at column {len(SECRET) + 12})",
        ),
        (
            f"{SECRET} max_in_flight=0",
            1,
            f"bad max_in_flight= annotation '0': write a whole number > 0 (at column "
            f"{len(SECRET) + 2})",
        ),
        (
            f"{SECRET} max_in_flight=two",
            1,
            f"bad max_in_flight= annotation 'two': write a whole number > 0 (at column "
            f"{len(SECRET) + 2})",
        ),
        (
            f"{SECRET} max_in_flight=1 max_in_flight=2",
            1,
            f"max_in_flight= is given twice: give it once (at column {len(SECRET) + 18})",
        ),
        (
            f"{SECRET[:9]}\x07{SECRET[9:]} limit=5/s",
            1,
            "control character U+0007 (BELL) inside a token: remove it (at column 10)",
        ),
    ],
)
def test_a_bad_annotation_names_the_line_and_column_not_the_token(
    text: str, line: int, reason: str
) -> None:
    exc = error(text)
    assert (exc.path, exc.line, exc.reason) == (SRC, line, reason)
    for shown in (str(exc), repr(exc), exc.reason):
        assert "SECRET" not in shown


@pytest.mark.parametrize(
    "text",
    [
        f"Bearer {SECRET}",  # a header pasted whole
        f"{SECRET[:12]} {SECRET[12:]}==",  # a stray space inside a base64 token
        f"{SECRET[:12]} LIMIT{SECRET[12:]}=x",
        f"{SECRET} \u00a0limit=5/s",  # only spaces and tabs separate annotations
    ],
)
def test_white_space_inside_a_token_is_still_that(text: str) -> None:
    """A token with white space inside is not mistaken for one with annotations, and the
    part after the space (which may be secret) is not echoed."""
    exc = error(text)
    assert "inside a token: put one token per line" in exc.reason
    assert "SECRET" not in str(exc)
    assert SECRET[12:] not in str(exc)


# -- the pool and the public reader -----------------------------------------------------------


@pytest.mark.looptime
async def test_from_file_gives_annotated_tokens_their_limits(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A} limit=2/1s,burst=2\n")
    async with TokenPool.from_file(path, limits=Limit(100), trial_in_flight=None) as pool:
        for _ in range(2):
            (await pool.acquire(timeout=0)).release()
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0)  # its own limit, not the pool's 100/s


@pytest.mark.looptime
async def test_from_file_keeps_its_limits_for_lines_without(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{B}\n")
    async with TokenPool.from_file(path, limits=Limit(3, burst=3), trial_in_flight=None) as pool:
        for _ in range(3):
            (await pool.acquire(timeout=0)).release()
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0)


@pytest.mark.looptime
async def test_from_file_caps_in_flight_as_annotated(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A} max_in_flight=1\n")
    pool = TokenPool.from_file(path, limits=Limit(100, burst=100), trial_in_flight=None)
    async with pool:
        first = await pool.acquire(timeout=0)
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0)
        first.release()
        (await pool.acquire(timeout=0)).release()


@pytest.mark.looptime
async def test_a_reload_applies_changed_annotations(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A} limit=1/1s\n")
    async with TokenPool.from_file(path, limits=Limit(100), trial_in_flight=None) as pool:
        (await pool.acquire(timeout=0)).release()
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=0)
        path.write_text(f"{A} limit=5/1s\n")
        result = await pool.reload()
        assert (result.added, result.removed, result.kept) == ((), (), 1)
        # New windows start full: one unit fits after 0.2 s at 5/1s (it took 1 s at 1/1s).
        (await pool.acquire(timeout=0.5)).release()


def test_a_bad_annotation_fails_from_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A}\n{SECRET} limit=fast\n")
    with pytest.raises(TokenFileError) as info:
        TokenPool.from_file(path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert "SECRET" not in str(info.value)


def test_read_tokens_returns_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A} limit=20/1s,burst=5 limit=5000/1h\n{B}\n{A}\n")
    with capture_logs() as logs:
        tokens = read_tokens(path)
    assert tokens == [Token(A, [Limit(20, burst=5), Limit(5000, per=3600)]), Token(B)]
    assert tokens[1].limits is None  # the pool's default applies
    assert logs == [
        {
            "event": "aurora.tokens.duplicate",
            "log_level": "warning",
            "source": str(path),
            "token": mask(A),
            "lines": [1, 3],
            "kept_line": 1,
        }
    ]
    assert aurora_async.read_tokens is read_tokens


def test_read_tokens_finds_the_file_as_from_file_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURORA_TOKENS_FILE", raising=False)
    (tmp_path / "access_tokens.txt").write_text(f"{A}\n")
    assert read_tokens() == [Token(A)]
    (tmp_path / "other.txt").write_text(f"{B} max_in_flight=2\n")
    monkeypatch.setenv("AURORA_TOKENS_FILE", "other.txt")
    assert read_tokens() == [Token(B, max_in_flight=2)]
    monkeypatch.setenv("AURORA_TOKENS_FILE", "missing.txt")
    with pytest.raises(TokenFileError, match="token file not found"):
        read_tokens()


def test_the_readme_example_reads_as_it_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The token file\n", 1)[1].split("\n### ", 1)[0]
    example = section.split("```text\n", 1)[1].split("```", 1)[0]
    parsed = parse_token_text(example, source="README.md")
    assert [(entry.name, entry.limits, entry.max_in_flight) for entry in parsed.entries] == [
        ("sk-f…cdef", (), None),
        ("sk-p…cdef", (Limit(20, burst=5), Limit(5000, per=3600)), None),
        ("sk-t…cdef", (Limit(50),), 8),
    ]


@pytest.mark.parametrize(
    ("text", "position", "shown"),
    [
        (f"{A} limit=20/1s,burst=5", 2, "limit="),
        (f"{A},{B}\tmax_in_flight=2", 3, "max_in_flight="),
    ],
)
def test_a_token_list_has_no_annotations(text: str, position: int, shown: str) -> None:
    """An annotated line pasted into $AURORA_TOKENS would otherwise make tokens of
    ``limit=20/1s`` and ``burst=5``."""
    with pytest.raises(TokenFileError) as info:
        parse_token_list(text, source="$AURORA_TOKENS")
    assert (info.value.path, info.value.line) == ("$AURORA_TOKENS", position)
    assert info.value.reason == (
        f"a token-file annotation ({shown}...) in the list (token number {position}): the "
        "list holds tokens only; put tokens with limits of their own in a token file "
        "(TokenPool.from_file)"
    )
