"""How the demo shows itself: a live table in a terminal, plain lines otherwise.

Both views show the same things: while a strategy runs, requests done, the rate, the
server's 429s and 401s and, per tier, the tokens' states and rates, the declared and the
effective limits and the tier's 429s; at the end, one summary table comparing the
strategies, with how the pool's limits converged on the mis-declared tier.
"""

from __future__ import annotations

import math
import textwrap
from typing import IO, TYPE_CHECKING

from .demo import ROUND_ROBIN, SOONEST_FIRE, DemoResult, Progress, RunResult, TierRow
from .demo_limits import CONVERGED
from .demo_mix import TOLERANCE, Mix

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = ["PlainView", "RichView", "choose_view", "summary_rows"]


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms"


def _misdeclared_cell(run: RunResult, mix: Mix) -> str:
    tier = mix.misdeclared
    if tier is None:  # pragma: no cover  # every demo mix has one
        return "-"
    rate = "-" if run.misdeclared_rate is None else f"{run.misdeclared_rate:.3g}/s"
    refused = f"{run.misdeclared_429:,} 429s"
    if run.strategy == ROUND_ROBIN:
        return f"stays at {rate}, {refused}"
    if run.converged_after is None:
        return f"not within {CONVERGED:.0%} in {run.seconds:g} s, {refused}; ends at {rate}"
    return f"within {CONVERGED:.0%} in {_ms(run.converged_after)}, {refused}; ends at {rate}"


def summary_rows(result: DemoResult) -> list[tuple[str, ...]]:
    """The summary as rows: a label, then one cell per strategy."""
    runs = result.runs
    rows = [
        ("requests done (200)", *(f"{r.done:,}" for r in runs)),
        (
            "throughput / capacity",
            *(f"{r.throughput:,.0f}/s = {r.share_of_allowed:.0%}" for r in runs),
        ),
        (
            "answered 429",
            *(f"{r.share_429:.1%} ({r.rate_limited:,} of {r.requests:,} sent)" for r in runs),
        ),
        (
            "wasted on revoked tokens (401)",
            *(f"{r.unauthorized:,} ({r.most_per_revoked:,} per token at most)" for r in runs),
        ),
        ("wait mean", *(_ms(r.wait_mean) for r in runs)),
        ("wait p50", *(_ms(r.wait_p50) for r in runs)),
        ("wait p99", *(_ms(r.wait_p99) for r in runs)),
    ]
    tier = result.mix.misdeclared
    if tier is not None:
        label = f"tier declared {tier.declared_rate:g}/s, really {tier.rate:g}/s"
        rows.append((label, *(_misdeclared_cell(r, result.mix) for r in runs)))
    return rows


def _misdeclared_note(result: DemoResult) -> str | None:
    tier = result.mix.misdeclared
    if tier is None:  # pragma: no cover  # every demo mix has one
        return None
    text = (
        f"mis-declared tier: {len(tier.secrets)} tokens the configuration declares at "
        f"{tier.declared_rate:g}/s, which the server (nginx limit_req, burst "
        f"{tier.nginx_burst}) holds to {tier.rate:g}/s, answering 429 without Retry-After."
    )
    strategies = {r.strategy for r in result.runs}
    if SOONEST_FIRE in strategies:
        pool = result.run(SOONEST_FIRE)
        rate = f"{pool.misdeclared_rate:.3g}/s" if pool.misdeclared_rate is not None else "-"
        if pool.converged_after is None:
            text += (
                f" The pool's effective limits did not come within {CONVERGED:.0%} of "
                f"{tier.rate:g}/s in {pool.seconds:g} s (they ended at {rate}); "
            )
        else:
            text += (
                f" The pool lowered their effective limits to within {CONVERGED:.0%} of "
                f"{tier.rate:g}/s {_ms(pool.converged_after)} into the run (they ended at "
                f"{rate}); "
            )
        text += f"that cost {pool.misdeclared_429:,} 429s on the tier."
    if ROUND_ROBIN in strategies:
        rr = result.run(ROUND_ROBIN)
        text += (
            f" Round robin, configured alike, kept sending at {tier.declared_rate:g}/s: "
            f"{rr.misdeclared_429:,} 429s."
        )
    return text


def summary_notes(result: DemoResult) -> list[str]:
    first = result.runs[0]
    notes = [
        f"capacity: the sum of the token rates the server enforces, {first.capacity:,.0f}/s, "
        f"plus the fresh buckets' bursts ({first.bursts:,.0f} requests) spread over "
        f"{first.seconds:g} s: {first.allowed:,.0f}/s, the most the server admits.",
        "wait: from a coroutine wanting to send a request until the attempt that got "
        "through was sent (queueing and retries included). Round robin's median can look "
        "fine: a request that lands on a fast token goes at once, while one that lands on a "
        "slow token waits seconds behind it (the tail); soonest-fire serves everyone in turn "
        "from one queue.",
        f"server: MockAPI on 127.0.0.1 with tolerance={TOLERANCE:g} (it admits a request "
        f"up to {TOLERANCE * 1000:.0f} ms early, for arrival jitter), the same setup for "
        f"each strategy; {result.concurrency} coroutines each.",
    ]
    misdeclared = _misdeclared_note(result)
    if misdeclared is not None:
        notes.append(misdeclared)
    strategies = {r.strategy for r in result.runs}
    if {SOONEST_FIRE, ROUND_ROBIN} <= strategies:
        pool, rr = result.run(SOONEST_FIRE), result.run(ROUND_ROBIN)
        if rr.done:
            notes.append(
                f"soonest-fire completed {pool.done / rr.done:.1f}x the requests of round "
                "robin on the same tokens, server and coroutines."
            )
        else:
            notes.append("round robin completed no request in the time given.")
    return notes


