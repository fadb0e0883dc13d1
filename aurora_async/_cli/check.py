"""``aurora-async check``: is this token file usable, and if not, which lines are wrong.

The verdict is the library's own: :func:`~aurora_async._io.tokenfile.read_token_file`
reads the file exactly as ``TokenPool.from_file`` would (a regular file only, up to the
size limit; annotations such as ``limit=20/1s`` checked). The parser stops at the first
bad line, so when there is one, every line is then parsed on its own to list them all.
Nothing printed ever carries a token: only masked names, line numbers and reasons.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .._core.limits import Limit
from .._core.tokenfile import TokenEntry, parse_token_text
from .._core.tokens import mask
from .._errors import TokenFileError
from .._io.tokenfile import read_token_bytes, read_token_file, resolve_token_path

__all__ = ["CheckReport", "check_token_file", "render_json", "render_text"]

#: What the parser says of a file that looks like UTF-16 (with or without its BOM).
_UTF16_HINTS = ("the file is UTF-16", "is the file UTF-16?")

EXIT_OK = 0
EXIT_UNUSABLE = 1


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class DuplicateToken:
    name: str  #: masked
    lines: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TokenLine:
    """A token's masked name and what its line annotates (nothing: the pool's default)."""

    name: str
    limits: tuple[Limit, ...] = ()
    max_in_flight: int | None = None

    @classmethod
    def of(cls, entry: TokenEntry) -> TokenLine:
        return cls(entry.name, entry.limits, entry.max_in_flight)

    @property
    def annotated(self) -> bool:
        return bool(self.limits) or self.max_in_flight is not None

    def describe(self) -> str:
        """``limits 20/1s (burst 5), 5000/3600s; max_in_flight 4``, or the default."""
        parts = []
        if self.limits:
            parts.append("limits " + ", ".join(str(limit) for limit in self.limits))
        if self.max_in_flight is not None:
            parts.append(f"max_in_flight {self.max_in_flight}")
        return "; ".join(parts) if parts else "the pool's default limits"


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What ``check`` found. ``error`` is a problem with the file as a whole (missing,
    a directory, unreadable, empty); ``bad_lines`` are lines that are not tokens."""

    path: str | None
    how: str  #: how the path was chosen
    tokens: int = 0
    skipped: int = 0  #: blank lines and comments
    duplicates: tuple[DuplicateToken, ...] = ()
    bad_lines: tuple[BadLine, ...] = ()
    error: str | None = None
    names: tuple[str, ...] = field(default=())  #: masked names, in file order
    lines: tuple[TokenLine, ...] = field(default=())  #: each token's annotations, in order

    @property
    def annotated(self) -> int:
        """How many tokens have limits (or a cap) of their own."""
        return sum(1 for line in self.lines if line.annotated)

    @property
    def usable(self) -> bool:
        return self.error is None and not self.bad_lines and self.tokens > 0

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.usable else EXIT_UNUSABLE


