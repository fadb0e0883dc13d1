"""``PartIndex``: where in a text any run of 8 or more characters of a known secret is,
exactly, for a million secrets, in about 150 bytes a secret.

A run of ``MIN_PART`` (8) characters of a secret is one of its 8-character *windows*;
a run of any length of 8 or more is a chain of overlapping windows. So the index answers
one question exactly: is an 8-character string a window of some secret?

Each secret is sampled at every ``STRIDE``-th position (and its last ``GRAM``
characters): the ``GRAM``-character piece there, with the characters around it that a
window holding the whole piece can reach (``MIN_PART - GRAM`` before it, ``MIN_PART -
GRAM`` after), is its *context*. Any window of a secret holds one sampled piece whole
(``GRAM + STRIDE - 1 == MIN_PART``), so it is a substring of that piece's context. The
contexts are filed in buckets by a hash of their piece, each bucket one string (the
contexts separated by a character no token holds). A window of a text is looked for in
the bucket of each piece it holds, by a substring search in C: found means it is a window
of a secret (the context is part of one), and nothing is missed (the context of its
sampled piece is there). No per-piece Python object survives the build; a shared prefix
(``sk-live-``) fills a few buckets with the same contexts, kept about once. Which secret
a run belongs to (for its name) is looked up only for a run found, in the secrets
themselves, kept one per line in blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

__all__ = ["GRAM", "MIN_PART", "STRIDE", "PartIndex", "Runs", "build_index"]

#: The shortest run of a secret that is masked (a masked name shows 8 characters of a
#: secret at most, never in one run).
MIN_PART = 8
#: The sampled pieces' length, and every how many characters they are taken.
GRAM = 5
STRIDE = MIN_PART + 1 - GRAM
_BEFORE = MIN_PART - GRAM  # context characters before a piece (and after it)
#: Between contexts in a bucket: never in a token (no token holds white space).
SEP = "\n"
#: Contexts a bucket holds on average (a search scans about 12 characters each; fewer,
#: larger buckets build faster).
_PER_BUCKET = 96
#: A bucket with more contexts than this from one block of secrets keeps each distinct
#: context once (so a shared prefix's contexts are kept about once each).
_DEDUP = 32
#: Secrets filed at a time (what the build holds as Python strings at once).
_CHUNK = 1 << 16

#: A text's windows of secrets: window start -> the index that holds it.
Runs = dict[int, "PartIndex"]


def _spots(length: int) -> tuple[int, ...]:
    """Where a secret of ``length`` characters is sampled: every ``STRIDE``-th position
    and its last piece."""
    last = length - GRAM
    return tuple(sorted({*range(0, last + 1, STRIDE), last}))


class PartIndex:
    """An immutable index of the windows of ``secrets`` (those of 8 characters or more)."""

    __slots__ = ("_blocks", "_buckets", "_mask", "secrets")

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets: list[str] = [s for s in secrets if len(s) >= MIN_PART]
        holders = sum(len(s) // STRIDE + 1 for s in self.secrets)
        size = 1
        while size * _PER_BUCKET < holders:
            size *= 2
        self._mask = size - 1
        parts: list[list[str]] = [[] for _ in range(size)]
        #: The secrets, a block at a time, one per line: where a run's secret is found.
        self._blocks: list[str] = []
        for first in range(0, len(self.secrets), _CHUNK):
            block = self.secrets[first : first + _CHUNK]
            self._sample(block, parts)
            self._blocks.append(SEP.join(block) + SEP)
        self._buckets: list[str] = [""] * size
        for b in range(size):  # (one bucket's strings freed at a time)
            self._buckets[b] = SEP.join(parts[b])
            parts[b] = []

    def _sample(self, block: list[str], parts: list[list[str]]) -> None:
        """File the contexts of the sampled pieces of the secrets ``block``: each piece's
        context joins the bucket of the piece's hash."""
        mask = self._mask
        bins: list[list[str]] = [[] for _ in parts]
        spots: dict[int, tuple[int, ...]] = {}
        for secret in block:
            where = spots.get(len(secret))
            if where is None:
                where = spots[len(secret)] = _spots(len(secret))
            for at in where:
                bins[hash(secret[at : at + GRAM]) & mask].append(
                    secret[at - _BEFORE if at > _BEFORE else 0 : at + MIN_PART]
                )
        for b, held in enumerate(bins):
            if held:
                if len(held) > _DEDUP:
                    held = list(dict.fromkeys(held))
                parts[b].append(SEP.join(held))
                bins[b] = []  # (freed one bucket at a time)

    def windows(self, text: str, found: Runs) -> None:
        """Add to ``found`` every window of a secret in ``text`` that is not there yet
        (its start -> this index)."""
        last = len(text) - MIN_PART
        if last < 0:
            return
        buckets, mask = self._buckets, self._mask
        guard = SEP in text
        for j in range(len(text) - GRAM + 1):
            piece = text[j : j + GRAM]
            bucket = buckets[hash(piece) & mask]
            if piece not in bucket:
                continue
            for i in range(max(0, j - _BEFORE), min(j, last) + 1):
                if i not in found:
                    window = text[i : i + MIN_PART]
                    if window in bucket and not (guard and SEP in window):
                        found[i] = self

    def holder(self, part: str) -> str | None:
        """A secret of this index that holds ``part`` (no line break in it), if any."""
        for block in self._blocks:
            at = block.find(part)
            if at >= 0:
                start = block.rfind(SEP, 0, at) + 1
                return block[start : block.index(SEP, at)]
        return None

    def __len__(self) -> int:
        return len(self.secrets)

    def nbytes(self) -> int:
        """The index's own memory, roughly (the secrets are the pool's)."""
        strings = sum(len(b) + 49 for b in (*self._buckets, *self._blocks))
        return strings + 8 * (len(self._buckets) + len(self.secrets))


def build_index(secrets: Iterable[str]) -> PartIndex:
    """A :class:`PartIndex` of ``secrets`` (a function, to run in a worker thread)."""
    return PartIndex(list(secrets))


class Building:
    """A :class:`PartIndex` built in a thread of its own; :meth:`result` waits for it."""

    __slots__ = ("_done", "_error", "_index", "thread")

    def __init__(self, secrets: list[str]) -> None:
        self._done = threading.Event()
        self._index: PartIndex | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(secrets,), name="aurora-redact-index", daemon=True
        )
        self.thread.start()

    def _run(self, secrets: list[str]) -> None:
        try:
            self._index = PartIndex(secrets)
        except BaseException as exc:  # pragma: no cover - MemoryError and the like
            self._error = exc
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> PartIndex:
        self._done.wait()
        if self._index is None:
            raise RuntimeError("building the redaction index failed") from self._error
        return self._index
