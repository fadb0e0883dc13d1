"""Parse the text of a token file (or a token list) into tokens, purely: no I/O here.

The format: one token per line. Surrounding white space, a UTF-8 byte order mark at the
start and CR line endings (CRLF or a lone CR) are stripped; blank lines and lines whose
first non-space character is ``#`` are skipped. White space, control characters or
invisible formatting characters inside a token are an error that names the source and the
line, never the token. A token that appears again is kept once, where it first appears;
:attr:`ParsedTokens.duplicates` lists every line of it so the caller can warn.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field

from aurora_async._core.tokens import mask
from aurora_async._errors import TokenFileError

__all__ = [
    "Duplicate",
    "ParsedTokens",
    "TokenEntry",
    "parse_token_list",
    "parse_token_text",
]

BOM = "\ufeff"

# Names for characters that unicodedata.name() does not know (controls) or names unhelpfully.
_NAMES = {
    "\x00": "NUL",
    "\x07": "BELL",
    "\x08": "BACKSPACE",
    "\t": "TAB",
    "\x0b": "VERTICAL TAB",
    "\x0c": "FORM FEED",
    "\x1b": "ESCAPE",
    "\x7f": "DEL",
    "\x85": "NEXT LINE",
    BOM: "BYTE ORDER MARK",
}
_WHITE_SPACE = frozenset({"Zs", "Zl", "Zp"})
# Not allowed inside a token: white space, controls, invisible formatting, lone surrogates.
_BAD_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs"})
_UTF8_ADVICE = "save the file as UTF-8 (not UTF-16, Latin-1 or a word processor format)"


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One token read from a source: its secret ``value`` and the line it first appears on."""

    value: str = field(repr=False)
    line: int

    @property
    def name(self) -> str:
        """The masked display name of the token."""
        return mask(self.value)

    def __repr__(self) -> str:
        return f"TokenEntry(name={self.name!r}, line={self.line})"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A token that appears more than once: its masked ``name`` and every line it is on.

    The first line is where the token was kept; the others were dropped.
    """

    name: str
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ParsedTokens:
    """The tokens of one source, in order, each once."""

    source: str
    entries: tuple[TokenEntry, ...]
    duplicates: tuple[Duplicate, ...]
    skipped: int
    #: SHA-256 of the raw bytes parsed (UTF-8 for text): tells whether a file changed.
    digest: str = field(default="", compare=False, repr=False)

    @property
    def values(self) -> tuple[str, ...]:
        """The secrets, in order, each once."""
        return tuple(entry.value for entry in self.entries)


def parse_token_text(text: str | bytes, *, source: str) -> ParsedTokens:
    """Parse the text of a token file: one token per line.

    ``text`` may be the raw bytes of the file (decoded as UTF-8 here) or already a str.
    ``source`` names the file in error messages. Raises :class:`TokenFileError` with the
    line number for a malformed line or bytes that are not UTF-8, and with ``line=None``
    when there is no token at all.
    """
    raw_bytes = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(raw_bytes).hexdigest()
    if isinstance(text, bytes):
        text = _decode(text, source)
    if text.startswith(BOM):
        text = text[1:]
    lines = _split_lines(text)
    first_line: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    entries: list[TokenEntry] = []
    skipped = 0
    for number, raw in enumerate(lines, 1):
        token = raw.strip()
        if not token or token[0] == "#":
            skipped += 1
            continue
        # Fast path: printable text without a space is fine; otherwise look closer.
        if not token.isprintable() or " " in token:
            problem = _problem(token)
            if problem is not None:
                index, char = problem
                column = len(raw) - len(raw.lstrip()) + index + 1
                message = _describe(char, token[index:])
                raise TokenFileError(f"{message} (at column {column})", path=source, line=number)
        seen = first_line.get(token)
        if seen is None:
            first_line[token] = number
            entries.append(TokenEntry(token, number))
        else:
            repeats.setdefault(token, [seen]).append(number)
    if not entries:
        why = f"all {len(lines)} line(s) are blank or comments" if lines else "it is empty"
        raise TokenFileError(
            f"no tokens found: {why}; put one token per line", path=source, line=None
        )
    return ParsedTokens(source, tuple(entries), _duplicates(repeats), skipped, digest)


def parse_token_list(text: str, *, source: str) -> ParsedTokens:
    """Parse a list of tokens, as given in an environment variable.

    Tokens are separated by newlines, commas or white space. A line whose first non-space
    character is ``#`` is a comment, as in a file. The ``line`` of an entry (and of an
    error) is the 1-based position of the token in the list. Otherwise the rules of
    :func:`parse_token_text` apply.
    """
    if text.startswith(BOM):
        text = text[1:]
    first_line: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    entries: list[TokenEntry] = []
    skipped = 0
    position = 0
    for raw in _split_lines(text):
        stripped = raw.strip()
        if not stripped or stripped[0] == "#":
            skipped += 1
            continue
        for token in stripped.replace(",", " ").split():
            position += 1
            if token[0] == "#":
                raise TokenFileError(
                    f"a '#' comment after a token (token number {position} in the list): "
                    "comments must be on their own line",
                    path=source,
                    line=position,
                )
            if not token.isprintable():
                problem = _problem(token)
                if problem is not None:
                    index, char = problem
                    message = _describe(char, token[index:], in_file=False)
                    raise TokenFileError(
                        f"{message} (token number {position} in the list)",
                        path=source,
                        line=position,
                    )
            seen = first_line.get(token)
            if seen is None:
                first_line[token] = position
                entries.append(TokenEntry(token, position))
            else:
                repeats.setdefault(token, [seen]).append(position)
    if not entries:
        raise TokenFileError(
            "no tokens found: it is empty or holds only separators and comments; "
            "separate tokens with newlines, commas or spaces",
            path=source,
            line=None,
        )
    return ParsedTokens(source, tuple(entries), _duplicates(repeats), skipped)


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise TokenFileError(
                f"the file is UTF-16 (it starts with a UTF-16 byte order mark); {_UTF8_ADVICE}",
                path=source,
                line=1,
            ) from None
        before = data[: exc.start]
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1
        line_start = max(before.rfind(b"\n"), before.rfind(b"\r")) + 1
        raise TokenFileError(
            f"bytes that are not valid UTF-8 (first bad byte at byte {exc.start - line_start + 1} "
            f"of the line); {_UTF8_ADVICE}",
            path=source,
            line=line,
        ) from None


def _split_lines(text: str) -> list[str]:
    """Split at LF, CRLF and lone CR (only those: other separators are errors in a token)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the text ends with a line break, or is empty
    return lines


