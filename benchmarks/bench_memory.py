"""Memory per idle token.

    python benchmarks/bench_memory.py [--quick]

Everything a pool allocates for 100,000 idle tokens (their Token objects, slots,
aiolimiter windows, index entries, names), measured with tracemalloc, divided by the
token count. The secret strings themselves are the caller's and are made before
measuring. Target: at most 1 KiB per token. The ratio baseline is a bare
``aiolimiter.AsyncLimiter`` per token, measured the same way.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable

from _common import Figure, Report, finish, quick, secrets
from aiolimiter import AsyncLimiter

from aurora_async import Limit, TokenPool


def allocated(build: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = build()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del kept
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def main() -> int:
    n = 20_000 if quick() else 100_000
    values = secrets(n, "ghp")
    pool = allocated(lambda: TokenPool(values, limits=Limit(10, per=1.0)))
    bare = allocated(lambda: [AsyncLimiter(10, 1.0) for _ in values])
    report = Report("memory")
    per_token = pool / n
    report.add(Figure("pool, per idle token", per_token, "bytes", "<= 1024", per_token <= 1024))
    report.add(Figure("bare AsyncLimiter, per token", bare / n, "bytes"))
    report.add(Figure("pool / bare AsyncLimiter", pool / bare, "x"))
    report.notes.append(f"{n:,} tokens with one limit window each, tracemalloc.")
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
