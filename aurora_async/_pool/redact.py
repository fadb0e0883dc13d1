"""``Redactor``: every text the pool emits passes here, so no token's secret leaves it,
whole or in part (a truncated key, a server echoing part of it).

Any run of :data:`MIN_PART` (8) or more characters of a known secret is replaced by that
secret's masked name, exactly: the runs are found through a :class:`PartIndex` (see
``parts.py``), which misses none, also among a million secrets sharing a prefix. The
index is built from the secrets as they join the pool: a few at a time on the spot, a
large set (a pool made from a big file) in a thread of its own, and a reload's new
secrets in the reload's worker thread, before any of them joins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import unquote

from .._core.tokens import mask
from .parts import MIN_PART, Building, PartIndex, Runs

__all__ = ["IN_THREAD", "MIN_PART", "Redactor"]

#: Secrets added at once from which the index is built in a thread of its own.
IN_THREAD = 20_000
#: Indexes kept side by side before a reload merges them into one.
MAX_LAYERS = 6


class Redactor:
    """Replaces any known token secret inside a text by its masked name, and any run of
    ``MIN_PART`` (8) or more characters of one (a truncated key, say) too.

    ``known()`` lists every secret the pool knows (its tokens and the states it still
    remembers); ``name_of(secret)`` is the masked name the pool shows for it (``None``:
    forgotten, shown as :func:`~aurora_async._core.tokens.mask` of it). Secrets joining
    the pool are handed to :meth:`add` (or, indexed already, :meth:`add_index`)."""

    __slots__ = ("_building", "_known", "_layers", "_name_of", "_pending", "_short")

    def __init__(
        self, known: Callable[[], list[str]], name_of: Callable[[str], str | None]
    ) -> None:
        self._known = known
        self._name_of = name_of
        self._layers: list[PartIndex] = []
        self._pending: list[str] = []  # added, not indexed yet
        self._building: list[Building] = []  # indexes under way in their own threads
        self._short: set[int] = set()  # lengths of the secrets under MIN_PART

    # -- what is known ---------------------------------------------------------------

    def forget(self) -> None:
        """The token set or a name changed: nothing to do (names are read when used)."""

    def add(self, secrets: Iterable[str]) -> None:
        """Index ``secrets`` (joining the pool) before the next text is masked; a large
        set is indexed in a thread of its own from now on."""
        fresh = list(secrets)
        self._note_short(fresh)
        self._pending += fresh
        if len(self._pending) >= IN_THREAD:
            self._building.append(Building(self._pending))
            self._pending = []

    def add_index(self, index: PartIndex, *, replaces: tuple[PartIndex, ...] = ()) -> None:
        """Use ``index``, built elsewhere (a reload's worker thread), in place of the
        indexes ``replaces`` (those whose secrets it was built from, a merge)."""
        self._short |= index.short
        self._layers = [layer for layer in self._layers if layer not in replaces]
        self._layers.append(index)

    def indexes(self) -> tuple[PartIndex, ...]:
        """The indexes in use."""
        return tuple(self._layers)

    def layers(self) -> int:
        """How many indexes are in use (a reload merges them past :data:`MAX_LAYERS`)."""
        return len(self._layers)

    def settled(self) -> bool:
        """Whether every secret added is indexed (none waits, no thread is building)."""
        return not (self._pending or self._building)

    def known(self) -> list[str]:
        """Every secret the pool knows now (a copy, for a worker thread)."""
        return self._known()

    def _note_short(self, secrets: list[str]) -> None:
        for secret in secrets:
            if len(secret) < MIN_PART:
                self._short.add(len(secret))

    def ready(self) -> None:
        """Index every secret added so far (waiting for any thread building one). Small
        indexes of secrets added a few at a time are merged past :data:`MAX_LAYERS`."""
        while self._building:
            self._layers.append(self._building.pop(0).result())
        if self._pending:
            self._layers.append(PartIndex(self._pending))
            self._pending = []
            small = [layer for layer in self._layers if len(layer) < IN_THREAD]
            if len(self._layers) > MAX_LAYERS and len(small) > 1:
                merged = PartIndex([s for layer in small for s in layer.secrets])
                self._layers = [layer for layer in self._layers if len(layer) >= IN_THREAD]
                self._layers.append(merged)

    # -- masking -----------------------------------------------------------------------

    def __call__(self, text: str, *also: tuple[str, str]) -> str:
        """``text`` with every secret, and every run of 8 or more characters of one, also
        percent-encoded (as in an error quoting a request URL), replaced by its masked
        name: the pool's secrets and ``also`` (secret, name) pairs. Costs a hash and a
        short substring search per character of ``text``, however many secrets."""
        self.ready()
        text = self._mask(text, also)
        if "%" in text:
            plain = unquote(text)
            decoded = self._mask(plain, also)
            if decoded != plain:
                text = decoded
        return text

    def _mask(self, text: str, also: tuple[tuple[str, str], ...]) -> str:
        extra = dict(also)
        found: Runs = {}
        if extra:
            PartIndex(list(extra)).windows(text, found)
        for layer in self._layers:
            layer.windows(text, found)
        if found:
            text = self._replace(text, found, extra)
        for secret, name in sorted(extra.items(), key=lambda item: -len(item[0])):
            if len(secret) < MIN_PART:
                text = text.replace(secret, name)
        return _whole(text, sorted(self._short, reverse=True), self._name_of)

    def _replace(self, text: str, found: Runs, extra: dict[str, str]) -> str:
        """``text`` with each run of overlapping windows replaced by a name: of the secret
        the run is, else of one holding it all, else of one holding its first window."""
        out: list[str] = []
        done = 0
        for start, end, holders in _runs(found):
            run = text[start:end]
            name = extra.get(run) or self._name_of(run)
            if name is None:
                holder = next((s for s in holders if run in s), holders[0])
                name = extra.get(holder) or self._name_of(holder) or mask(holder)
            out += (text[done:start], name)
            done = end
        out.append(text[done:])
        return "".join(out)


def _runs(found: Runs) -> Iterable[tuple[int, int, list[str]]]:
    """The runs of windows in ``found``: (start, end, the secrets their windows were
    found in, the first window's first), a run being windows that overlap (windows that
    only touch are two runs, as two secrets written one after the other)."""
    run: tuple[int, int, list[str]] | None = None
    for start in sorted(found):
        end = start + MIN_PART
        if run is not None and start < run[1]:
            run = (run[0], end, run[2])
            run[2].append(found[start])
            continue
        if run is not None:
            yield run
        run = (start, end, [found[start]])
    if run is not None:
        yield run


def _whole(text: str, lengths: list[int], name_of: Callable[[str], str | None]) -> str:
    """``text`` with every whole secret shorter than ``MIN_PART`` replaced by its name
    (``lengths``: theirs, longest first)."""
    for length in lengths:
        if length > len(text):
            continue
        out: list[str] = []
        start = i = 0
        while i <= len(text) - length:
            name = name_of(text[i : i + length])
            if name is None:
                i += 1
                continue
            out += (text[start:i], name)
            i = start = i + length
        if out:
            out.append(text[start:])
            text = "".join(out)
    return text
