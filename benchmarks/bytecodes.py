"""Python frames entered and bytecodes run per request of ``bench_http.py``'s
unlimited-server part, by package and, for aurora_async, by function (not a ``bench_*``
script: ``dev.py bench`` skips it).

    python benchmarks/bytecodes.py request|plain [N] [--loop asyncio|uvloop]

``request``: ``pool.get`` (the body read); ``plain``: plain aiohttp (``await resp.read()``);
64 coroutines, one session, the server in its own process (not traced). A tracer
(``sys.settrace`` with ``f_trace_opcodes``) counts every frame entered (a call, or a
coroutine resumed) and every bytecode run, in a run of 200 requests and one of
200 + N (default 1,000): the difference over N is per request, start-up cancelled.
Counts in C code (aiohttp's parser, multidict, yarl, the event loop's C parts, uvloop)
are not seen: ``instructions.py`` under callgrind counts those.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from types import CodeType, FrameType
from typing import Any

from bench_http import CONCURRENCY, LOOPS, run_on, throughput, unlimited_server

GROUPS = ("aurora_async", "aiohttp", "asyncio", "uvloop", "yarl", "multidict", "bench_http")


def group(code: CodeType) -> str:
    for name in GROUPS:
        if f"/{name}/" in code.co_filename or code.co_filename.endswith(f"/{name}.py"):
            return name
    return code.co_filename.rsplit("/", 1)[-1]


def traced(client: str, loop: str, url: str, n: int) -> tuple[Counter[CodeType], Counter[CodeType]]:
    """Frames entered and bytecodes run, per code object, in ``n`` requests."""
    frames: Counter[CodeType] = Counter()
    ops: Counter[CodeType] = Counter()

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            ops[frame.f_code] += 1
        return local

    def entered(frame: FrameType, event: str, arg: Any) -> Any:
        frames[frame.f_code] += 1
        frame.f_trace_opcodes = True
        return local

    sys.settrace(entered)
    try:
        run_on(loop, throughput(client, url, n, CONCURRENCY))
    finally:
        sys.settrace(None)
    return frames, ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=["request", "plain"])
    parser.add_argument("n", type=int, nargs="?", default=1000)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args()
    client = "pool" if args.client == "request" else "aiohttp"
    with unlimited_server() as url:
        run_on(args.loop, throughput(client, url, 300, CONCURRENCY))  # warm-up
        frames0, ops0 = traced(client, args.loop, url, 200)
        frames1, ops1 = traced(client, args.loop, url, 200 + args.n)
    frames = {k: (v - frames0[k]) / args.n for k, v in frames1.items()}
    ops = {k: (v - ops0[k]) / args.n for k, v in ops1.items()}
    print(
        f"{args.client} on {args.loop}: {sum(frames.values()):.1f} frames and "
        f"{sum(ops.values()):.0f} bytecodes per request"
    )
    by_frames: Counter[str] = Counter()
    by_ops: Counter[str] = Counter()
    for code, count in frames.items():
        by_frames[group(code)] += count
    for code, count in ops.items():
        by_ops[group(code)] += count
    print("| package | frames | bytecodes |\n| --- | --- | --- |")
    for name, count in by_ops.most_common():
        if count >= 0.5 or by_frames[name] >= 0.05:
            print(f"| {name} | {by_frames[name]:.1f} | {count:.0f} |")
    print("\n| aurora_async function | frames | bytecodes |\n| --- | --- | --- |")
    ours = [(count, code) for code, count in ops.items() if group(code) == "aurora_async"]
    for count, code in sorted(ours, key=lambda item: -item[0]):
        if count >= 0.5:
            where = code.co_filename.rsplit("aurora_async/", 1)[-1]
            print(f"| `{where}:{code.co_name}` | {frames[code]:.2f} | {count:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