def _problem(token: str) -> tuple[int, str] | None:
    """The first character not allowed inside a token, with its index, or None."""
    for index, char in enumerate(token):
        if char.isspace() or unicodedata.category(char) in _BAD_CATEGORIES:
            return index, char
    return None


def _describe(char: str, rest: str, *, in_file: bool = True) -> str:
    """What is wrong with ``char`` and what to do; ``rest`` starts at ``char``.

    ``in_file``: the advice is about a file's encoding (else about a variable's value).

    Never includes the token: only the offending character's code point and name.
    """
    code = f"U+{ord(char):04X}"
    name = _NAMES.get(char) or unicodedata.name(char, "")
    label = f"{code} ({name})" if name else code
    category = unicodedata.category(char)
    if char.isspace() or category in _WHITE_SPACE:
        what = "white space" if char == " " else f"white space {label}"
        advice = "put one token per line"
        if rest.lstrip().startswith("#"):
            advice += "; a comment must be on its own line, starting with #"
        else:
            advice += " (comments go on their own line, starting with #)"
        return f"{what} inside a token: {advice}"
    if category == "Cc":
        if char == "\x00" and in_file:
            return f"control character {label} inside a token: is the file UTF-16? {_UTF8_ADVICE}"
        return f"control character {label} inside a token: remove it"
    if category == "Cf":
        return (
            f"invisible character {label} inside a token: remove it (it often comes along "
            "when a token is copied from a web page or a chat)"
        )
    # Cs: a lone surrogate, which is how Python carries bytes that were not valid UTF-8.
    advice = _UTF8_ADVICE if in_file else "set the value as UTF-8 text"
    return f"a character that is not valid UTF-8 ({code}) inside a token; {advice}"


def _duplicates(repeats: dict[str, list[int]]) -> tuple[Duplicate, ...]:
    found = sorted(repeats.items(), key=lambda item: item[1][0])
    return tuple(Duplicate(mask(value), tuple(lines)) for value, lines in found)
