"""The token file: parsing (pure) and reading it from disk or the environment."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora_async import TokenFileError
from aurora_async._core.tokenfile import (
    Duplicate,
    ParsedTokens,
    TokenEntry,
    parse_token_list,
    parse_token_text,
)
from aurora_async._core.tokens import mask
from aurora_async._io import tokenfile as tokenfile_io
from aurora_async._io.tokenfile import (
    DEFAULT_FILE,
    ENV_FILE,
    ENV_TOKENS,
    read_token_env,
    read_token_file,
    resolve_token_path,
)

SRC = "tokens.txt"
A = "sk-alpha-0123456789abcdef"
B = "sk-bravo-0123456789abcdef"
C = "sk-charlie-0123456789abcd"
SECRET = "sk-live-SECRETPART-0123456789"
UTF8 = "save the file as UTF-8 (not UTF-16, Latin-1 or a word processor format)"
ONE_PER_LINE = "put one token per line (comments go on their own line, starting with #)"


def pairs(parsed: ParsedTokens) -> list[tuple[str, int]]:
    return [(entry.value, entry.line) for entry in parsed.entries]


def file_error(text: str | bytes) -> TokenFileError:
    with pytest.raises(TokenFileError) as info:
        parse_token_text(text, source=SRC)
    return info.value


def list_error(text: str) -> TokenFileError:
    with pytest.raises(TokenFileError) as info:
        parse_token_list(text, source="$AURORA_TOKENS")
    return info.value


# --- parse_token_text: the happy paths -------------------------------------------------


def test_one_token_per_line() -> None:
    parsed = parse_token_text(f"{A}\n{B}\n", source=SRC)
    assert parsed == ParsedTokens(source=SRC, values=(A, B), lines=(1, 2), duplicates=(), skipped=0)
    assert parsed.entries == (TokenEntry(A, 1), TokenEntry(B, 2))
    assert parsed.values == (A, B)


def test_last_line_without_a_line_break() -> None:
    assert pairs(parse_token_text(f"{A}\n{B}", source=SRC)) == [(A, 1), (B, 2)]


@pytest.mark.parametrize("text", [f"\ufeff{A}\n{B}\n", f"\ufeff{A}\n{B}\n".encode()])
def test_bom_at_start_is_stripped(text: str | bytes) -> None:
    parsed = parse_token_text(text, source=SRC)
    assert pairs(parsed) == [(A, 1), (B, 2)]
    assert parsed.skipped == 0


def test_bom_before_a_comment_and_blank_line() -> None:
    parsed = parse_token_text(b"\xef\xbb\xbf# tokens\n\n" + A.encode(), source=SRC)
    assert pairs(parsed) == [(A, 3)]
    assert parsed.skipped == 2


def test_bom_elsewhere_is_an_error() -> None:
    exc = file_error(f"{A}\n\ufeff{B}\n")
    assert exc.line == 2
    assert exc.reason == (
        "invisible character U+FEFF (BYTE ORDER MARK) inside a token: remove it (it often "
        "comes along when a token is copied from a web page or a chat) (at column 1)"
    )


def test_only_one_bom_is_stripped() -> None:
    exc = file_error("\ufeff\ufeff" + A)
    assert exc.line == 1
    assert "U+FEFF (BYTE ORDER MARK)" in exc.reason


@pytest.mark.parametrize(
    "text",
    [
        f"{A}\r\n{B}\r\n{C}\r\n",
        f"{A}\r{B}\r{C}\r",
        f"{A}\r{B}\r\n{C}\n",
        f"{A}\n{B}\r{C}",
        f"{A}\r\n{B}\n{C}".encode(),
    ],
)
def test_crlf_and_lone_cr_line_endings(text: str | bytes) -> None:
    parsed = parse_token_text(text, source=SRC)
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 3)]
    assert parsed.skipped == 0


def test_blank_lines_with_crlf_and_cr_count_once_each() -> None:
    parsed = parse_token_text(f"\r\n\r\r\n{A}\r\r{B}", source=SRC)
    # lines: "", "", "", A, "", B
    assert pairs(parsed) == [(A, 4), (B, 6)]
    assert parsed.skipped == 4


def test_blank_lines_and_comments_are_skipped_and_counted() -> None:
    text = f"# production tokens\n\n{A}\n   \n\t\n  # indented comment\n#\n{B}\n\n"
    parsed = parse_token_text(text, source=SRC)
    assert pairs(parsed) == [(A, 3), (B, 8)]
    assert parsed.skipped == 7


def test_surrounding_white_space_is_stripped() -> None:
    text = f"  {A}  \n\t{B}\t\n \t {C} \t \r\n\u00a0{A}\u3000\n"
    parsed = parse_token_text(text, source=SRC)
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 3)]
    assert parsed.duplicates == (Duplicate(mask(A), (1, 4)),)


def test_hash_inside_a_token_is_part_of_it() -> None:
    assert pairs(parse_token_text("abc#def\n", source=SRC)) == [("abc#def", 1)]


def test_private_use_characters_are_allowed() -> None:
    # Not white space, control or formatting: the slow check passes them.
    assert pairs(parse_token_text("tok\ue000en\n", source=SRC)) == [("tok\ue000en", 1)]


def test_non_ascii_token() -> None:
    assert pairs(parse_token_text("jeton-é-ü-中\n".encode(), source=SRC)) == [("jeton-é-ü-中", 1)]


def test_duplicates_are_kept_once_and_every_line_is_reported() -> None:
    text = f"{A}\n{B}\n{A}\n{C}\n  {B}\n{A}\n"
    parsed = parse_token_text(text, source=SRC)
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 4)]
    assert parsed.duplicates == (
        Duplicate(mask(A), (1, 3, 6)),
        Duplicate(mask(B), (2, 5)),
    )


def test_duplicates_are_ordered_by_first_appearance() -> None:
    # B repeats before A does, but A appears first.
    parsed = parse_token_text(f"{A}\n{B}\n{B}\n{A}\n", source=SRC)
    assert parsed.duplicates == (Duplicate(mask(A), (1, 4)), Duplicate(mask(B), (2, 3)))


def test_entry_name_is_the_mask() -> None:
    entry = TokenEntry(A, 7)
    assert entry.name == mask(A) == "sk-a…cdef"
    assert repr(entry) == "TokenEntry(name='sk-a…cdef', line=7)"


def test_results_are_frozen() -> None:
    parsed = parse_token_text(A, source=SRC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.entries[0].value = B  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.skipped = 3  # type: ignore[misc]


def test_hundred_thousand_lines() -> None:
    # Speed is measured in benchmarks/, not asserted here.
    lines = [f"  tok-{i:06d}-abcdefghijklmnopqrstuvwxyz  " for i in range(100_000)]
    data = ("\ufeff# header\r\n" + "\r\n".join(lines) + "\r\n").encode()
    parsed = parse_token_text(data, source=SRC)
    assert len(parsed.entries) == 100_000
    assert parsed.entries[-1].line == 100_001
    assert parsed.entries[-1].value == "tok-099999-abcdefghijklmnopqrstuvwxyz"
    assert parsed.skipped == 1


# --- parse_token_text: errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("abc def", 1, f"white space inside a token: {ONE_PER_LINE} (at column 4)"),
        (
            f"{A}\n\nabc\tdef\n",
            3,
            f"white space U+0009 (TAB) inside a token: {ONE_PER_LINE} (at column 4)",
        ),
        (
            f"{A}\n  ab\u00a0c\n",
            2,
            f"white space U+00A0 (NO-BREAK SPACE) inside a token: {ONE_PER_LINE} (at column 5)",
        ),
        (
            f"# c\n{A}\r\n\r\nab\u3000c",
            4,
            f"white space U+3000 (IDEOGRAPHIC SPACE) inside a token: {ONE_PER_LINE} (at column 3)",
        ),
        (
            "a\u2028b",
            1,
            f"white space U+2028 (LINE SEPARATOR) inside a token: {ONE_PER_LINE} (at column 2)",
        ),
        (
            "a\x0bb",
            1,
            f"white space U+000B (VERTICAL TAB) inside a token: {ONE_PER_LINE} (at column 2)",
        ),
        (
            "a\x85b",
            1,
            f"white space U+0085 (NEXT LINE) inside a token: {ONE_PER_LINE} (at column 2)",
        ),
        (
            f"{A}\n{B}\r\n{C} # the staging token\n",
            3,
            "white space inside a token: put one token per line; a comment must be on its "
            "own line, starting with # (at column 26)",
        ),
        (
            f"{A}\n{B}\t#comment\n",
            2,
            "white space U+0009 (TAB) inside a token: put one token per line; a comment must "
            "be on its own line, starting with # (at column 26)",
        ),
        (
            "ab\x07cd",
            1,
            "control character U+0007 (BELL) inside a token: remove it (at column 3)",
        ),
        ("abcd\x7f", 1, "control character U+007F (DEL) inside a token: remove it (at column 5)"),
        (
            "\x1b[0mabc",
            1,
            "control character U+001B (ESCAPE) inside a token: remove it (at column 1)",
        ),
        ("ab\x01cd", 1, "control character U+0001 inside a token: remove it (at column 3)"),
        (
            f"{A}\n{B}\nab\x00cd\n",
            3,
            f"control character U+0000 (NUL) inside a token: is the file UTF-16? {UTF8} "
            "(at column 3)",
        ),
        (
            f"{A}\r\nab\u200bcd\r\n",
            2,
            "invisible character U+200B (ZERO WIDTH SPACE) inside a token: remove it (it often "
            "comes along when a token is copied from a web page or a chat) (at column 3)",
        ),
        (
            "ab\u200dcd",
            1,
            "invisible character U+200D (ZERO WIDTH JOINER) inside a token: remove it (it often "
            "comes along when a token is copied from a web page or a chat) (at column 3)",
        ),
        (
            "abc\udcff",
            1,
            f"a character that is not valid UTF-8 (U+DCFF) inside a token; {UTF8} (at column 4)",
        ),
    ],
)
def test_bad_characters_inside_a_token(text: str, line: int, reason: str) -> None:
    for given_text in (text, text.encode("utf-8", "surrogatepass")):
        if isinstance(given_text, bytes) and "\udcff" in text:
            continue  # not encodable as UTF-8: a str-only case
        exc = file_error(given_text)
        assert exc.path == SRC
        assert exc.line == line
        assert exc.reason == reason
        assert str(exc) == f"{SRC}:{line}: {reason}"


def test_first_bad_character_is_reported() -> None:
    exc = file_error("ab\x07c d")
    assert exc.reason == "control character U+0007 (BELL) inside a token: remove it (at column 3)"


def test_error_stops_at_first_bad_line() -> None:
    exc = file_error(f"{A}\nx y\nz\x00w\n")
    assert exc.line == 2


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b"\xff" + A.encode(), 1, 1),
        (A.encode() + b"\n" + b"ab\xffcd\n", 2, 3),
        (A.encode() + b"\r\n" + B.encode() + b"\r\n" + b"\xc3\x28\r\n", 3, 1),
        (A.encode() + b"\r" + B.encode() + b"\r" + b"\r" + b"abc\x80", 4, 4),
        (b"\n\r\n\r" + b"xy\xe2\x82", 4, 3),  # truncated multi-byte sequence at the end
        (b"# caf\xe9\n" + A.encode(), 1, 6),  # Latin-1 in a comment is still not UTF-8
        (b"\xef\xbb\xbf" + A.encode() + b"\n\xfe", 2, 1),
    ],
)
def test_invalid_utf8_names_the_line(data: bytes, line: int, column: int) -> None:
    exc = file_error(data)
    assert exc.path == SRC
    assert exc.line == line
    assert exc.reason == (
        f"bytes that are not valid UTF-8 (first bad byte at byte {column} of the line); {UTF8}"
    )


@pytest.mark.parametrize("bom", [b"\xff\xfe", b"\xfe\xff"])
def test_utf16_file_with_bom(bom: bytes) -> None:
    codec = "utf-16-le" if bom == b"\xff\xfe" else "utf-16-be"
    exc = file_error(bom + f"{A}\n{B}\n".encode(codec))
    assert exc.line == 1
    assert exc.reason == (f"the file is UTF-16 (it starts with a UTF-16 byte order mark); {UTF8}")


def test_utf16_without_bom_is_caught_by_the_nul() -> None:
    exc = file_error(f"{A}\n".encode("utf-16-le"))
    assert exc.line == 1
    assert exc.reason.startswith(
        "control character U+0000 (NUL) inside a token: is the file UTF-16?"
    )


@pytest.mark.parametrize("text", ["", b"", "\ufeff", b"\xef\xbb\xbf"])
def test_empty_text_has_no_tokens(text: str | bytes) -> None:
    exc = file_error(text)
    assert exc.path == SRC
    assert exc.line is None
    assert exc.reason == "no tokens found: it is empty; put one token per line"
    assert str(exc) == f"{SRC}: no tokens found: it is empty; put one token per line"


@pytest.mark.parametrize(
    ("text", "count"),
    [("\n", 1), ("# a\n\n  # b\r\n \t ", 4), (b"\xef\xbb\xbf#only a comment", 1)],
)
def test_only_blank_lines_and_comments_have_no_tokens(text: str | bytes, count: int) -> None:
    exc = file_error(text)
    assert exc.line is None
    assert exc.reason == (
        f"no tokens found: all {count} line(s) are blank or comments; put one token per line"
    )


# --- parse_token_list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"{A}\n{B}\n{C}\n",
        f"{A},{B},{C}",
        f"{A} {B} {C}",
        f" {A}, {B} ,{C} ",
        f"{A},,{B}\t\t{C},",
        f"{A}\r\n{B}\r{C}",
        f"\ufeff{A}, {B}\n\n{C}",
        f"{A}\u00a0{B}\u3000{C}",
    ],
)
def test_token_list_separators(text: str) -> None:
    parsed = parse_token_list(text, source="$AURORA_TOKENS")
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 3)]
    assert parsed.source == "$AURORA_TOKENS"
    assert parsed.duplicates == ()


def test_token_list_comment_lines_and_blank_lines_are_skipped() -> None:
    parsed = parse_token_list(f"# prod\n{A},{B}\n\n   # staging\n{C}\n", source="$X")
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 3)]
    assert parsed.skipped == 3


def test_token_list_duplicates_report_positions() -> None:
    parsed = parse_token_list(f"{A},{B}\n{A} {C},{B},{A}", source="$X")
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 4)]
    assert parsed.duplicates == (Duplicate(mask(A), (1, 3, 6)), Duplicate(mask(B), (2, 5)))


def test_token_list_private_use_is_allowed() -> None:
    assert pairs(parse_token_list("a\ue000b,c", source="$X")) == [("a\ue000b", 1), ("c", 2)]


def test_token_list_inline_comment_is_an_error() -> None:
    exc = list_error(f"{A},{B} # staging")
    assert exc.path == "$AURORA_TOKENS"
    assert exc.line == 3
    assert exc.reason == (
        "a '#' comment after a token (token number 3 in the list): comments must be on "
        "their own line"
    )


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        (
            f"{A},ab\x00c",
            2,
            "control character U+0000 (NUL) inside a token: remove it",
        ),
        (f"{A}\n{B}, x\x7fy", 3, "control character U+007F (DEL) inside a token: remove it"),
        (
            f"{A} a\u200bb",
            2,
            "invisible character U+200B (ZERO WIDTH SPACE) inside a token: remove it (it often "
            "comes along when a token is copied from a web page or a chat)",
        ),
        (
            "ab\udc80",
            1,
            "a character that is not valid UTF-8 (U+DC80) inside a token; set the value as "
            "UTF-8 text",
        ),
    ],
)
def test_token_list_bad_characters(text: str, position: int, reason: str) -> None:
    exc = list_error(text)
    assert exc.line == position
    assert exc.reason == f"{reason} (token number {position} in the list)"


@pytest.mark.parametrize("text", ["", " ", ",,, ,\n\n", "\ufeff", "# just a comment\n"])
def test_token_list_without_tokens(text: str) -> None:
    exc = list_error(text)
    assert exc.line is None
    assert exc.reason == (
        "no tokens found: it is empty or holds only separators and comments; "
        "separate tokens with newlines, commas or spaces"
    )


# --- secrets never leak ---------------------------------------------------------------------

BAD_INSERTS = [" ", "\t", "\x00", "\x07", "\x7f", "\u200b", "\u00a0", "\ufeff", " # note"]


@pytest.mark.parametrize("insert", BAD_INSERTS)
def test_secret_never_in_file_errors(insert: str) -> None:
    head, tail = SECRET[:14], SECRET[14:]
    exc = file_error(f"{A}\n{head}{insert}{tail}\n")
    assert exc.line == 2
    for text in (str(exc), repr(exc), exc.reason, str(exc.args)):
        assert head not in text
        assert tail not in text
        assert "SECRET" not in text


@pytest.mark.parametrize("insert", ["\x00", "\x07", "\x7f", "\u200b", "\ufeff", "\udcff"])
def test_secret_never_in_list_errors(insert: str) -> None:
    head, tail = SECRET[:14], SECRET[14:]
    exc = list_error(f"{A},{head}{insert}{tail}")
    assert exc.line == 2
    for text in (str(exc), repr(exc)):
        assert head not in text
        assert tail not in text


def test_secret_never_in_reprs() -> None:
    parsed = parse_token_text(f"{SECRET}\n{A}\n{SECRET}\n", source=SRC)
    texts = [repr(parsed), str(parsed), repr(parsed.entries), repr(parsed.duplicates)]
    texts += [repr(entry) for entry in parsed.entries]
    for text in texts:
        assert SECRET not in text
        assert "SECRET" not in text
        assert A not in text
    assert mask(SECRET) in repr(parsed)


# --- property: any valid file parses to exactly its unique tokens -------------------------

_TOKEN_CHARS = st.characters(exclude_categories=("Zs", "Zl", "Zp", "Cc", "Cf", "Cs"))
TOKENS = st.text(_TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda t: (
        not t.startswith(("#", "limit=", "max_in_flight="))  # annotations are not tokens
        and not any(c.isspace() for c in t)
    )
)
PADDING = st.text(st.sampled_from(" \t\u00a0\u3000\x0c"), max_size=3)
COMMENT_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=15
)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def token_files(draw: st.DrawFn) -> tuple[str | bytes, list[tuple[str, int]], list[Duplicate], int]:
    distinct = draw(st.lists(TOKENS, min_size=1, max_size=5, unique=True))
    order = draw(st.lists(st.sampled_from(distinct), min_size=1, max_size=12))
    # Lines as (content, is_token_value or None); then line endings and an optional BOM.
    lines: list[tuple[str, str | None]] = []
    for token in order:
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                lines.append((draw(PADDING), None))
            else:
                lines.append((draw(PADDING) + "#" + draw(COMMENT_TEXT), None))
        lines.append((draw(PADDING) + token + draw(PADDING), token))
    text = ""
    ending = ""
    for content, _token in lines:
        previous, ending = ending, draw(ENDINGS)
        if not content and previous == "\r" and ending.startswith("\n"):
            content = " "  # "\r" + "\n" would be one CRLF, not an empty line between
        text += content + ending
    if draw(st.booleans()):
        text = text[: -len(ending)]  # the last line (a token) without a line break
    if draw(st.booleans()):
        text = "\ufeff" + text
    data: str | bytes = text.encode() if draw(st.booleans()) else text

    expected: list[tuple[str, int]] = []
    seen: dict[str, list[int]] = {}
    skipped = 0
    for number, (_content, value) in enumerate(lines, 1):
        if value is None:
            skipped += 1
        elif value in seen:
            seen[value].append(number)
        else:
            seen[value] = [number]
            expected.append((value, number))
    duplicates = [Duplicate(mask(t), tuple(ls)) for t, ls in seen.items() if len(ls) > 1]
    duplicates.sort(key=lambda d: d.lines[0])
    return data, expected, duplicates, skipped


@given(token_files())
def test_property_valid_files_parse_to_their_unique_tokens(
    case: tuple[str | bytes, list[tuple[str, int]], list[Duplicate], int],
) -> None:
    data, expected, duplicates, skipped = case
    parsed = parse_token_text(data, source=SRC)
    assert pairs(parsed) == expected
    assert list(parsed.duplicates) == duplicates
    assert parsed.skipped == skipped


@given(
    st.lists(TOKENS.filter(lambda t: "," not in t), min_size=1, max_size=8),
    st.lists(st.sampled_from(["\n", ",", " ", ", ", "\t", "\r\n", " ,\n"]), min_size=8, max_size=8),
)
def test_property_token_lists(tokens: list[str], separators: list[str]) -> None:
    text = "".join(token + sep for token, sep in zip(tokens, separators, strict=False))
    parsed = parse_token_list(text, source="$X")
    unique = list(dict.fromkeys(tokens))
    assert parsed.values == tuple(unique)
    assert [entry.line for entry in parsed.entries] == [tokens.index(t) + 1 for t in unique]


@given(
    TOKENS.filter(lambda t: len(t) >= 2),
    st.sampled_from(["\x00", "\x07", " ", "\t", "\u200b", "\u00a0", "\u2028", "\x7f"]),
    st.integers(0, 4),
    st.data(),
)
def test_property_bad_character_is_found_on_its_line(
    token: str, bad: str, blank_lines: int, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(token) - 1))
    text = "\n" * blank_lines + token[:cut] + bad + token[cut:] + "\n"
    exc = file_error(text)
    assert exc.line == blank_lines + 1
    assert exc.reason.endswith(f"(at column {cut + 1})")


# --- resolve_token_path ---------------------------------------------------------------------


def test_explicit_path_wins_over_env_and_default(tmp_path: Path) -> None:
    env = {ENV_FILE: "/from/env.txt"}
    assert resolve_token_path("/given/t.txt", environ=env, cwd=tmp_path) == (
        Path("/given/t.txt"),
        "given",
    )


def test_env_var_wins_over_default(tmp_path: Path) -> None:
    env = {ENV_FILE: "/run/secrets/tokens"}
    assert resolve_token_path(environ=env, cwd=tmp_path) == (
        Path("/run/secrets/tokens"),
        "from $AURORA_TOKENS_FILE",
    )


def test_default_is_in_the_working_directory(tmp_path: Path) -> None:
    assert resolve_token_path(environ={}, cwd=tmp_path) == (
        tmp_path / "access_tokens.txt",
        "default ./access_tokens.txt in the working directory",
    )


def test_relative_paths_are_relative_to_cwd(tmp_path: Path) -> None:
    assert resolve_token_path("conf/t.txt", environ={}, cwd=tmp_path) == (
        tmp_path / "conf" / "t.txt",
        "given",
    )
    assert resolve_token_path(environ={ENV_FILE: "x/t.txt"}, cwd=tmp_path) == (
        tmp_path / "x" / "t.txt",
        "from $AURORA_TOKENS_FILE",
    )


def test_path_like_and_home_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_token_path(Path("~/t.txt"), environ={}, cwd=Path("/")) == (
        tmp_path / "home" / "t.txt",
        "given",
    )
    assert resolve_token_path(environ={ENV_FILE: "~/e.txt"}, cwd=Path("/")) == (
        tmp_path / "home" / "e.txt",
        "from $AURORA_TOKENS_FILE",
    )


def test_defaults_are_os_environ_and_process_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ENV_FILE, raising=False)
    assert resolve_token_path() == (
        Path.cwd() / DEFAULT_FILE,
        "default ./access_tokens.txt in the working directory",
    )
    monkeypatch.setenv(ENV_FILE, "other.txt")
    assert resolve_token_path() == (Path.cwd() / "other.txt", "from $AURORA_TOKENS_FILE")


def test_empty_explicit_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError) as info:
        resolve_token_path("", environ={}, cwd=tmp_path)
    assert info.value.path is None
    assert info.value.line is None
    assert info.value.reason == (
        "the token file path given is an empty string: pass the path of the file "
        "(or None to use $AURORA_TOKENS_FILE, else ./access_tokens.txt)"
    )


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_env_var_set_but_empty_is_an_error(tmp_path: Path, value: str) -> None:
    (tmp_path / DEFAULT_FILE).write_text(A)  # not silently used instead
    with pytest.raises(TokenFileError) as info:
        read_token_file(environ={ENV_FILE: value}, cwd=tmp_path)
    assert info.value.path == "$AURORA_TOKENS_FILE"
    assert info.value.reason == (
        "AURORA_TOKENS_FILE is set but empty: set it to the path of the token file, or unset "
        f"it to use ./access_tokens.txt in the working directory ({tmp_path})"
    )


# --- read_token_file --------------------------------------------------------------------------


def test_read_file_from_each_source(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_FILE).write_bytes(b"\xef\xbb\xbf" + f"{A}\r\n{B}\r\n".encode())
    (tmp_path / "env.txt").write_text(f"{B}\n")
    (tmp_path / "given.txt").write_text(f"# c\n{C}\n")

    parsed = read_token_file(environ={}, cwd=tmp_path)
    assert parsed.source == str(tmp_path / DEFAULT_FILE)
    assert pairs(parsed) == [(A, 1), (B, 2)]

    parsed = read_token_file(environ={ENV_FILE: "env.txt"}, cwd=tmp_path)
    assert parsed.source == str(tmp_path / "env.txt")
    assert pairs(parsed) == [(B, 1)]

    parsed = read_token_file(tmp_path / "given.txt", environ={ENV_FILE: "env.txt"}, cwd=tmp_path)
    assert parsed.source == str(tmp_path / "given.txt")
    assert pairs(parsed) == [(C, 2)]
    assert parsed.skipped == 1


def test_read_file_with_process_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_FILE, "t.txt")
    (tmp_path / "t.txt").write_text(A)
    assert pairs(read_token_file()) == [(A, 1)]


def test_read_file_through_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text(A)
    (tmp_path / "link.txt").symlink_to("real.txt")
    parsed = read_token_file(tmp_path / "link.txt", cwd=tmp_path)
    assert parsed.source == str(tmp_path / "link.txt")
    assert pairs(parsed) == [(A, 1)]


def hints(path: Path) -> str:
    return (
        "To use another file, pass its path (TokenPool.from_file(path=...)) or set "
        "AURORA_TOKENS_FILE=/path/to/access_tokens.txt. In a container, mount the file at "
        f"this path, e.g. `docker run -v ./access_tokens.txt:{path}:ro ...`, or mount a "
        "Kubernetes secret as a volume and set AURORA_TOKENS_FILE to the key's file inside it."
    )


def read_error(*args: str | Path, **kwargs: object) -> TokenFileError:
    with pytest.raises(TokenFileError) as info:
        read_token_file(*args, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_missing_default_file(tmp_path: Path) -> None:
    exc = read_error(environ={}, cwd=tmp_path)
    path = tmp_path / DEFAULT_FILE
    assert exc.path == str(path)
    assert exc.line is None
    assert exc.reason == (
        f"token file not found: {path} (default ./access_tokens.txt in the working directory; "
        f"working directory: {tmp_path}). {hints(path)}"
    )
    assert str(exc) == f"{path}: {exc.reason}"
    for needed in (str(path), str(tmp_path), "AURORA_TOKENS_FILE", "docker run -v", "Kubernetes"):
        assert needed in str(exc)


def test_missing_file_from_env(tmp_path: Path) -> None:
    exc = read_error(environ={ENV_FILE: "secrets/t.txt"}, cwd=tmp_path)
    path = tmp_path / "secrets" / "t.txt"
    assert exc.path == str(path)
    assert exc.reason == (
        f"token file not found: {path} (from $AURORA_TOKENS_FILE; working directory: "
        f"{tmp_path}). The directory {tmp_path / 'secrets'} does not exist either. {hints(path)}"
    )


def test_missing_given_file_with_white_space_in_its_name(tmp_path: Path) -> None:
    exc = read_error("tokens.txt ", environ={}, cwd=tmp_path)
    path = tmp_path / "tokens.txt "
    assert exc.reason == (
        f"token file not found: {path} (given; working directory: {tmp_path}). Note: the path "
        f"has a part with leading or trailing white space. {hints(path)}"
    )


def test_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / DEFAULT_FILE
    link.symlink_to("/run/secrets/gone/access_tokens.txt")
    exc = read_error(environ={}, cwd=tmp_path)
    assert exc.path == str(link)
    assert exc.reason == (
        f"{link} is a symbolic link to /run/secrets/gone/access_tokens.txt, which does not "
        "exist (default ./access_tokens.txt in the working directory; working directory: "
        f"{tmp_path}). Check that the link's target is mounted: a volume or secret that is "
        "not mounted, or a key that was removed from a Kubernetes secret, leaves such a link "
        f"behind. {hints(link)}"
    )


def test_symlink_loop(tmp_path: Path) -> None:
    link = tmp_path / "loop.txt"
    link.symlink_to("loop.txt")
    exc = read_error(link, environ={}, cwd=tmp_path)
    assert exc.path == str(link)
    assert exc.reason == (
        f"cannot read the token file {link} (given; working directory: {tmp_path}): "
        f"Too many levels of symbolic links. {hints(link)}"
    )


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text(A)
    path = tmp_path / "file" / "t.txt"
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert exc.reason == (
        f"cannot read the token file {path} (given; working directory: {tmp_path}): "
        f"Not a directory. {hints(path)}"
    )


DOCKER = (
    "In Docker this usually means the host file did not exist when the container started, "
    "so Docker created an empty directory in its place: check the host path of -v/--mount "
    "(use an absolute path to an existing file). A Kubernetes secret volume is a directory "
    "too: set AURORA_TOKENS_FILE to the key's file inside it, or mount the key alone with "
    "subPath."
)


def test_directory_empty(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_FILE
    path.mkdir()
    exc = read_error(environ={}, cwd=tmp_path)
    assert exc.path == str(path)
    assert exc.reason == (
        f"{path} is a directory, not a file (default ./access_tokens.txt in the working "
        f"directory; working directory: {tmp_path}). It is empty. {DOCKER} {hints(path)}"
    )


def test_directory_like_a_kubernetes_secret_volume(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.mkdir()
    (path / "..2024_01_01").mkdir()
    (path / "..data").symlink_to("..2024_01_01")
    (path / "tokens").write_text(A)
    (path / "other").write_text(B)
    exc = read_error(environ={ENV_FILE: str(path)}, cwd=tmp_path)
    assert exc.reason == (
        f"{path} is a directory, not a file (from $AURORA_TOKENS_FILE; working directory: "
        f"{tmp_path}). It contains: other, tokens. {DOCKER} {hints(path)}"
    )
    assert A not in str(exc)


def test_directory_with_many_entries(tmp_path: Path) -> None:
    path = tmp_path / "d"
    path.mkdir()
    for name in "gfedcba":
        (path / name).write_text("")
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert f"directory: {tmp_path}). It contains: a, b, c, d, e and 2 more. In Docker" in exc.reason


def test_directory_that_cannot_be_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d"
    path.mkdir()

    def refuse(_path: object) -> list[str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "listdir", refuse)
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert exc.reason == (
        f"{path} is a directory, not a file (given; working directory: {tmp_path}). "
        f"{DOCKER} {hints(path)}"
    )


def test_directory_reported_as_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What Windows does when a directory is opened as a file.
    path = tmp_path / "d"
    path.mkdir()

    def denied(name: str | os.PathLike[str], **_kwargs: object) -> bytes:
        raise PermissionError(13, "Permission denied", os.fspath(name))

    monkeypatch.setattr(tokenfile_io, "read_regular", denied)
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert exc.reason.startswith(f"{path} is a directory, not a file (given; ")


def permission_reason(path: Path, how: str, cwd: Path, uid: int, gid: int, owner: str) -> str:
    return (
        f"permission denied reading {path} ({how}; working directory: {cwd}). This process "
        f"runs as user id {uid}, group id {gid}{owner}. Containers often run as a non-root "
        "user: make the file readable by that user, e.g. chmod 0444 or chown on the host, "
        "--user in Docker, or defaultMode / fsGroup on a Kubernetes secret volume."
    )


@contextlib.contextmanager
def unreadable_token_file() -> Iterator[tuple[Path, int, int]]:
    """A directory holding an unreadable access_tokens.txt, and the uid/gid to read it as.

    chmod does not stop root, so as root the test reads as "nobody" for a moment: it sets
    the effective uid and gid (the real ones stay 0, so they can be set back).
    """
    base = Path(tempfile.mkdtemp(prefix="aurora-perm-"))
    try:
        base.chmod(0o755)
        path = base / DEFAULT_FILE
        path.write_text(A)
        path.chmod(0)
        if os.geteuid() != 0:
            yield base, os.geteuid(), os.getegid()
            return
        if any(not parent.stat().st_mode & stat.S_IXOTH for parent in base.parents):
            pytest.skip(f"running as root and a parent of {base} is closed to other users")
        try:
            os.setegid(NOBODY)
            os.seteuid(NOBODY)
        except PermissionError:
            pytest.skip("running as root without the right to change the effective uid")
        try:
            yield base, NOBODY, NOBODY
        finally:
            os.seteuid(0)
            os.setegid(0)
    finally:
        (base / DEFAULT_FILE).chmod(0o600)
        shutil.rmtree(base)


NOBODY = 65534


def test_permission_denied() -> None:
    with unreadable_token_file() as (base, uid, gid):
        info = (base / DEFAULT_FILE).stat()
        exc = read_error(environ={}, cwd=base)
    path = base / DEFAULT_FILE
    assert exc.path == str(path)
    assert exc.line is None
    owner = f"; the file is owned by user id {info.st_uid}, group id {info.st_gid}, mode ----------"
    how = "default ./access_tokens.txt in the working directory"
    assert exc.reason == permission_reason(path, how, base, uid, gid, owner)
    assert A not in str(exc)


def test_permission_denied_on_the_way_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "locked" / "t.txt"

    def denied(name: str | os.PathLike[str], **_kwargs: object) -> os.stat_result:
        raise PermissionError(13, "Permission denied", os.fspath(name))

    monkeypatch.setattr(tokenfile_io, "read_regular", denied)
    monkeypatch.setattr(Path, "stat", denied)
    exc = read_error(path, environ={}, cwd=tmp_path)
    owner = " (or a directory on the way to it cannot be searched by this user)"
    assert exc.reason == permission_reason(
        path, "given", tmp_path, os.geteuid(), os.getegid(), owner
    )


EMPTY_HINT = (
    "The file is there but holds no token: fill it, or point the library at the file that "
    "holds them: pass its path (TokenPool.from_file(path=...)) or set AURORA_TOKENS_FILE. "
    "In a container, an empty file at the mount point usually "
    "means the secret itself is empty: check its contents on the host or in the secret store."
)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_FILE
    path.write_bytes(b"")
    exc = read_error(environ={}, cwd=tmp_path)
    assert exc.path == str(path)
    assert exc.line is None
    assert exc.reason == (
        "no tokens found: it is empty; put one token per line (default ./access_tokens.txt in "
        f"the working directory; working directory: {tmp_path}). {EMPTY_HINT}"
    )
    assert "docker run -v" not in exc.reason  # the file is mounted: the hint for a missing one


def test_file_with_only_comments(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("# put tokens here\n\n")
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert exc.reason == (
        "no tokens found: all 2 line(s) are blank or comments; put one token per line "
        f"(given; working directory: {tmp_path}). {EMPTY_HINT}"
    )


def test_malformed_line_in_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(f"{A}\r\n{SECRET} # note\r\n".encode())
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert exc.path == str(path)
    assert exc.line == 2
    assert str(exc) == (
        f"{path}:2: white space inside a token: put one token per line; a comment must be on "
        f"its own line, starting with # (at column {len(SECRET) + 1})"
    )
    assert "SECRET" not in str(exc)


def test_invalid_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(f"{A}\n{B}\n".encode() + b"\xff\xfe junk\n")
    exc = read_error(path, environ={}, cwd=tmp_path)
    assert exc.line == 3
    assert exc.reason.startswith("bytes that are not valid UTF-8 (first bad byte at byte 1 ")


# --- read_token_env -----------------------------------------------------------------------------


def test_env_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TOKENS, f"{A},{B}\n{C} {A}")
    parsed = read_token_env()
    assert parsed.source == "$AURORA_TOKENS"
    assert pairs(parsed) == [(A, 1), (B, 2), (C, 3)]
    assert parsed.duplicates == (Duplicate(mask(A), (1, 4)),)


def test_env_tokens_other_var_and_mapping() -> None:
    parsed = read_token_env("MY_TOKENS", environ={"MY_TOKENS": f" {B} ", ENV_TOKENS: A})
    assert parsed.source == "$MY_TOKENS"
    assert pairs(parsed) == [(B, 1)]


USAGE = (
    "set it to the tokens separated by newlines, commas or spaces, or put them in a file, "
    "one per line, and set AURORA_TOKENS_FILE to its path"
)


def test_env_tokens_unset() -> None:
    with pytest.raises(TokenFileError) as info:
        read_token_env(environ={})
    assert info.value.path == "$AURORA_TOKENS"
    assert info.value.line is None
    assert str(info.value) == f"$AURORA_TOKENS: the environment variable is not set: {USAGE}"


@pytest.mark.parametrize("value", ["", " , \n", "# only a comment"])
def test_env_tokens_empty(value: str) -> None:
    with pytest.raises(TokenFileError) as info:
        read_token_env(environ={ENV_TOKENS: value})
    assert info.value.line is None
    assert info.value.reason == (
        "no tokens found: it is empty or holds only separators and comments; separate tokens "
        f"with newlines, commas or spaces. To fix it, {USAGE}"
    )


def test_env_tokens_bad_token() -> None:
    with pytest.raises(TokenFileError) as info:
        read_token_env(environ={ENV_TOKENS: f"{A},{SECRET}\x00"})
    assert info.value.path == "$AURORA_TOKENS"
    assert info.value.line == 2
    assert "SECRET" not in str(info.value)
    assert str(info.value).startswith("$AURORA_TOKENS:2: control character U+0000 (NUL)")
