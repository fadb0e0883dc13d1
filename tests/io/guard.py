"""Run a piece of a test in a forked child, so that a regression fails instead of hanging.

A FIFO opened for reading blocks in the kernel, and reading ``/dev/zero`` whole fills the
memory: neither can be interrupted from the event loop nor with a timeout inside the
process. The child gets a deadline (it is killed when it passes) and a cap on its address
space (``MemoryError`` beyond it); the parent gets back what the function returned, or
the name and message of what it raised, or an ``AssertionError`` saying it hung.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

#: Real seconds a guarded call may take (they take milliseconds when nothing hangs).
DEADLINE = 10.0
#: Bytes the child may allocate beyond what it has when it starts.
MEMORY = 512 * 1024 * 1024


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")  # pragma: no cover


def _child(fn: Callable[[], Any], out: int, memory: int) -> None:
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = _vm_size() + memory
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        outcome: tuple[Any, ...]
        try:
            outcome = ("returned", fn())
        except BaseException as exc:  # everything goes back to the parent
            outcome = ("raised", type(exc).__name__, str(exc))
        data = pickle.dumps(outcome)
        while data:
            data = data[os.write(out, data) :]
    finally:
        os._exit(0)


def guarded(fn: Callable[[], Any], *, seconds: float = DEADLINE, memory: int = MEMORY) -> Any:
    """``fn()`` run in a child process; returns ``("returned", value)`` or
    ``("raised", exception type name, message)``. Raises ``AssertionError`` if the child
    is still running after ``seconds`` (it is killed) or died without an answer."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage is not collected there
        os.close(read_end)
        _child(fn, write_end, memory)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"hung: still running after {seconds:g} s (killed)")
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not chunks:
        raise AssertionError("the child died without an answer")
    return pickle.loads(b"".join(chunks))
