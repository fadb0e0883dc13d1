"""``Calibrator``: a token's effective limits, moved by evidence. Pure: no clock, no I/O.

Limits are beliefs. A token starts from its declared limits (the user's: a ceiling the
effective limit never exceeds) or from the library's default (a first guess, no
ceiling). The pool feeds its calibrator evidence, each time with ``now`` (seconds, any
origin) and the token's monotonic counters ``ok`` (calls that went well) and ``units``
(units granted): :meth:`~Calibrator.tick` about every :data:`TICK` seconds while
:attr:`~Calibrator.wants_ticks`; :meth:`~Calibrator.rate_limited` for a 429 on a call
the token's own limiter allowed; :meth:`~Calibrator.from_headers` when a server states
its quota. Each returns what changes (a :class:`.Change`) or ``None``.

The rules (issue 11 says why; ``tests/core/calibration_sim.py`` is the proof):

1. **Episodes.** A 429 for a lease granted before the current episode began (in flight
   when its first 429 came back) belongs to it and changes nothing. A new episode after
   calls were served is answered by lowering the limit, filling the buckets and a
   cooldown of one unit's drain time (or the server's Retry-After). So are silent ones
   (nothing served since the last) within the backoff's ``first`` seconds of a served
   one: a full server refuses the first call after so short a cooldown when the rate is
   far too high. Only later silent episodes back off, doubling from ``first`` up to
   ``cap``; a served call ends the backoff.
2. **Lower.** A burst the server refused is one it does not have: a refused burst probe
   is undone, and a token back from idle (it fired a volley) has its burst halved. A
   saturated token lowers its rate, to 0.97 times the *measured* rate (an upper bound of
   what the server accepts, from marks since the stretch began:
   :func:`.calibrate_grid.measured_rate`), by at least 3% and at most half per episode;
   a refused rate probe is undone. An episode with no clean period since the last
   lowers both. Never below one unit, nor below the largest cost leased.
3. **Raise.** After a clean period in which the token used at least 90% of its rate
   (an idle token learns nothing), in this order: climb back to a rate served cleanly
   before, or halfway (geometric) to the least refused one, over short periods; grow
   the burst by one unit (beyond two units only while the rate is at its ceiling, where
   a larger burst is tested at once); probe the rate up by 2% of the rate at the last
   decrease, over periods long enough in *calls* (400) that probing costs well under 1%
   of them, twice as long after each refused probe (up to 16 times). Never above a
   ceiling (the user's, or a server's quota).
4. **Slow start.** A burst not given starts at the floor (no opening volley); with
   nothing declared, the rate also doubles after each short clean period until the
   first episode.
5. **Grid.** Learned rates are rounded down to a 2% grid (:mod:`.calibrate_grid`), so
   tokens of one tier share their ``Limit`` values and the scheduler's lanes.
6. **Visible.** :attr:`~Calibrator.limit_too_high` and :meth:`~Calibrator.snapshot`.

Two refinements the simulation asked for: the climb of rule 3 (the measured rate falls
below the server's when the server has no burst to spare, as nginx's ``burst=0``,
which idles between a refused call and the next; additive probes alone would take
minutes to recover) and the silent episodes of rule 1 (at five times the server's rate
the first call after a cooldown is refused, and backing off there idled tokens for
seconds). Only the token's fast window (the shortest ``per``) learns from 429s; all
windows take what headers state (:mod:`.calibrate_windows`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .calibrate_evidence import TICK, Evidence
from .calibrate_grid import grid_above, grid_floor
from .calibrate_types import (
    LIMIT_FROM_HEADER,
    LIMIT_LOWERED,
    LIMIT_RAISED,
    CalibrationSnapshot,
    Change,
    Kept,
    LimitSource,
    Memory,
    RateLimitedDecision,
)
from .calibrate_windows import Belief, guess_window, header_level, place_quota
from .limits import Limit

__all__ = ["TICK", "Calibrator", "same_declaration", "starting_limits"]

#: Lowering: to this share of the measured rate, and at least 3% of the old rate...
DECREASE = 0.97
#: ... but never below this share of the old rate in one episode.
MAX_CUT = 0.5
#: Raising: a probe adds this share of the rate at the last decrease.
PROBE_STEP = 0.02
#: Clean saturated periods before a raise, (at least seconds, at least calls): a rate
#: probe; a climb back toward known rates; a burst step; a slow-start doubling.
PROBE_PERIOD = (5.0, 400.0)
CLIMB_PERIOD = (2.0, 60.0)
BURST_PERIOD = (1.0, 50.0)
SLOW_START_PERIOD = (0.5, 10.0)
SLOW_START_FACTOR = 2.0
#: No learned rate goes below this (units a second).
MIN_RATE = 1e-3
#: A 429 this soon after the token was idle is blamed on its burst (seconds).
_FROM_IDLE = 1.0
#: A refused rate probe doubles the wait for the next, up to this many periods; one
#: served for a whole period brings it back to one.
_MAX_PATIENCE = 16
#: Bisect between the rate and the least refused one while they are this far apart.
_BISECT = 1.0 + 2 * PROBE_STEP

_NO_PROBE = ("", 0.0)
_RESYNC = "the server counts more used"


class Calibrator:
    """One token's limits: declared, effective, and the evidence between them.

    ``limits`` are the token's declared limits; ``trusted`` says whether the user
    declared them (a ceiling) or they are the library's default (a first guess).
    ``min_burst`` is the largest cost the pool leases (no burst goes below it) and
    ``backoff`` the pool's ``(first, cap)`` seconds of backoff.
    """

    __slots__ = (
        "_decreased",
        "_fast",
        "_hi",
        "_lo",
        "_patience",
        "_probe",
        "_refused",
        "_resets",
        "_slow",
        "backoff",
        "cool_until",
        "declared",
        "evidence",
        "floor",
        "source",
        "trusted",
        "windows",
    )

    def __init__(
        self,
        limits: Sequence[Limit],
        *,
        trusted: bool,
        now: float,
        min_burst: float = 1.0,
        backoff: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        if not limits:
            raise ValueError("Calibrator needs at least one limit")
        self.declared = tuple(limits)
        self.trusted = trusted
        self.backoff = backoff
        self.floor = max(1.0, float(min_burst))  #: the least burst, in units
        self.windows = _beliefs(limits, trusted, self.floor)
        self.source = LimitSource.DECLARED if trusted else LimitSource.DEFAULT
        self.cool_until = now  #: the token must not fire before this
        self.evidence = Evidence(now)
        self._fast = self._fastest()  # the window learned from 429s: the shortest
        self._slow = not trusted  # slow start: the rate doubles until the first episode
        self._probe = _NO_PROBE  # (kind, rate or burst before) of the last raise
        self._lo = 0.0  # the highest rate served cleanly for a whole period
        self._hi = math.inf  # the least rate refused since
        self._decreased = self.windows[self._fast].rate  # the rate at the last decrease
        self._patience = 1  # rate probes wait this many periods (doubles when refused)
        self._refused = math.inf  # the least burst the server refused
        self._resets: dict[float, float] | None = None  # quota -> longest reset seen

    # -- what the pool reads -----------------------------------------------------------

    @property
    def effective(self) -> tuple[Limit, ...]:
        """The limits the token's limiter should enforce now."""
        return tuple(window.effective() for window in self.windows)

    @property
    def wants_ticks(self) -> bool:
        """Whether :meth:`tick` can still decide anything: something may grow, or an
        episode is not over yet."""
        if not self.trusted or self.evidence.unsettled:
            return True
        fast = self.windows[self._fast]
        return fast.rate < fast.ceiling or fast.burst < self._burst_cap(fast)

    @property
    def limit_too_high(self) -> bool:
        """A trusted declared rate or burst is above what the evidence allows."""
        return any(window.lowered for window in self.windows)

    def snapshot(self) -> CalibrationSnapshot:
        return CalibrationSnapshot(
            self.declared, self.effective, self.source, self.limit_too_high, self.evidence.step
        )

    def adopt(self, limits: Sequence[Limit]) -> bool:
        """Take ``limits`` as the effective ones: what another process's calibration of
        the same token decided (shared state). Its evidence is not this one's, so only
        the windows' values move; ``False`` (nothing changed) when the windows do not
        match this token's one for one (same ``per``)."""
        if len(limits) != len(self.windows) or any(
            limit.per != window.per for limit, window in zip(limits, self.windows, strict=True)
        ):
            return False
        for limit, window in zip(limits, self.windows, strict=True):
            window.set(limit.per_second, limit.burst)
        self.source = LimitSource.LEARNED
        return True

    def set_min_burst(self, min_burst: float) -> Change | None:
        """The pool now leases up to ``min_burst`` units at once: no burst goes below
        (nor above a declared one: the pool refuses such a cost anyway)."""
        floor = max(1.0, float(min_burst))
        if floor <= self.floor:
            return None
        self.floor = floor
        old = self.effective
        for window in self.windows:
            if window.burst < floor:
                window.set(window.rate, min(floor, max(window.burst_cap, window.burst)))
        return self._change(old, LimitSource.LEARNED, LIMIT_RAISED, "larger cost leased")

    # -- a restart (the state file) -----------------------------------------------------

    def kept(self) -> tuple[Kept, ...]:
        """The windows whose effective limit evidence moved from the declared one: what a
        restart keeps. Windows a server's headers added are not (its next answer adds
        them again), nor a burst merely starting low (a new calibrator starts it so)."""
        if self.source in (LimitSource.DECLARED, LimitSource.DEFAULT):
            return ()
        return tuple(
            Kept(window.effective(), self.source, window.declared)
            for window in self.windows
            if window.declared is not None and window.effective() != window.declared
        )

    def memory(self) -> Memory:
        """What this calibrator knows beyond its limits (see :class:`.Memory`)."""
        return Memory(
            served=self._lo,
            refused=self._hi,
            refused_burst=self._refused,
            step_of=self._decreased,
            patience=self._patience,
            slow=self._slow,
            probe=self._probe,
        )

    def restore(self, kept: Sequence[Kept], memory: Memory | None) -> bool:
        """Take the limits an earlier run of this token learned (``kept``, each on the
        window declared as its ``declared``; never above a trusted declared one) and what
        it knew beyond them, so this calibrator goes on as that one would have: no slow
        start again, the next rate probe 2% of the rate at the last decrease, and no
        climb back toward a rate the server refused. Without ``memory`` it goes on from
        the limits alone: no slow start, probing upward from there. Its evidence starts
        afresh (the restart was an idle stretch). Returns whether anything was taken."""
        taken = False
        for item in kept:
            mine = (w for w in self.windows if same_declaration(w.declared, item.declared))
            window = next(mine, None)
            limit = item.effective
            if window is None or limit.per != window.per:
                continue
            rate, burst = min(limit.per_second, window.ceiling), min(limit.burst, window.burst_cap)
            window.set(rate, burst)
            if (rate, burst) == (limit.per_second, limit.burst):
                window.limit = limit  # the very value saved: window levels are matched by it
            self.source = item.source
            taken = True
        if not taken:
            return False
        if memory is None:
            rate = self.windows[self._fast].rate
            memory = Memory(0.0, math.inf, math.inf, rate, 1, slow=False)
        self._lo, self._hi, self._refused = memory.served, memory.refused, memory.refused_burst
        self._decreased, self._patience = memory.step_of, memory.patience
        self._slow, self._probe = memory.slow, memory.probe
        return True

    # -- evidence ----------------------------------------------------------------------

    def tick(self, now: float, ok: int, units: float) -> Change | None:
        """The token's counters, about every :data:`TICK` seconds while
        :attr:`wants_ticks`: marks for the measured rate, and after a clean period in
        which the token used its rate, a raise (rule 3). A token granted nothing since
        its last tick may be skipped: an idle token learns nothing, and the next tick
        (or 429) sees the gap."""
        rate = self._used_rate()
        clean = self.evidence.tick(now, ok, units, rate)
        if clean == 0.0 or clean < self._period(rate):
            return None
        self.evidence.settle(now, units)
        self._confirm()
        return self._raise(now, ok)

    def rate_limited(
        self, now: float, granted_at: float, ok: int, units: float, retry_after: float | None
    ) -> RateLimitedDecision:
        """A 429 on a lease granted at ``granted_at`` that the token's limiter allowed;
        ``retry_after`` is the server's, in seconds, if it sent one. A Retry-After longer
        than the backoff's first step is a spent quota or a block, not pacing: the token
        rests that long and nothing is learned (nor an episode begun). The pool cools the
        token for the decision's ``cooldown``, fills its buckets on a new episode (the
        refused call counts as spent) and applies its ``change``, if any."""
        evidence = self.evidence
        if evidence.in_episode(granted_at):  # in flight when the episode began
            left = self.cool_until - now
            if retry_after is not None and retry_after > left:
                self.cool_until, left = now + retry_after, retry_after
            return RateLimitedDecision(False, left if left > 0 else 0.0, None, evidence.step)
        first, cap = self.backoff
        if retry_after is not None and retry_after > first:
            # The server says when: a spent quota or a block (another client on the key,
            # a secondary limit), not this token's pacing. Rest it, learn nothing.
            self.cool_until = max(self.cool_until, now + retry_after)
            evidence.restart(now + retry_after, units)
            return RateLimitedDecision(True, retry_after, None, evidence.step)
        episode = evidence.begin_episode(now, ok, first)
        self._slow = False
        change = None
        hold = 0.0
        if episode.lower:
            fast = self.windows[self._fast]
            burst = fast.burst
            measured = evidence.measured(now, ok)  # (before _lower marks the evidence)
            change = self._lower(now, ok, episode.chained, measured)
            rate = self._pace(measured)
            cooldown = 1.0 / rate if retry_after is None else retry_after
            # a bucket fuller than its new burst drains first: not idle, just held
            hold = max(0.0, burst - fast.burst) / rate
        else:
            cooldown = min(cap, first * 2.0 ** (episode.step - 1))
            if retry_after is not None:
                cooldown = retry_after
        self.cool_until = now + cooldown
        evidence.restart(now + cooldown + hold, units)
        return RateLimitedDecision(True, cooldown, change, episode.step)

    def from_headers(
        self,
        now: float,
        limit: float | None,
        remaining: float | None,
        reset_after: float | None,
        window: float | None,
    ) -> Change | None:
        """The server states a quota of ``limit`` units per ``window`` seconds (``None``:
        not stated, then guessed: :func:`.calibrate_windows.guess_window`), of which
        ``remaining`` are left until ``reset_after`` seconds from now.

        The window of that length takes the quota as a bucket that never overruns it
        (:func:`.calibrate_windows.quota_bucket`), capped by a trusted declared one; a
        window nobody declared is added; the library's guesses give way. The change
        carries a level for that window so that it admits no more than ``remaining``
        until the reset (a restart, or another client on the key, costs no 429): the
        pool raises that bucket's level to it, never lowers it. ``None`` when nothing
        changes and no level is asked for. An answer saying nothing remains still cools
        the token until the reset, as the pool does today."""
        if limit is None or limit <= 0:
            return None
        per = (
            window
            if window is not None
            else guess_window(self.windows, self._guesses(), limit, reset_after)
        )
        if per is None:
            return None
        if window is None and self._confirms(per, limit, reset_after):
            return None
        for belief in self.windows:  # the usual answer: a quota already known
            if belief.quota == limit and abs(belief.per - per) <= 1e-9 * per:
                return self._level(belief, remaining, reset_after)
        old = self.effective
        fast = self.windows[self._fast]
        before = (fast.rate, fast.burst)
        self.windows, belief = place_quota(self.windows, per, limit, self.floor)
        self._fast = self._fastest()
        if self.windows[self._fast] is not fast or (fast.rate, fast.burst) != before:
            self._relearn()
        new = self.effective
        if new == old:
            return self._level(belief, remaining, reset_after)
        self.source = LimitSource.HEADER
        level = header_level(belief.rate, belief.burst, remaining, reset_after)
        levels = None if level is None else self._levels(belief, level)
        reason = f"server states {limit:g} per {per:g}s"
        return Change(new, LimitSource.HEADER, LIMIT_FROM_HEADER, old, levels, reason)

    def _confirms(self, per: float, limit: float, reset_after: float | None) -> bool:
        """A leaky bucket's reading of a trusted declaration: nothing new. Servers that
        enforce a leaky bucket state its size in ``X-RateLimit-Limit`` and, as the reset,
        the time until the next unit frees (at most one unit's drain time); read as a
        quota per fixed window, that would halve an exact declaration. A fixed window's
        reset runs to the window's end, longer than one unit's drain time."""
        if reset_after is None:
            return False
        return any(
            b.trusted
            and b.declared is not None
            and abs(b.per - per) <= 1e-9 * per
            and limit in (b.declared.rate, b.declared.burst)
            and reset_after <= 1.0 / b.declared.per_second + 1e-9
            for b in self.windows
        )

    def _level(
        self, belief: Belief, remaining: float | None, reset_after: float | None
    ) -> Change | None:
        """Only a level for ``belief``'s bucket, if the server's count asks for one."""
        level = header_level(belief.rate, belief.burst, remaining, reset_after)
        if level is None:
            return None
        limits = self.effective
        levels = self._levels(belief, level)
        return Change(limits, LimitSource.HEADER, LIMIT_FROM_HEADER, limits, levels, _RESYNC)

    def _levels(self, belief: Belief, level: float) -> tuple[float | None, ...]:
        return tuple(level if window is belief else None for window in self.windows)

    # -- decisions -----------------------------------------------------------------------

    def _lower(self, now: float, ok: int, chained: bool, measured: float) -> Change | None:
        old = self.effective
        fast = self.windows[self._fast]
        rate, burst = fast.rate, fast.burst
        kind, before = self._probe
        self._probe = _NO_PROBE
        floor = min(self.floor, fast.burst_cap)
        if not chained and kind == "burst":  # the probe refused: undo it
            self._refused = min(self._refused, burst)
            burst, reason = before, "burst probe refused"
        elif not chained and kind in ("probe", "climb"):
            self._hi = min(self._hi, rate)
            self._lo = min(self._lo, before)
            rate, reason = before, "rate probe refused"
            if kind == "probe":
                self._patience = min(_MAX_PATIENCE, self._patience * 2)
        elif not chained and burst > floor and now - self.evidence.idle_at <= _FROM_IDLE:
            # back from idle, so the token fired a volley: its burst was refused
            self._refused = min(self._refused, burst)
            burst, reason = max(floor, math.floor(burst / 2)), "burst refused"
        else:  # saturated (or again): the rate is too high
            reason = "rate refused"
            if chained and burst > floor:  # maybe the burst: it may grow back
                burst, reason = max(floor, math.floor(burst / 2)), "burst and rate refused"
            self._hi = min(self._hi, rate)
            rate = self._lowered_rate(measured)
            if kind == "slow":  # the rate before the doubling was served cleanly
                rate = max(rate, before)
            self._lo = min(self._lo, rate)
        self.evidence.mark(now, ok)
        if rate < fast.rate:
            self._decreased = rate
        fast.set(rate, burst)
        return self._change(old, LimitSource.LEARNED, LIMIT_LOWERED, reason)

    def _lowered_rate(self, measured: float) -> float:
        used = self._pace(measured)
        target = min(DECREASE * used, max(MAX_CUT * used, DECREASE * measured))
        return max(MIN_RATE, grid_floor(target))

    def _confirm(self) -> None:
        """A whole clean saturated period at the current limits."""
        kind = self._probe[0]
        self._probe = _NO_PROBE
        if kind == "probe":
            self._patience = 1
        fast = self.windows[self._fast]
        if fast.rate <= self._used_rate() * (1 + 1e-9):  # its rate was the one used
            self._lo = max(self._lo, fast.rate)
            if self._lo >= self._hi:  # the server allows more now
                self._hi = math.inf

    def _climb(self, rate: float) -> tuple[float, str, str] | None:
        """A rate the evidence says to try next, ahead of bursts and probes."""
        if self._slow:
            return rate * SLOW_START_FACTOR, "slow", "slow start"
        if rate < self._lo:
            return self._lo, "climb", "back to a rate served before"
        if self._hi < math.inf and self._hi / rate > _BISECT:
            return math.sqrt(rate * self._hi), "climb", "halfway to a refused rate"
        return None

    def _raise(self, now: float, ok: int) -> Change | None:
        old = self.effective
        fast = self.windows[self._fast]
        if fast.rate > self._used_rate() * (1 + 1e-9):
            return None  # another window binds: this one's rate is not being tested
        climb = self._climb(fast.rate)
        cap = self._burst_cap(fast)
        if climb is None and fast.burst < cap:
            self._probe = ("burst", fast.burst)
            fast.set(fast.rate, min(cap, fast.burst + 1.0))
            reason = "burst probe"
        elif climb is not None or fast.rate < fast.ceiling:
            target, kind, reason = climb or (
                fast.rate + PROBE_STEP * self._decreased,
                "probe",
                "rate probe",
            )
            rate = grid_floor(target)
            if rate <= fast.rate:
                rate = grid_above(fast.rate)
            rate = min(rate, fast.ceiling)
            if rate <= fast.rate:
                return None
            self._probe = (kind, fast.rate)
            fast.set(rate, fast.burst)
            self.evidence.forget_marks()  # the server may have had room since
        else:
            return None
        self.evidence.mark(now, ok)
        return self._change(old, LimitSource.LEARNED, LIMIT_RAISED, reason)

    # -- helpers -------------------------------------------------------------------------

    def _change(
        self, old: tuple[Limit, ...], source: LimitSource, event: str, reason: str
    ) -> Change | None:
        new = self.effective
        if new == old:
            return None
        self.source = source
        return Change(new, source, event, old, None, reason)

    def _burst_cap(self, window: Belief) -> float:
        """How far the burst may grow: to its cap, short of a refused one; beyond two
        units only while the rate is at its ceiling (below a server's rate, the server
        has room and a larger burst goes untested until the token fires a volley)."""
        cap = min(window.burst_cap, self._refused - 1.0)
        if window.rate < window.ceiling:
            cap = min(cap, max(self.floor, 2.0))
        return max(cap, min(self.floor, window.burst_cap))

    def _used_rate(self) -> float:
        """The most units a second the token can sustain: the least rate of its windows."""
        return min(window.rate for window in self.windows)

    def _pace(self, measured: float) -> float:
        """The rate that held the token back, given the ``measured`` rate it was served
        at: the slowest window's, unless it was served faster than that (an hourly
        window's rate beside a per-second one), when the slowest did not hold it back
        and the fast window's is the one (a 429 lowers from it, and its unit's drain
        time is the cooldown: from the hour's, one 429 would take 20/s beside 5000/h
        down to 1.4/s, and rest the token 0.72 s)."""
        used = self._used_rate()
        return self.windows[self._fast].rate if measured > used else used

    def _period(self, rate: float) -> float:
        fast = self.windows[self._fast]
        climb = self._climb(fast.rate)
        if climb is not None:
            seconds, calls = SLOW_START_PERIOD if climb[1] == "slow" else CLIMB_PERIOD
        elif fast.burst < self._burst_cap(fast):
            seconds, calls = BURST_PERIOD
        else:
            seconds, calls = PROBE_PERIOD
            return max(seconds, calls / rate) * self._patience
        return max(seconds, calls / rate)

    def _fastest(self) -> int:
        return min(
            range(len(self.windows)), key=lambda i: (self.windows[i].per, self.windows[i].rate)
        )

    def _guesses(self) -> dict[float, float]:
        if self._resets is None:
            self._resets = {}
        return self._resets

    def _relearn(self) -> None:
        """The fast window changed by a server's word: what was learned of it is moot."""
        fast = self.windows[self._fast]
        self.evidence.forget_marks()
        self._probe = _NO_PROBE
        self._lo, self._hi = 0.0, math.inf
        self._decreased = fast.rate
        self._patience = 1
        self._refused = math.inf
        self._slow = False


