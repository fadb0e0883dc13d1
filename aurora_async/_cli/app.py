"""The typer application: parses the command line and hands over to one module each.

Exit status: 0 fine, 1 the thing checked is not fine (an unusable token file, a benchmark
script that failed, or a missed target with ``bench --check``), 2 a usage error (typer's
own, or a bad value).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from .help import Command, Group

__all__ = ["app", "run"]

app = typer.Typer(
    cls=Group,
    name="aurora-async",
    help="Share a pool of rate-limited API tokens: check a token file, size a pool, "
    "see it work, measure it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def run(argv: Sequence[str]) -> int:
    """Run the app on ``argv``; returns the exit status instead of exiting."""
    command = typer.main.get_command(app)
    try:
        command.main(args=list(argv), prog_name="aurora-async", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    return 0  # pragma: no cover  # standalone mode always exits


@app.command(cls=Command)
def check(
    file: Annotated[
        str | None,
        typer.Argument(
            help="The token file. Default: $AURORA_TOKENS_FILE, else ./access_tokens.txt.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object, for tooling.")
    ] = False,
    names: Annotated[
        bool,
        typer.Option(
            "--names", help="List the tokens by their masked names, with their annotated limits."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing: the exit status says it.")
    ] = False,
) -> None:
    """Validate a token file as the pool would read it. Exit 0 if usable, 1 if not.

    Reports the file used and how it was chosen, the token count, duplicates, limits
    annotated on token lines (limit=20/1s,burst=5) and every bad line by number. Never
    prints a token: only masked names. Usable as a container health check:
    `aurora-async check -q`.
    """
    from .check import check_token_file, render_json, render_text

    try:
        report = check_token_file(file)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    if json_output:
        typer.echo(render_json(report))
    elif not quiet:
        typer.echo(render_text(report, list_names=names))
    raise typer.Exit(report.exit_code)


@app.command(cls=Command)
def demo(
    seconds: Annotated[float, typer.Option(min=0.5, help="Seconds each strategy runs.")] = 10.0,
    tokens: Annotated[
        int,
        typer.Option(
            min=4,
            help="Live tokens, split over tiers of 5, 20 and 50/s and one declared 20/s "
            "that the server holds to 10/s.",
        ),
    ] = 24,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Coroutines sending requests, one after another.")
    ] = 300,
    plain: Annotated[bool, typer.Option("--plain", help="Plain lines even in a terminal.")] = False,
) -> None:
    """Soonest-fire against strict round robin on the same work, against a local API.

    Starts a local rate-limited API (MockAPI) with tiers of tokens, one tier declared at
    twice its real rate, two revoked ones and one cooling down, runs the same crowd of
    coroutines through a TokenPool and then through round robin, and prints a
    comparison, with how the pool's limits converged on the mis-declared tier. Offline;
    about 2 x --seconds.
    """
    from . import demo as the_demo
    from .demo_view import choose_view

    view = choose_view(plain=plain, stream=sys.stdout)
    try:
        asyncio.run(
            the_demo.run_demo(view, seconds=seconds, tokens=tokens, concurrency=concurrency)
        )
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


@app.command(cls=Command)
def plan(
    rate: Annotated[float, typer.Option("--rate", help="Target requests per second.")],
    limit: Annotated[
        list[str],
        typer.Option(
            "--limit",
            help="A per-token limit, RATE/PERIOD such as 5/1s, 5000/3600s, 30/min or "
            "5/1s,burst=2. Repeat for several windows.",
        ),
    ],
    burst: Annotated[
        float | None,
        typer.Option(help="Bucket size of the first --limit (default: its rate)."),
    ] = None,
    cost: Annotated[float, typer.Option(help="Units each request costs.")] = 1.0,
    hours: Annotated[float, typer.Option(help="Hours of virtual time to simulate.")] = 1.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """How many tokens a target rate needs, and the utilization to expect.

    Simulates the pool's scheduler on virtual time (no waiting: an hour in about a
    second) with every token in steady use, then at the target rate, and says what the
    benchmarks measured when the limits given are wrong (the pool calibrates them).
    """
    import json

    from .._core.limitspec import parse_limit
    from .plan import make_plan, render_plan

    try:
        limits = [
            parse_limit(spec, burst=burst if i == 0 else None) for i, spec in enumerate(limit)
        ]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--limit") from None
    try:
        result = make_plan(rate, limits, cost=cost, hours=hours)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if json_output:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo(render_plan(result))


@app.command(cls=Command)
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick/--full",
            help="Shorter runs (smaller, noisier figures) instead of the full suite.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where to write summary.md and summary.png [default: benchmarks/results]",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Run only this benchmark (e.g. lease); repeatable.", show_default=False),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="The benchmarks directory [default: found beside the package or here]",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 when a figure misses its target (for CI)."),
    ] = False,
) -> None:
    """Run the benchmark suite (benchmarks/bench_*.py) and summarize it.

    Full runs by default, --quick for shorter ones. Each script runs with this
    interpreter and prints its own table; then one markdown table of every figure goes
    to summary.md and, with matplotlib installed (the plot extra), a chart to
    summary.png: each figure against its target, and throughput over time per
    strategy. A missed target is a result, shown as such: the exit status is 1 only if
    a script fails, or, with --check, if a figure misses its target.
    """
    from .bench import NOT_FOUND, discover, find_benchmarks, run_benchmarks

    found = directory if directory is not None else find_benchmarks()
    if found is None or not found.is_dir():
        typer.echo(f"aurora-async bench: {NOT_FOUND}", err=True)
        raise typer.Exit(1)
    if not discover(found, only or ()):
        which = f" matching {', '.join(only)}" if only else ""
        typer.echo(f"aurora-async bench: no bench_*.py scripts{which} in {found}", err=True)
        raise typer.Exit(1)
    result = run_benchmarks(found, quick=quick, out_dir=out, only=only or (), out=sys.stdout)
    typer.echo("")
    for script in result.scripts:
        typer.echo(f"{script.script}: {script.status} ({script.seconds:.1f} s)")
    typer.echo(f"summary: {result.summary}")
    if result.chart is not None:
        typer.echo(f"chart: {result.chart}")
    elif result.chart_problem:
        typer.echo(result.chart_problem)
    if result.missed:
        typer.echo(f"targets missed: {', '.join(result.missed)}")
    raise typer.Exit(result.exit_code(check=check))
