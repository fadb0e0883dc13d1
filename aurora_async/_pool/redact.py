"""``Redactor``: every text the pool emits passes here, so no token's secret leaves it,
whole or in part (a truncated key, a server echoing part of it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import unquote

__all__ = ["MIN_PART", "Redactor"]

#: A run of this many characters or more of a known secret is masked wherever it occurs
#: in a text (a masked name shows at most 8 characters of a secret, never in one run).
MIN_PART = 8
#: Parts are found through the secrets' 4-character pieces at every 4th position (any run
#: of 7 or more characters holds one whole), then grown both ways along the secret.
_GRAM = 4
#: A piece shared by more secrets than this (a common prefix such as ``sk-live-``) says
#: nothing of which secret it is and is not looked up: a run is still found through any
#: other whole piece in it, so what is left as it is are runs holding no whole piece but
#: shared ones (with ``sk-live-`` on 17+ tokens: ``sk-live-`` and up to 3 more characters).
_SHARED = 16

#: (secret, name) by secret; the secret lengths, longest first; the parts index.
_Table = tuple[dict[str, str], list[int], "_Parts"]


class _Parts:
    """The index of the secrets' pieces: each 4-character piece at a position that is a
    multiple of 4 (and the last one), to the (secret number, position) pairs holding it.
    About one dictionary entry per 4 characters of secret, built on first use."""

    __slots__ = ("index", "names", "secrets")

    def __init__(self, known: dict[str, str]) -> None:
        self.secrets = [s for s in known if len(s) >= MIN_PART]
        self.names = [known[s] for s in self.secrets]
        # A holder is packed as one int, number << 16 | position (a position past 65535,
        # in secrets that long, is not indexed: earlier pieces still find a run there).
        index: dict[str, list[int]] = {}
        for number, secret in enumerate(self.secrets):
            last = min(len(secret) - _GRAM, 0xFFFF)
            for at in sorted({*range(0, last + 1, _GRAM), last}):
                holders = index.setdefault(secret[at : at + _GRAM], [])
                if len(holders) <= _SHARED:
                    holders.append(number << 16 | at)
        self.index: dict[str, int | tuple[int, ...]] = {
            gram: h[0] if len(h) == 1 else tuple(h)
            for gram, h in index.items()
            if len(h) <= _SHARED
        }

    def mask(self, text: str) -> str:
        """``text`` with each run of ``MIN_PART`` or more characters of a secret replaced
        by that secret's name (overlapping runs as one)."""
        index = self.index
        if not index or len(text) < MIN_PART:
            return text
        runs: list[tuple[int, int, int]] = []  # (start, end, secret number)
        for i in range(len(text) - _GRAM + 1):
            holders = index.get(text[i : i + _GRAM])
            if holders is None:
                continue
            for packed in (holders,) if isinstance(holders, int) else holders:
                number = packed >> 16
                run = _grown(text, i, self.secrets[number], packed & 0xFFFF)
                if run[1] - run[0] >= MIN_PART:
                    runs.append((*run, number))
        if not runs:
            return text
        runs.sort()
        out: list[str] = []
        done = 0
        for start, end, number in runs:
            if end <= done:
                continue
            if start >= done:
                out += (text[done:start], self.names[number])
            done = end
        out.append(text[done:])
        return "".join(out)


def _grown(text: str, i: int, secret: str, at: int) -> tuple[int, int]:
    """The run of ``text`` around ``text[i:i+4] == secret[at:at+4]`` that equals a run of
    ``secret``: (start, end) in ``text``."""
    start, back = i, at
    while start > 0 and back > 0 and text[start - 1] == secret[back - 1]:
        start -= 1
        back -= 1
    end, ahead = i + _GRAM, at + _GRAM
    while end < len(text) and ahead < len(secret) and text[end] == secret[ahead]:
        end += 1
        ahead += 1
    return start, end


class Redactor:
    """Replaces any known token secret inside a text by its masked name, and any run of
    ``MIN_PART`` (8) or more characters of one (a truncated key, say) too.

    ``known`` yields ``(secret, name)`` pairs: the pool's tokens and those a reload just
    dropped. The table is built on first use and rebuilt after :meth:`forget` (the pool
    calls it whenever its token set changes)."""

    __slots__ = ("_known", "_table")

    def __init__(self, known: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self._known = known
        self._table: _Table | None = None

    def forget(self) -> None:
        """The token set changed: rebuild the table on next use."""
        self._table = None

    def __call__(self, text: str, *also: tuple[str, str]) -> str:
        """``text`` with every secret (also percent-encoded, as in an error quoting a
        request URL) replaced by its masked name: the pool's tokens and ``also``
        (secret, name) pairs. Longest secrets first, so one that is the prefix of another
        cannot leave the other's tail behind; then every run of 8 or more characters of
        a secret. Costs a few dictionary lookups per position, not a scan of every
        token."""
        table = self._table
        if table is None:
            known = dict(self._known())
            table = self._table = _table(known)
        tables = [table]
        if also:
            tables.insert(0, _table(dict(also)))
        for known, lengths, parts in tables:
            text = parts.mask(_mask(text, known, lengths))
            if "%" in text:
                plain = unquote(text)
                decoded = parts.mask(_mask(plain, known, lengths))
                if decoded != plain:
                    text = decoded
        return text


def _table(known: dict[str, str]) -> _Table:
    return known, sorted({len(v) for v in known}, reverse=True), _Parts(known)


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
