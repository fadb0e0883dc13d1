"""A token's usage of resources other than requests (``Slot.usage``), counted cheaply
for the usual loop: the same :class:`~.costs.Costs` leased again and again.

Adding a cost's parts to a dict at every grant (``usage[unit] = usage.get(unit) + n``)
was the largest single cost of a lease of several resources (about 2,000 instructions
of ~24,000). A slot instead keeps a :class:`Run`: the last cost it leased and how many
times in a row. A grant of that same cost adds 1 to the count; another cost, a refund,
a settle or a read of ``usage`` first :func:`fold` the run into the dict.

Folding gives the very floats the grant-by-grant sums gave: a whole number of units
below 2**53 is multiplied (exact, as each sum was), any other is added as many times.
A settle adds its correction to the dict when it comes (``Scheduler.settle``), ahead of
grants still counted in the run: with whole numbers of units (token counts) the totals
are the same, with fractions they may differ from adding in the order things happened
in the last bit (a counter, not a limit: the windows are settled exactly).
"""

from __future__ import annotations

from .costs import Costs

#: Below this, sums of whole numbers of units are exact in a float.
_EXACT = float(2**53)


class Run:
    """``times`` grants in a row of ``cost`` on one slot, not yet in its usage dict."""

    __slots__ = ("cost", "times")

    def __init__(self, cost: Costs) -> None:
        self.cost = cost
        self.times = 1


def fold(tally: dict[str, float] | None, run: Run) -> dict[str, float] | None:
    """``tally`` with ``run``'s grants added (a new dict if there was none and the run's
    cost has parts); the run counts none after."""
    times, run.times = run.times, 0
    parts = run.cost.parts
    if not times or not parts:
        return tally
    if tally is None:
        tally = {}
    for unit, units in parts.items():
        total = tally.get(unit, 0.0)
        if (
            float(units).is_integer()
            and total.is_integer()
            and abs(total) + abs(units) * times <= _EXACT
        ):
            total += units * times  # every partial sum whole and exact: the same float
        else:
            for _ in range(times):
                total += units
        tally[unit] = total
    return tally