def _tier_text(row: TierRow) -> str:
    text = f"{row.label}: {row.rate:,.0f}/s"
    if row.effective:
        text += f", limit {row.declared} -> {row.effective}"
    elif row.declared:
        text += f", limit {row.declared}"
    if row.rate_limited:
        text += f", 429s {row.rate_limited:,}"
    return f"[{text}{', ' + row.states if row.states else ''}]"


def _progress_line(p: Progress) -> str:
    tiers = "  ".join(_tier_text(row) for row in p.tiers)
    return (
        f"{p.strategy:>12} {p.elapsed:5.1f}/{p.seconds:g}s  done {p.done:>7,}  "
        f"{p.rate:6,.0f}/s of {p.capacity:,.0f}/s  429s {p.rate_limited:,}  "
        f"401s {p.unauthorized:,}  {tiers}"
    )


class PlainView:
    """Periodic lines and a text table: for logs, pipes and CI."""

    interval = 1.0

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def _say(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def begin(self, strategy: str, about: str) -> None:
        self._say()
        self._say(textwrap.fill(about, width=100, subsequent_indent="  "))

    def update(self, progress: Progress) -> None:
        for event in progress.events:
            self._say(f"{'':>12} event: {event}")
        self._say(_progress_line(progress))

    def end(self, result: RunResult) -> None:
        self._say(
            f"{result.strategy:>12} finished: {result.done:,} requests in {result.seconds:g} s"
        )

    def summary(self, result: DemoResult) -> None:
        header = ("", *(r.strategy for r in result.runs))
        rows = [header, *summary_rows(result)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        self._say()
        for n, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            self._say("| " + " | ".join(cells) + " |")
            if n == 0:
                self._say("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        self._say()
        for note in summary_notes(result):
            self._say(textwrap.fill(note, width=100))


class RichView:
    """A live table while each strategy runs, then a summary table (a terminal)."""

    interval = 0.25

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        self._events: list[str] = []

    def begin(self, strategy: str, about: str) -> None:
        from rich.live import Live

        self._console.print()
        self._console.rule(f"[bold]{strategy}")
        self._console.print(about, highlight=False)
        self._events = []
        self._live = Live(console=self._console, auto_refresh=False, transient=False)
        self._live.start()

    def _table(self, p: Progress) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        head = Text.assemble(
            (f"{p.strategy}  ", "bold"),
            f"{p.elapsed:4.1f}/{p.seconds:g} s   done ",
            (f"{p.done:,}", "bold"),
            f"   {p.rate:,.0f}/s of {p.capacity:,.0f}/s   ",
            ("429s ", "yellow"),
            f"{p.rate_limited:,}   ",
            ("401s ", "red"),
            f"{p.unauthorized:,}",
        )
        top = Table.grid()
        top.add_row(head)
        top.add_row(ProgressBar(total=p.seconds, completed=p.elapsed, width=60))
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("tier")
        table.add_column("declared", justify="right")
        table.add_column("effective limit", justify="right")
        table.add_column("rate now", justify="right")
        table.add_column("capacity", justify="right")
        table.add_column("done", justify="right")
        table.add_column("429s", justify="right")
        table.add_column("401s", justify="right")
        table.add_column("token states")
        for row in p.tiers:
            table.add_row(
                row.label,
                row.declared or "-",
                row.effective or "-",
                f"{row.rate:,.0f}/s",
                f"{row.capacity:,.0f}/s" if row.capacity else "-",
                f"{row.ok:,}",
                f"{row.rate_limited:,}",
                f"{row.unauthorized:,}",
                row.states or "(round robin keeps none)",
            )
        self._events = [*self._events, *p.events][-4:]
        events = Text("\n".join(f"  {e}" for e in self._events), style="dim")
        return Group(top, table, events)

    def update(self, progress: Progress) -> None:
        if self._live is not None:
            self._live.update(self._table(progress), refresh=True)

    def end(self, result: RunResult) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def summary(self, result: DemoResult) -> None:
        from rich.table import Table

        table = Table(title="soonest-fire vs round robin: the same work", title_style="bold")
        table.add_column("")
        for run in result.runs:
            table.add_column(run.strategy, justify="right")
        for row in summary_rows(result):
            table.add_row(*row)
        self._console.print()
        self._console.print(table)
        for note in summary_notes(result):
            self._console.print(note, highlight=False)


def choose_view(*, plain: bool, stream: IO[str]) -> PlainView | RichView:
    """The live table in a terminal, plain lines otherwise (or when asked)."""
    if plain or not stream.isatty():
        return PlainView(stream)
    from rich.console import Console

    return RichView(Console(file=stream))
