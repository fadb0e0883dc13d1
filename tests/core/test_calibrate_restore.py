"""``Calibrator.kept``, ``memory`` and ``restore``: what a state file keeps of a
calibrator, and a restored one going on as the running one would have after the same idle
stretch (the restart), decision for decision. Hand-fed evidence, as ``test_calibrate``."""

from __future__ import annotations

import math

import pytest

from aurora_async import Limit
from aurora_async._core.calibrate import Calibrator
from aurora_async._core.calibrate_grid import grid_floor
from aurora_async._core.calibrate_types import Change, Kept, LimitSource, Memory

from .test_calibrate import Feed, rates

DECLARED = Limit(100, burst=2)
RESTART = 10.0  # seconds the process was down: no tick, no call


def lowered(feed: Feed) -> None:
    """Saturated at 100/s, then a 429: the rate comes down to r0 (100 refused)."""
    feed.serve(2.0, 100)
    feed.refuse()


def probe_refused(feed: Feed) -> None:
    """Then a climb to r1, a probe back to 100 refused: patience doubles."""
    lowered(feed)
    feed.serve(2.25, feed.cal.effective[0].per_second)
    feed.serve(5.0, feed.cal.effective[0].per_second)
    feed.refuse(after=0.1)


def after_restart(cal: Calibrator, now: float, seconds: float) -> list[tuple[float, Change]]:
    """``cal`` fed from ``now`` at whatever rate it allows for ``seconds``: its changes,
    with times relative to ``now``."""
    feed = Feed(cal)
    feed.now = now
    feed.saturate(seconds)
    return [(round(t - now, 9), change) for t, change in feed.changes]


def decisions(changes: list[tuple[float, Change]]) -> list[tuple[str, tuple[float, ...]]]:
    return [(change.reason, rates(change)) for _, change in changes]


@pytest.mark.parametrize("history", [lowered, probe_refused])
def test_a_restored_calibrator_decides_as_the_running_one_would_have(history: object) -> None:
    running = Calibrator([DECLARED], trusted=True, now=0.0)
    feed = Feed(running)
    history(feed)  # type: ignore[operator]
    kept, memory = running.kept(), running.memory()
    assert [k.source for k in kept] == [LimitSource.LEARNED]
    assert kept[0].declared is DECLARED
    assert kept[0].effective == running.effective[0]

    restart = feed.now + RESTART
    restored = Calibrator([DECLARED], trusted=True, now=restart)
    assert restored.restore(kept, memory)
    assert (restored.effective, restored.memory()) == (running.effective, memory)
    assert restored.snapshot().source is LimitSource.LEARNED
    assert restored.limit_too_high

    theirs = after_restart(running, restart, 40.0)
    mine = after_restart(restored, restart, 40.0)
    assert decisions(mine) == decisions(theirs) != []
    # the running one sees the idle gap at its first tick and starts its period then
    assert [t for t, _ in mine] == [t - 0.25 for t, _ in theirs]


@pytest.mark.parametrize(
    ("history", "first"), [(lowered, "halfway"), (probe_refused, "rate probe")]
)
def test_without_its_memory_a_restored_calibrator_would_not(history: object, first: str) -> None:
    """The control: the limits alone lose the refused rate (no climb halfway to it) and
    the doubled patience (the next probe comes twice as soon, and is refused again)."""
    running = Calibrator([DECLARED], trusted=True, now=0.0)
    feed = Feed(running)
    history(feed)  # type: ignore[operator]
    restart = feed.now + RESTART
    forgetful = Calibrator([DECLARED], trusted=True, now=restart)
    assert forgetful.restore(running.kept(), None)
    theirs = after_restart(running, restart, 40.0)
    mine = after_restart(forgetful, restart, 40.0)
    assert theirs[0][1].reason.startswith(first)
    assert [(t, c.reason, rates(c)) for t, c in mine] != [
        (t - 0.25, c.reason, rates(c)) for t, c in theirs
    ]


def test_restore_never_goes_above_a_trusted_declaration_and_ignores_other_windows() -> None:
    declared = [Limit(20), Limit(5000, per=3600)]
    cal = Calibrator(declared, trusted=True, now=0.0)
    too_high = Kept(Limit(30, burst=40), LimitSource.LEARNED, declared[0])
    elsewhere = Kept(Limit(5, burst=1), LimitSource.LEARNED, Limit(20, burst=20))  # given
    assert not cal.restore([elsewhere], None)
    assert cal.restore([too_high], None)
    assert cal.effective == (Limit(20, burst=20), declared[1])
    assert cal.memory() == Memory(0.0, math.inf, math.inf, 20.0, 1, slow=False)


def test_a_guessed_limit_is_no_ceiling_and_slow_start_ends_unless_remembered() -> None:
    cal = Calibrator([Limit(10)], trusted=False, now=0.0)
    assert cal.kept() == ()  # nothing learned yet (its burst starts low by design)
    assert cal.restore([Kept(Limit(40, burst=1), LimitSource.LEARNED, Limit(10))], None)
    assert cal.effective == (Limit(40, burst=1),)
    assert not cal.limit_too_high
    assert cal.kept()[0].effective == Limit(40, burst=1)
    feed = Feed(cal)
    changes = feed.saturate(3.0)
    assert "slow start" not in [c.reason for c in changes]
    # with a memory of slow start still on, it goes on doubling
    again = Calibrator([Limit(10)], trusted=False, now=0.0)
    memory = Memory(0.0, math.inf, math.inf, 10.0, 1, slow=True)
    again.restore([Kept(Limit(40, burst=1), LimitSource.LEARNED, Limit(10))], memory)
    assert next(c.reason for c in Feed(again).saturate(3.0)) == "slow start"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"served": -1.0}, '"served" must be finite and >= 0'),
        ({"step_of": math.inf}, '"step_of" must be finite and >= 0'),
        ({"refused": math.nan}, '"refused" must be >= 0 or none'),
        ({"patience": 2.0}, '"patience" must be a whole number'),
        ({"slow": 1}, '"slow" must be true or false'),
        ({"probe": ("rate", 1.0)}, '"probe" must be burst, probe, climb or slow'),
        ({"probe": ("burst", -1.0)}, '"probe" value must be finite'),
    ],
)
def test_a_memory_with_a_bad_figure_names_it(fields: dict[str, object], message: str) -> None:
    good: dict[str, object] = {
        "served": 1.0,
        "refused": 2.0,
        "refused_burst": math.inf,
        "step_of": grid_floor(97),
        "patience": 1,
        "slow": False,
    }
    with pytest.raises((TypeError, ValueError), match=message):
        Memory(**{**good, **fields})  # type: ignore[arg-type]
