"""Parse the text of a token file (or a token list) into tokens, purely: no I/O here.

The format: one token per line. Surrounding white space, a UTF-8 byte order mark at the
start and CR line endings (CRLF or a lone CR) are stripped; blank lines and lines whose
first non-space character is ``#`` are skipped. White space, control characters or
invisible formatting characters inside a token are an error that names the source and the
line, never the token. A token that appears again is kept once, where it first appears;
:attr:`ParsedTokens.duplicates` lists every line of it so the caller can warn.

A token may carry annotations: after the token, spaces or tabs, then ``KEY=VALUE`` fields
separated by spaces or tabs::

    sk-live-0123456789abcdef   limit=20/1s,burst=5 limit=5000/1h max_in_flight=4

``limit=`` (repeatable: each one is a window the token must have room in) takes
:func:`~aurora_async._core.limitspec.parse_limit`'s ``RATE/PERIOD[,burst=B]``;
``max_in_flight=`` a positive whole number. A token has no white space, so what follows it
cannot be mistaken for a part of it, and a plain one-token-per-line file reads as before.
A bad annotation is an error naming the source, the line and the column, never the token.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from aurora_async._core.limits import Limit
from aurora_async._core.limitspec import parse_limit
from aurora_async._core.tokens import Token, mask
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

#: The keys an annotation may have, and what their values look like.
LIMIT_KEY = "limit"
IN_FLIGHT_KEY = "max_in_flight"
ANNOTATION_SYNTAX = (
    "the annotations are limit=RATE/PERIOD[,burst=B] (one per window, e.g. "
    "limit=20/1s,burst=5 limit=5000/1h) and max_in_flight=N, after the token and separated "
    "by spaces; comments go on their own line"
)
_KEYS = frozenset({LIMIT_KEY, IN_FLIGHT_KEY})
#: Where annotations start: the first run of spaces or tabs after the token; then fields.
_SEPARATOR = re.compile(r"[ \t]+")
_FIELD = re.compile(r"[^ \t]+")
#: What an annotation's key looks like (a field such as ``dGVzdA==``, a piece of a base64
#: token after a stray space, does not).
_KEY = re.compile(r"([a-z_]+)=")


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One token read from a source: its secret ``value``, the line it first appears on,
    and what that line annotates (``limits``, empty when none; ``max_in_flight``)."""

    value: str = field(repr=False)
    line: int
    limits: tuple[Limit, ...] = ()
    max_in_flight: int | None = None

    @property
    def name(self) -> str:
        """The masked display name of the token."""
        return mask(self.value)

    @property
    def annotated(self) -> bool:
        """Whether the line gave the token limits or a cap of its own."""
        return bool(self.limits) or self.max_in_flight is not None

    def token(self) -> Token:
        """The entry as a :class:`Token` (limits ``None`` when the line gave none)."""
        return Token(self.value, self.limits or None, max_in_flight=self.max_in_flight)

    def __repr__(self) -> str:
        extra = f", limits={list(self.limits)!r}" if self.limits else ""
        if self.max_in_flight is not None:
            extra += f", max_in_flight={self.max_in_flight}"
        return f"TokenEntry(name={self.name!r}, line={self.line}{extra})"


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A token that appears more than once: its masked ``name`` and every line it is on.

    The first line is where the token was kept; the others were dropped.
    """

    name: str
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ParsedTokens:
    """The tokens of one source, in order, each once.

    Kept compact for files of a million tokens: a plain token is its secret (``str``),
    an annotated one a :class:`Token`; :attr:`entries` makes the :class:`TokenEntry`
    records on demand."""

    source: str
    #: The tokens, in order, each once, as a pool takes them: the secret itself, or a
    #: :class:`Token` with the limits (and cap) where the line annotates them.
    values: tuple[str | Token, ...]
    lines: tuple[int, ...]  #: the line (or list position) of each
    duplicates: tuple[Duplicate, ...]
    skipped: int
    #: SHA-256 of the raw bytes parsed (UTF-8 for text): tells whether a file changed.
    digest: str = field(default="", compare=False, repr=False)

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        """The tokens with their lines and annotations."""
        return tuple(
            TokenEntry(item, line)
            if isinstance(item, str)
            else TokenEntry(item.value, line, item.limits or (), item.max_in_flight)
            for item, line in zip(self.values, self.lines, strict=True)
        )

    @property
    def tokens(self) -> tuple[Token, ...]:
        """The tokens, in order, each once, as :class:`Token` objects."""
        return tuple(Token(item) if isinstance(item, str) else item for item in self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:  # the secrets never show: the entries' masked names do
        return (
            f"ParsedTokens(source={self.source!r}, entries={list(self.entries)!r}, "
            f"duplicates={self.duplicates!r}, skipped={self.skipped})"
        )


def parse_token_text(text: str | bytes, *, source: str) -> ParsedTokens:
    """Parse the text of a token file: one token per line.

    ``text`` may be the raw bytes of the file (decoded as UTF-8 here) or already a str.
    ``source`` names the file in error messages. Raises :class:`TokenFileError` with the
    line number for a malformed line or bytes that are not UTF-8, and with ``line=None``
    when there is no token at all. The text is taken a block of lines at a time (no
    step holds a worker thread's lock on the interpreter for long: a parse in a worker
    thread leaves the event loop running).
    """
    raw_bytes = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(raw_bytes).hexdigest()
    first_line: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    values: list[str | Token] = []
    lines: list[int] = []
    skipped = number = 0
    for raw in _text_lines(text, source):
        number += 1
        token = raw.strip()
        if not token or token[0] == "#":
            skipped += 1
            continue
        item: str | Token = token
        # Fast path: printable text without a space is fine; otherwise look closer.
        if not token.isprintable() or " " in token:
            offset = len(raw) - len(raw.lstrip())  # columns before the token
            entry = _annotated(token, offset, number, source)
            if entry is not None:
                token = entry.value
                item = entry.token() if entry.annotated else token
        seen = first_line.get(token)
        if seen is None:
            first_line[token] = number
            values.append(item)
            lines.append(number)
        else:
            repeats.setdefault(token, [seen]).append(number)
    if not values:
        why = f"all {number} line(s) are blank or comments" if number else "it is empty"
        raise TokenFileError(
            f"no tokens found: {why}; put one token per line", path=source, line=None
        )
    return ParsedTokens(source, tuple(values), tuple(lines), _duplicates(repeats), skipped, digest)


#: Characters of text split into lines at a time.
_BLOCK = 1 << 18


def _text_lines(text: str | bytes, source: str) -> Iterator[str]:
    """The lines of a token file's text (bytes decoded as UTF-8, a byte order mark at
    the start dropped), a block at a time: each block ends at a line break."""
    start = 0
    while start < len(text):
        if isinstance(text, bytes):
            end = text.find(b"\n", start + _BLOCK)
            end = len(text) if end < 0 else end + 1
            try:
                block = text[start:end].decode("utf-8")
            except UnicodeDecodeError:
                _decode(text, source)  # raises, naming the line
                raise  # pragma: no cover - _decode raised for these bytes
        else:
            end = text.find("\n", start + _BLOCK)
            end = len(text) if end < 0 else end + 1
            block = text[start:end]
        if start == 0 and block.startswith(BOM):
            block = block[1:]
        yield from _split_lines(block)
        start = end


def _annotated(line: str, offset: int, number: int, source: str) -> TokenEntry | None:
    """The entry of a stripped ``line`` that is not plain printable text without a space:
    a token with annotations (returned), or a token that is fine after all (``None``).

    Raises :class:`TokenFileError` for a bad character in the token or a bad annotation;
    ``offset`` is the number of columns before the token on the raw line.
    """
    split = _SEPARATOR.search(line)
    if split is not None:
        token, rest = line[: split.start()], line[split.end() :]
        key = _KEY.match(rest)
        if key is not None and _problem(token) is None:
            column = offset + split.end() + 1
            if key.group(1) not in _KEYS:
                why = f"an unknown annotation after the token: {ANNOTATION_SYNTAX}"
                raise _field_error(why, column, source, number)
            limits, in_flight = _annotations(rest, column, source, number)
            return TokenEntry(token, number, limits, in_flight)
    problem = _problem(line)
    if problem is None:
        return None
    index, char = problem
    message = _describe(char, line[index:])
    raise TokenFileError(f"{message} (at column {offset + index + 1})", path=source, line=number)


def _annotations(
    text: str, column: int, source: str, number: int
) -> tuple[tuple[Limit, ...], int | None]:
    """The limits and the cap set by ``text``, the annotations of a line, starting at
    ``column``. Never echoes a field whose key is unknown: it may be a piece of a token
    with white space inside."""
    limits: list[Limit] = []
    in_flight: int | None = None
    for found in _FIELD.finditer(text):
        key, sep, value = found.group().partition("=")
        at = column + found.start()
        if not sep or key not in _KEYS:
            raise _field_error(f"not an annotation: {ANNOTATION_SYNTAX}", at, source, number)
        if key == LIMIT_KEY:
            try:
                limits.append(parse_limit(value))
            except (TypeError, ValueError) as exc:
                why = f"bad {LIMIT_KEY}= annotation: {exc}"
                raise _field_error(why, at, source, number) from None
        elif in_flight is not None:
            why = f"{IN_FLIGHT_KEY}= is given twice: give it once"
            raise _field_error(why, at, source, number)
        elif value.isascii() and value.isdigit() and int(value) > 0:
            in_flight = int(value)
        else:
            why = f"bad {IN_FLIGHT_KEY}= annotation {value[:20]!r}: write a whole number > 0"
            raise _field_error(why, at, source, number)
    return tuple(limits), in_flight


def _field_error(why: str, column: int, source: str, number: int) -> TokenFileError:
    return TokenFileError(f"{why} (at column {column})", path=source, line=number)


def parse_token_list(text: str, *, source: str) -> ParsedTokens:
    """Parse a list of tokens, as given in an environment variable.

    Tokens are separated by newlines, commas or white space. A line whose first non-space
    character is ``#`` is a comment, as in a file. The ``line`` of an entry (and of an
    error) is the 1-based position of the token in the list. Otherwise the rules of
    :func:`parse_token_text` apply, except that a list has no annotations: an item
    that looks like one (``limit=5/1s``) is an error, not a token.
    """
    if text.startswith(BOM):
        text = text[1:]
    first_line: dict[str, int] = {}
    repeats: dict[str, list[int]] = {}
    values: list[str | Token] = []
    lines: list[int] = []
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
            key = _KEY.match(token)
            if key is not None and key.group(1) in _KEYS:
                raise TokenFileError(
                    f"a token-file annotation ({key.group()}...) in the list (token number "
                    f"{position}): the list holds tokens only; put tokens with limits of "
                    "their own in a token file (TokenPool.from_file)",
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
                values.append(token)
                lines.append(position)
            else:
                repeats.setdefault(token, [seen]).append(position)
    if not values:
        raise TokenFileError(
            "no tokens found: it is empty or holds only separators and comments; "
            "separate tokens with newlines, commas or spaces",
            path=source,
            line=None,
        )
    return ParsedTokens(source, tuple(values), tuple(lines), _duplicates(repeats), skipped)


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
