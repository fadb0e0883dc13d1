"""A large token file is parsed a block of lines at a time (so a parse in a worker thread
never holds the interpreter for long): the result, and every error's line, are those of
a parse in one piece, wherever the blocks end."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_async import TokenFileError
from aurora_async._core import tokenfile

LINES = st.sampled_from(
    [
        "sk-a-0123456789",
        "sk-b-0123456789",
        "  sk-c-0123456789  ",
        "",
        "# a comment",
        "sk-d-0123456789 limit=5/1s,burst=2 max_in_flight=3",
        "sk-a-0123456789",  # a duplicate
    ]
)
ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


def parse(text: str | bytes) -> tokenfile.ParsedTokens | str:
    try:
        return tokenfile.parse_token_text(text, source="f")
    except TokenFileError as exc:
        return str(exc)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(LINES, min_size=0, max_size=30),
    ending=ENDINGS,
    bom=st.booleans(),
    block=st.integers(1, 40),
    raw=st.booleans(),
)
def test_blocks_parse_as_one_piece(
    lines: list[str], ending: str, bom: bool, block: int, raw: bool
) -> None:
    text = ("\ufeff" if bom else "") + ending.join(lines) + (ending if lines else "")
    data: str | bytes = text.encode() if raw else text
    whole = parse(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tokenfile, "_BLOCK", block)
        assert parse(data) == whole


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"sk-a-0123456789\n" * 50 + b"sk-\xff-bad\n" + b"sk-b-0123456789\n", 51),
        (b"sk-a-0123456789\n" * 50 + b"sk-\x00bad\n", 51),
        (b"sk-a-0123456789\n" * 50 + b"sk-e-01 unknown=3\n", 51),
    ],
)
def test_an_error_in_a_later_block_names_its_line(
    monkeypatch: pytest.MonkeyPatch, data: bytes, line: int
) -> None:
    monkeypatch.setattr(tokenfile, "_BLOCK", 64)
    with pytest.raises(TokenFileError) as info:
        tokenfile.parse_token_text(data, source="f")
    assert info.value.line == line
