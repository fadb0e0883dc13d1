"""``Redactor``: every text the pool emits passes here, so no token's secret leaves it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import unquote


class Redactor:
    """Replaces any known token secret inside a text by its masked name.

    ``known`` yields ``(secret, name)`` pairs: the pool's tokens and those a reload just
    dropped. The table is built on first use and rebuilt after :meth:`forget` (the pool
    calls it whenever its token set changes)."""

    __slots__ = ("_known", "_table")

    def __init__(self, known: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self._known = known
        self._table: tuple[dict[str, str], list[int]] | None = None

    def forget(self) -> None:
        """The token set changed: rebuild the table on next use."""
        self._table = None

    def __call__(self, text: str, *also: tuple[str, str]) -> str:
        """``text`` with every secret (also percent-encoded, as in an error quoting a
        request URL) replaced by its masked name: the pool's tokens and ``also``
        (secret, name) pairs. Longest secrets first, so one that is the prefix of another
        cannot leave the other's tail behind. Costs a dictionary lookup per position and
        distinct secret length, not a scan of every token."""
        table = self._table
        if table is None:
            known = dict(self._known())
            table = self._table = (known, sorted({len(v) for v in known}, reverse=True))
        tables = [table]
        if also:
            extra = dict(also)
            tables.insert(0, (extra, sorted({len(v) for v in extra}, reverse=True)))
        for known, lengths in tables:
            text = _mask(text, known, lengths)
            if "%" in text:
                decoded = _mask(unquote(text), known, lengths)
                if decoded != unquote(text):
                    text = decoded
        return text


def _mask(text: str, known: dict[str, str], lengths: list[int]) -> str:
    for length in lengths:
        if length > len(text):
            continue
        out: list[str] = []
        start = i = 0
        while i <= len(text) - length:
            name = known.get(text[i : i + length])
            if name is None:
                i += 1
                continue
            out += (text[start:i], name)
            i = start = i + length
        if out:
            out.append(text[start:])
            text = "".join(out)
    return text
