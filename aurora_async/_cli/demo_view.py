"""How the demo shows itself: a live table in a terminal, plain lines otherwise.

Both views show the same things: while a strategy runs, requests done, the rate, the
server's 429s and 401s and, per tier, the tokens' states and rates; at the end, one
summary table comparing the strategies.
"""

from __future__ import annotations

import math
import textwrap
from typing import IO, TYPE_CHECKING

from .demo import ROUND_ROBIN, SOONEST_FIRE, DemoResult, Progress, RunResult
from .demo_mix import TOLERANCE

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


def summary_rows(result: DemoResult) -> list[tuple[str, ...]]:
    """The summary as rows: a label, then one cell per strategy."""
    runs = result.runs
    return [
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


def summary_notes(result: DemoResult) -> list[str]:
    first = result.runs[0]
    notes = [
        f"capacity: the sum of the token rates, {first.capacity:,.0f}/s, plus the fresh "
        f"buckets' bursts ({first.bursts:,.0f} requests) spread over {first.seconds:g} s: "
        f"{first.allowed:,.0f}/s, the most the server admits.",
        "wait: from a coroutine wanting to send a request until the attempt that got "
        "through was sent (queueing and retries included). Round robin's median can look "
        "fine: a request that lands on a fast token goes at once, while one that lands on a "
        "slow token waits seconds behind it (the tail); soonest-fire serves everyone in turn "
        "from one queue.",
        f"server: MockAPI on 127.0.0.1 with tolerance={TOLERANCE:g} (it admits a request "
        f"up to {TOLERANCE * 1000:.0f} ms early, for arrival jitter), the same setup for "
        f"each strategy; {result.concurrency} coroutines each.",
    ]
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


def _progress_line(p: Progress) -> str:
    tiers = "  ".join(
        f"[{row.label}: {row.rate:,.0f}/s{', ' + row.states if row.states else ''}]"
        for row in p.tiers
    )
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
        table.add_column("rate now", justify="right")
        table.add_column("capacity", justify="right")
        table.add_column("done", justify="right")
        table.add_column("429s", justify="right")
        table.add_column("401s", justify="right")
        table.add_column("token states")
        for row in p.tiers:
            table.add_row(
                row.label,
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
