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
sampled piece is there); beside each bucket, the number of the secret each context
comes from names the run. No per-piece Python object survives the build; a shared prefix
(``sk-live-``) fills a few buckets with the same contexts, kept about once.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Sequence

from .._core.gcpause import gc_paused

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

#: A text's windows of secrets: window start -> a secret holding that window.
Runs = dict[int, str]


def _spots(length: int) -> tuple[int, ...]:
    """Where a secret of ``length`` characters is sampled: every ``STRIDE``-th position
    and its last piece."""
    last = length - GRAM
    return tuple(sorted({*range(0, last + 1, STRIDE), last}))


class PartIndex:
    """An immutable index of the windows of ``secrets`` (those of 8 characters or more)."""

    __slots__ = ("_buckets", "_ids", "_mask", "_starts", "secrets", "short")

    def __init__(self, secrets: Sequence[str]) -> None:
        #: The lengths of the secrets too short to have a window (masked whole only).
        self.short = frozenset(len(s) for s in secrets if len(s) < MIN_PART)
        with gc_paused(len(secrets)):
            self._build([s for s in secrets if len(s) >= MIN_PART])

    def _build(self, secrets: list[str]) -> None:
        self.secrets = secrets
        holders = sum(len(s) // STRIDE + 1 for s in self.secrets)
        size = 1
        while size * _PER_BUCKET < holders:
            size *= 2
        self._mask = size - 1
        parts: list[list[str]] = [[] for _ in range(size)]
        ids = [array("I") for _ in range(size)]
        for first in range(0, len(self.secrets), _CHUNK):
            self._sample(first, parts, ids)
        self._buckets: list[str] = [""] * size
        self._ids = array("I")
        self._starts = array("Q", [0])
        for b in range(size):  # (one bucket's strings freed at a time)
            self._buckets[b] = SEP.join(parts[b])
            parts[b] = []
            self._ids.extend(ids[b])
            self._starts.append(len(self._ids))

    def _sample(self, first: int, parts: list[list[str]], ids: list[array[int]]) -> None:
        """File the contexts of the sampled pieces of the secrets ``first`` to ``first +
        _CHUNK``: each piece's context joins the bucket of the piece's hash, and the
        secret's number the bucket's numbers."""
        mask = self._mask
        bins: list[list[str]] = [[] for _ in parts]
        owners: list[list[int]] = [[] for _ in parts]
        spots: dict[int, tuple[int, ...]] = {}
        secrets = self.secrets
        for number in range(first, min(first + _CHUNK, len(secrets))):
            secret = secrets[number]
            where = spots.get(len(secret))
            if where is None:
                where = spots[len(secret)] = _spots(len(secret))
            for at in where:
                b = hash(secret[at : at + GRAM]) & mask
                bins[b].append(secret[at - _BEFORE if at > _BEFORE else 0 : at + MIN_PART])
                owners[b].append(number)
        for b, held in enumerate(bins):
            if held:
                if len(held) > _DEDUP:  # each context once (with one of its secrets)
                    kept = dict(zip(held, owners[b], strict=True))
                    held, owners[b] = list(kept), list(kept.values())
                parts[b].append(SEP.join(held))
                ids[b].extend(owners[b])
                bins[b], owners[b] = [], []  # (freed one bucket at a time)

    def windows(self, text: str, found: Runs) -> None:
        """Add to ``found`` every window of a secret in ``text`` that is not there yet
        (its start -> a secret holding it)."""
        last = len(text) - MIN_PART
        if last < 0:
            return
        buckets, mask = self._buckets, self._mask
        guard = SEP in text
        for j in range(len(text) - GRAM + 1):
            piece = text[j : j + GRAM]
            b = hash(piece) & mask
            bucket = buckets[b]
            if piece not in bucket:
                continue
            for i in range(max(0, j - _BEFORE), min(j, last) + 1):
                if i not in found:
                    window = text[i : i + MIN_PART]
                    at = bucket.find(window)
                    if at >= 0 and not (guard and SEP in window):
                        entry = self._starts[b] + bucket.count(SEP, 0, at)
                        found[i] = self.secrets[self._ids[entry]]

    def __len__(self) -> int:
        return len(self.secrets)

    def nbytes(self) -> int:
        """The index's own memory, roughly (the secrets are the pool's)."""
        strings = sum(len(b) + 49 for b in self._buckets)
        arrays = self._ids.buffer_info()[1] * 4 + self._starts.buffer_info()[1] * 8
        return strings + arrays + 8 * (len(self._buckets) + len(self.secrets))


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
