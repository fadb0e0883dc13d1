"""Lanes: the scheduler's index of tokens by the time they can next fire.

Tokens with the same limits form a *lane*. Each schedulable token has one entry
``(key, seq, slot)`` in its lane, where ``key`` is the time it can fire a unit cost (a
lower bound for any larger cost) and ``seq`` both breaks ties and marks the entry as
current: an entry whose ``seq`` is no longer its slot's is stale and skipped. A token
whose entry left the index (dropped at a front, the usual grant, or replaced in place)
keeps its number for its next entry if that entry's key is later; otherwise, or if its
old entry stays behind, stale, it takes a new one. (At an equal key a kept number would
win every tie against the tokens it tied with: a cooldown that ended holds a token's
key where it was while it takes leases, and ties must go to the token with room.)

Within a lane, the token leased is always the one with the lowest key, and leasing it
moves its key to ``max(key, now) + cost / rate``-ish: later than every key leased
before. So new keys almost always arrive in order, and a lane keeps them in a plain FIFO
(append at the back, take from the front: O(1), and friendly to the CPU cache, which is
what keeps a lease as cheap with 100,000 tokens as with 10). Keys that arrive out of
order (a cooldown, a refund, a token back from its in-flight cap) go to a small heap
beside the FIFO. The lane's top is the lower of the two fronts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from heapq import heapify, heappop, heappush
from itertools import chain, count
from typing import Generic, Protocol, TypeAlias, TypeVar


class Indexed(Protocol):
    """What a lane reads of a token's record (the scheduler's ``Slot``)."""

    seq: int  # the seq of its current entry (-1: none)
    cool_until: float  # when its cooldown ends


S = TypeVar("S", bound=Indexed)
Entry: TypeAlias = tuple[float, int, S]  # (key, seq, slot)

_cool_order = count()  # breaks ties between cooldown entries (slots do not compare)


class Lane(Generic[S]):
    """Schedulable tokens of one tier: a FIFO of in-order keys plus a heap of the rest."""

    __slots__ = (
        "cool_heap",
        "cooled",
        "fifo",
        "heap",
        "key_cost",
        "max_cost",
        "rate",
        "single",
        "stale",
    )

    def __init__(
        self,
        *,
        single: bool = False,
        rate: float = 0.0,
        key_cost: float = 1.0,
        max_cost: float = 0.0,
    ):
        self.fifo: deque[Entry[S]] = deque()
        self.heap: list[Entry[S]] = []
        self.stale = 0  # superseded entries still inside, dropped when they surface
        #: One window per token: for every token here, the time it can fire ``cost`` is
        #: its key plus ``(cost - key_cost) / rate``, unless a cooldown is what holds it.
        self.single = single
        self.rate = rate
        self.key_cost = key_cost
        self.max_cost = max_cost  # the largest cost its tokens can take (their burst)
        #: Tokens of this lane with a cooldown that may still hold them back, and the
        #: same by the time each cooldown ends (``(until, n, slot)``; an entry whose
        #: ``until`` is no longer its slot's, or whose slot left ``cooled``, is stale).
        self.cooled: set[S] = set()
        self.cool_heap: list[tuple[float, int, S]] = []

    def top(self) -> Entry[S] | None:
        """The current entry with the lowest ``(key, seq)``, dropping stale fronts."""
        fifo = self.fifo
        while fifo:
            entry = fifo[0]
            if entry[2].seq == entry[1]:
                break
            fifo.popleft()
            self.stale -= 1
        heap = self.heap
        while heap:
            entry = heap[0]
            if entry[2].seq == entry[1]:
                break
            heappop(heap)
            self.stale -= 1
        if fifo:
            first = fifo[0]
            if heap and heap[0] < first:
                return heap[0]
            return first
        return heap[0] if heap else None

    def first(self, exclude: S | None, skip: set[S]) -> Entry[S] | None:
        """The current entry with the lowest key whose slot is neither ``exclude`` nor in
        ``skip``, dropping every stale entry met on the way (only those ahead of it are
        looked at, and set aside entries go back where they were)."""
        found: Entry[S] | None = None
        fifo = self.fifo
        aside: list[Entry[S]] = []
        while fifo:
            entry = fifo[0]
            slot = entry[2]
            if slot.seq != entry[1]:
                fifo.popleft()
                self.stale -= 1
            elif slot is exclude or slot in skip:
                aside.append(fifo.popleft())
            else:
                found = entry
                break
        fifo.extendleft(reversed(aside))
        heap = self.heap
        aside = []
        while heap:
            entry = heap[0]
            slot = entry[2]
            if slot.seq != entry[1]:
                heappop(heap)
                self.stale -= 1
            elif slot is exclude or slot in skip:
                aside.append(heappop(heap))
            else:
                if found is None or entry < found:
                    found = entry
                break
        for entry in aside:
            heappush(heap, entry)
        return found

    def push(self, entry: Entry[S]) -> None:
        fifo = self.fifo
        if not fifo or entry[0] >= fifo[-1][0]:
            fifo.append(entry)
        else:
            heappush(self.heap, entry)
        if self.stale > (len(fifo) >> 1) + 64:
            self.compact()

    def retire(self, seq: int) -> float | None:
        """The entry numbered ``seq`` is superseded: drop it if it is at a front (the
        usual case: the token just leased), else leave it to go stale. Returns the key
        of the entry dropped, ``None`` if it stays (see the module's notes on numbers)."""
        fifo = self.fifo
        if fifo and fifo[0][1] == seq:
            return fifo.popleft()[0]
        heap = self.heap
        if heap and heap[0][1] == seq:
            return heappop(heap)[0]
        self.stale += 1
        return None

    def add_cooled(self, slot: S) -> None:
        """``slot`` (of this lane) is held back until ``slot.cool_until``."""
        self.cooled.add(slot)
        heap = self.cool_heap
        heappush(heap, (slot.cool_until, next(_cool_order), slot))
        if len(heap) > 2 * len(self.cooled) + 64:
            self.reindex_cooled()

    def reindex_cooled(self) -> None:
        """Rebuild the cooldown index from ``cooled`` (stale entries go, and times that
        moved together, see ``Scheduler.shift``, are read afresh)."""
        self.cool_heap = [(s.cool_until, next(_cool_order), s) for s in self.cooled]
        heapify(self.cool_heap)

    def end_cooldowns(self, now: float) -> list[S]:
        """Take out of ``cooled`` every token whose cooldown ended by ``now``: only the
        ended ones are looked at, however many are cooling."""
        ended: list[S] = []
        heap = self.cool_heap
        cooled = self.cooled
        while heap and heap[0][0] <= now:
            until, _, slot = heappop(heap)
            if slot in cooled and slot.cool_until == until:
                cooled.discard(slot)
                ended.append(slot)
        return ended

    def cooled_in_order(self) -> Iterator[S]:
        """The cooling tokens by the time their cooldowns end, lazily (a best-first walk
        of the heap), so a caller looking for the soonest can stop early."""
        heap = self.cool_heap
        if not heap:
            return
        cooled = self.cooled
        frontier = [(heap[0], 0)]
        while frontier:
            entry, index = heappop(frontier)
            slot = entry[2]
            if slot in cooled and slot.cool_until == entry[0]:
                yield slot
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    heappush(frontier, (heap[child], child))

    def __len__(self) -> int:
        return len(self.fifo) + len(self.heap)

    def compact(self) -> None:
        """Drop stale entries (left behind by cooldowns, refunds and caps)."""
        current = sorted(e for e in chain(self.fifo, self.heap) if e[2].seq == e[1])
        self.fifo = deque(current)
        self.heap = []
        self.stale = 0


def top_of(lanes: Sequence[Lane[S]]) -> Entry[S] | None:
    """The lowest current entry of all lanes."""
    best: Entry[S] | None = None
    for lane in lanes:
        entry = lane.top()
        if entry is not None and (best is None or entry < best):
            best = entry
    return best


def in_key_order(lanes: Sequence[Lane[S]]) -> Iterator[Entry[S]]:
    """Every entry of every lane (stale ones included), in increasing key order, lazily:
    a best-first walk, since FIFOs are sorted and a heap node's key bounds its subtree's.
    Callers stop iterating once keys pass what they look for."""
    tie = count()
    # (key, tie, entry, the rest of its FIFO or None, its heap, its index there or -1)
    frontier: list[tuple[float, int, Entry[S], Iterator[Entry[S]] | None, list[Entry[S]], int]]
    frontier = []
    for lane in lanes:
        if lane.fifo:
            fifo_walk = iter(lane.fifo)
            first = next(fifo_walk)
            frontier.append((first[0], next(tie), first, fifo_walk, lane.heap, -1))
        if lane.heap:
            root = lane.heap[0]
            frontier.append((root[0], next(tie), root, None, lane.heap, 0))
    heapify(frontier)
    while frontier:
        _, _, entry, walk, heap, index = heappop(frontier)
        if walk is not None:
            following = next(walk, None)
            if following is not None:
                heappush(frontier, (following[0], next(tie), following, walk, heap, -1))
        else:
            for child in (2 * index + 1, 2 * index + 2):
                if child < len(heap):
                    node = heap[child]
                    heappush(frontier, (node[0], next(tie), node, None, heap, child))
        yield entry