def same_declaration(mine: Limit | None, theirs: Limit) -> bool:
    """Whether a window declared as ``mine`` is the one declared as ``theirs``: the same
    limit, its burst given or defaulted alike (a given burst is trusted from the start)."""
    return mine == theirs and mine is not None and mine.burst_given == theirs.burst_given


def starting_limits(
    limits: Sequence[Limit], *, trusted: bool, min_burst: float = 1.0
) -> tuple[Limit, ...]:
    """The effective limits a token declared with ``limits`` starts with: what a new
    :class:`Calibrator` would say, without making one (a pool makes one only for a token
    that is used)."""
    return tuple(b.effective() for b in _beliefs(limits, trusted, max(1.0, float(min_burst))))


def _beliefs(limits: Sequence[Limit], trusted: bool, floor: float) -> list[Belief]:
    """First beliefs of declared windows. Only the fastest window (the shortest ``per``)
    is learned from 429s, so only its defaulted burst starts at ``floor`` (no opening
    volley) to grow back; the others keep their declared bursts, which the fastest one
    bounds in the short run (a burst of 1 on an hourly window would cap the token at its
    hourly rate for good)."""
    fast = min(range(len(limits)), key=lambda i: (limits[i].per, limits[i].per_second))
    return [
        Belief.from_limit(limit, trusted=trusted, floor=floor if i == fast else limit.burst)
        for i, limit in enumerate(limits)
    ]