def check_token_file(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> CheckReport:
    """Check the token file chosen as ``TokenPool.from_file(path)`` would choose it.

    Raises ``ValueError`` for an empty ``path``: a usage error, not a file to check."""
    if path is not None and not os.fspath(path):
        raise ValueError("FILE is an empty string: give the path of the token file")
    try:
        found, how = resolve_token_path(path, environ=environ, cwd=cwd)
    except TokenFileError as exc:  # e.g. $AURORA_TOKENS_FILE set but empty
        return CheckReport(path=exc.path, how="from the environment", error=exc.reason)
    try:
        parsed = read_token_file(path, environ=environ, cwd=cwd)
    except TokenFileError as exc:
        if exc.line is None:
            return CheckReport(path=str(found), how=how, error=exc.reason)
        return _every_bad_line(found, how, exc, environ)
    return CheckReport(
        path=str(found),
        how=how,
        tokens=len(parsed.entries),
        skipped=parsed.skipped,
        duplicates=tuple(DuplicateToken(d.name, d.lines) for d in parsed.duplicates),
        names=tuple(entry.name for entry in parsed.entries),
        lines=tuple(TokenLine.of(entry) for entry in parsed.entries),
    )


def _every_bad_line(
    found: Path, how: str, first: TokenFileError, environ: Mapping[str, str] | None
) -> CheckReport:
    """Parse each line on its own, so every bad line is reported, not just the first."""
    try:
        data = read_token_bytes(found, how, environ=environ)
    except TokenFileError:  # pragma: no cover  # it was just read; a race with a change
        data = b""
    if any(hint in first.reason for hint in _UTF16_HINTS):  # no lines: one verdict for all
        lines: list[bytes] = []
    else:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
    bad: dict[int, str] = {first.line: first.reason} if first.line is not None else {}
    seen: dict[str, list[int]] = {}
    first_entry: dict[str, TokenEntry] = {}
    skipped = 0
    for number, raw in enumerate(lines, 1):
        # A line after the first is parsed behind a blank line, so a byte order mark is
        # stripped only where the file parser strips it: at the very start.
        text = raw if number == 1 else b"\n" + raw
        try:
            parsed = parse_token_text(text, source=str(found))
        except TokenFileError as exc:
            if exc.line is None:
                skipped += 1  # blank or a comment
            else:
                bad.setdefault(number, exc.reason)
            continue
        entry = parsed.entries[0]
        seen.setdefault(entry.value, []).append(number)
        first_entry.setdefault(entry.value, entry)
    duplicates = tuple(
        DuplicateToken(mask(value), tuple(numbers))
        for value, numbers in seen.items()
        if len(numbers) > 1
    )
    return CheckReport(
        path=str(found),
        how=how,
        tokens=len(seen),
        skipped=skipped,
        duplicates=duplicates,
        bad_lines=tuple(BadLine(line, reason) for line, reason in sorted(bad.items())),
        names=tuple(mask(value) for value in seen),
        lines=tuple(TokenLine.of(entry) for entry in first_entry.values()),
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def render_text(report: CheckReport, *, list_names: bool = False) -> str:
    """The report for a person (or a container's health-check log)."""
    lines = [f"token file: {report.path or '(none)'} ({report.how})"]
    if report.error is not None:
        lines += [f"error: {report.error}", "result: NOT usable"]
        return "\n".join(lines)
    notes = []
    if report.annotated:
        notes.append(f"{report.annotated} with limits of their own")
    if report.skipped:
        notes.append(f"{_plural(report.skipped, 'line')} blank or comments")
    valid = " valid" if report.bad_lines else ""
    extra = f" ({'; '.join(notes)})" if notes else ""
    lines.append(f"tokens: {report.tokens}{valid}{extra}")
    if list_names:
        if report.annotated:
            width = max(len(line.name) for line in report.lines)
            lines += [f"  {line.name:<{width}}  {line.describe()}" for line in report.lines]
        else:
            lines += [f"  {name}" for name in report.names]
    if report.duplicates:
        lines.append(
            f"duplicates: {_plural(len(report.duplicates), 'token')} listed more than once, "
            "each kept once (the first line):"
        )
        for dup in report.duplicates:
            where = ", ".join(str(line) for line in dup.lines)
            lines.append(f"  {dup.name} on lines {where}")
    if report.bad_lines:
        lines.append(f"bad lines: {len(report.bad_lines)}")
        lines += [f"  line {bad.line}: {bad.reason}" for bad in report.bad_lines]
    if report.usable:
        warn = " (with warnings)" if report.duplicates else ""
        lines.append(f"result: usable{warn}: {_plural(report.tokens, 'token')}")
    elif report.bad_lines:
        lines.append(
            f"result: NOT usable: fix {_plural(len(report.bad_lines), 'line')} "
            "(the pool refuses a file with a bad line)"
        )
    else:  # pragma: no cover  # no error, no bad line, no token: read_token_file raises
        lines.append("result: NOT usable: no tokens")
    return "\n".join(lines)


def render_json(report: CheckReport) -> str:
    """The report for tooling: one JSON object, no secret in it."""
    payload = {
        "path": report.path,
        "how": report.how,
        "usable": report.usable,
        "tokens": report.tokens,
        "names": list(report.names),
        "token_limits": [
            {
                "name": line.name,
                "limits": [
                    {"rate": limit.rate, "per": limit.per, "burst": limit.burst}
                    for limit in line.limits
                ],
                "max_in_flight": line.max_in_flight,
            }
            for line in report.lines
        ],
        "skipped_lines": report.skipped,
        "duplicates": [{"name": d.name, "lines": list(d.lines)} for d in report.duplicates],
        "bad_lines": [{"line": b.line, "reason": b.reason} for b in report.bad_lines],
        "error": report.error,
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)
