"""Where the time goes, by function and by line, from a py-spy profile (not a
``bench_*`` script: ``dev.py bench`` skips it).

    pip install py-spy        # a binary; any virtualenv will do
    py-spy record -r 400 -f raw -o pool.raw -- .venv/bin/python -c "import asyncio, sys; \
        sys.path.insert(0, 'benchmarks'); import bench_saturated as b; \
        asyncio.run(b.run_pool_timeouts(10.0))"
    python benchmarks/spy_lines.py pool.raw [FRAME] [--top N]

Only samples inside the event loop (under ``run_forever``) count, so imports and set-up
drop out. Each sample is charged to its innermost Python line, with the C code that
line called (creating a future, a dict insertion), which no Python tracer sees.
``FRAME`` (a substring, e.g. ``PoolCore.dispatch``) keeps only the samples with that
frame on their stack: where one function's time goes.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

_FRAME = re.compile(r"(?P<name>.*) \((?P<path>.*):(?P<line>\d+)\)$")


def short(frame: str, *, line: bool) -> str:
    """``name (dir/file.py:line)`` of a py-spy frame: the file and its directory, so
    that two ``__init__.py`` stay apart."""
    m = _FRAME.match(frame)
    if m is None:
        return frame
    where = "/".join(m["path"].rsplit("/", 2)[-2:])
    return f"{m['name']} ({where}:{m['line']})" if line else f"{m['name']} ({where})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="py-spy's output with -f raw")
    parser.add_argument("frame", nargs="?", default="", help="keep the stacks through it")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    by_line: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    total = in_loop = 0
    with open(args.raw, encoding="utf-8") as raw:
        for number, row in enumerate(raw, 1):
            stack, _, count = row.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                print(f"{args.raw}:{number}: no sample count, skipped", file=sys.stderr)
                continue
            if "run_forever" not in stack:
                continue
            n = int(count)
            in_loop += n
            if args.frame not in stack:
                continue
            total += n
            leaf = stack.rsplit(";", 1)[-1]
            by_line[short(leaf, line=True)] += n
            by_function[short(leaf, line=False)] += n
    if not total:
        why = f"none through {args.frame!r}" if in_loop else "none inside the event loop"
        print(f"{args.raw}: no samples to show ({why})", file=sys.stderr)
        return 1
    print(f"{total:,} samples inside the loop\n\nby function:")
    for name, n in by_function.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("\nby line:")
    for name, n in by_line.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
