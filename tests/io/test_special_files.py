"""A FIFO, ``/dev/zero``, ``/dev/urandom`` or a socket as the token file or the state file,
and token files too large to read: each is refused at once, with a message that says what
the file is, instead of blocking forever or filling the memory (issue 12).

Each case runs in a forked child with a deadline and a memory cap (``tests/io/guard.py``):
before the fix these cases hung or ran out of memory, and a regression must fail the test,
not hang the run. Only the library's long-standing entry points are used, so each test
fails against the code before the fix.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aurora_async import Limit, StateFile, TokenFileError, TokenPool, TokenState
from aurora_async._core.tokens import mask
from aurora_async._io.tokenfile import read_token_file

from .guard import guarded

A = "sk-live-aaaa-0123456789abcdef"
B = "sk-live-bbbb-0123456789abcdef"
FIFO = "a FIFO (named pipe)"
DEVICE = "a character device"


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO in ``tmp_path``. Afterwards, any reader still blocked on it (a regression,
    in a thread of this process) is let go: a writer opens it and closes at once."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # no reader left (ENXIO), or the FIFO is gone
            return
        os.close(fd)


def unix_socket(tmp_path: Path) -> Path:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


def token_error(call: Callable[[], object]) -> tuple[str | None, int | None, str]:
    """What ``call()`` raised: a TokenFileError's path, line and reason."""
    try:
        call()
    except TokenFileError as exc:
        return exc.path, exc.line, exc.reason
    raise AssertionError("no TokenFileError")


def special(tmp_path: Path, which: str) -> tuple[Path, str]:
    """The special file ``which`` and what the library must call it."""
    if which == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
        return path, FIFO
    if which == "socket":
        return unix_socket(tmp_path), "a socket"
    return Path(which), DEVICE


SPECIALS = ["fifo", "/dev/zero", "/dev/urandom", "socket", "/dev/null"]


# -- the token file ------------------------------------------------------------------------


@pytest.mark.parametrize("which", SPECIALS)
def test_a_special_file_given_by_path_is_refused(tmp_path: Path, which: str) -> None:
    path, kind = special(tmp_path, which)
    outcome = guarded(lambda: token_error(lambda: read_token_file(path, environ={})))
    assert outcome[0] == "returned"
    found, line, reason = outcome[1]
    assert (found, line) == (str(path), None)
    assert reason.startswith(f"{path} is {kind}, not a regular file (given; working directory: ")
    assert "AURORA_TOKENS_FILE" in reason  # how to point elsewhere
    assert "docker run" not in reason  # the hint of a missing file is not this case's


@pytest.mark.parametrize("which", SPECIALS)
def test_a_special_file_from_the_environment_is_refused_by_from_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    path, kind = special(tmp_path, which)
    monkeypatch.setenv("AURORA_TOKENS_FILE", str(path))
    outcome = guarded(lambda: token_error(TokenPool.from_file))
    assert outcome[0] == "returned"
    found, line, reason = outcome[1]
    assert (found, line) == (str(path), None)
    assert reason.startswith(f"{path} is {kind}, not a regular file (from $AURORA_TOKENS_FILE;")


def test_a_huge_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    path.write_bytes(b"")
    os.truncate(path, 1 << 40)  # 1 TiB of holes: reading it whole would need 1 TiB
    outcome = guarded(lambda: token_error(lambda: read_token_file(path, environ={})))
    assert outcome[0] == "returned"
    _, line, reason = outcome[1]
    assert line is None
    assert reason == (
        f"{path} is too large for a token file: 1,099,511,627,776 bytes, over the limit of "
        f"67,108,864 bytes (given; working directory: {Path.cwd()}). Is it the right file? "
        "To read a larger token file, set AURORA_TOKENS_MAX_BYTES to its size in bytes or "
        "more."
    )


def test_the_size_limit_can_be_raised_or_lowered(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(f"{A}\n{B}\n".encode())  # 58 bytes
    size = path.stat().st_size
    assert read_token_file(path, environ={"AURORA_TOKENS_MAX_BYTES": str(size)}).values == (A, B)
    _, line, reason = token_error(
        lambda: read_token_file(path, environ={"AURORA_TOKENS_MAX_BYTES": str(size - 1)})
    )
    assert line is None
    assert reason.startswith(
        f"{path} is too large for a token file: {size} bytes, over the limit of {size - 1} bytes"
    )


@pytest.mark.parametrize("value", ["0", "-5", "64MiB", "1e6", "lots"])
def test_a_bad_size_limit_is_an_error_naming_the_variable(tmp_path: Path, value: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(A)
    found, line, reason = token_error(
        lambda: read_token_file(path, environ={"AURORA_TOKENS_MAX_BYTES": value})
    )
    assert (found, line) == ("$AURORA_TOKENS_MAX_BYTES", None)
    assert reason == (
        "AURORA_TOKENS_MAX_BYTES must be a whole number of bytes > 0, e.g. 134217728 for "
        f"128 MiB, got {value!r}; unset it for the default of 64 MiB"
    )


# -- the token file, swapped for a special file while watched --------------------------------


def swap_in(path: Path, replacement: Path | str) -> None:
    """Replace ``path`` by a symbolic link to ``replacement``, atomically."""
    link = path.with_name(path.name + ".new")
    link.symlink_to(replacement)
    os.replace(link, path)


async def watch_a_swap(path: Path, replacement: Path | str) -> tuple[Any, ...]:
    pool = TokenPool.from_file(path, limits=Limit(5), watch=True, poll_interval=0.02)
    with capture_logs() as logs:
        async with pool:
            swap_in(path, replacement)
            for _ in range(1000):  # bounded: the next poll is 20 ms away
                failed = [e for e in logs if e["event"] == "aurora.tokens.reload_failed"]
                if failed:
                    break
                await asyncio.sleep(0.01)
            by_hand = await asyncio.to_thread(token_error, lambda: read_token_file(path))
            serving = [(t.name, t.state.value) for t in pool.stats().tokens]
        # leaving the block closed the pool: it did not wait on a reader stuck in a thread
    return [(e["path"], e["line"], e["error"]) for e in failed], by_hand[2], serving


@pytest.mark.parametrize("which", ["fifo", "/dev/zero", "/dev/urandom"])
def test_a_special_file_swapped_in_under_watch_keeps_the_last_good_set(
    tmp_path: Path, which: str
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A}\n")
    replacement, kind = special(tmp_path, which)
    outcome = guarded(lambda: asyncio.run(watch_a_swap(path, replacement)))
    assert outcome[0] == "returned", outcome
    failures, by_hand, serving = outcome[1]
    reason = f"{path} is {kind}, not a regular file (given; working directory: "
    assert len(failures) == 1
    [(where, line, error)] = failures
    assert (where, line) == (str(path), None)
    assert error.startswith(reason)
    assert by_hand.startswith(reason)
    assert serving == [(mask(A), TokenState.ACTIVE.value)]  # the last good set stays


# -- the state file ------------------------------------------------------------------------


async def open_and_close(state_file: Path) -> list[tuple[str, str]]:
    """Enter and leave a pool with ``state_file``; the state events, as (event, why)."""
    with capture_logs() as logs:
        async with TokenPool([A], state_file=state_file):
            pass
    return [
        (e["event"], str(e.get("reason", e.get("error"))))
        for e in logs
        if e["event"].startswith("aurora.state.")
    ]


def test_a_fifo_as_the_state_file_neither_blocks_nor_is_replaced(fifo: Path) -> None:
    outcome = guarded(lambda: asyncio.run(open_and_close(fifo)))
    assert outcome == (
        "returned",
        [
            ("aurora.state.corrupt", f"it is {FIFO}, not a regular file: not read"),
            (
                "aurora.state.save_failed",
                f"[Errno 22] {fifo} is {FIFO}, not a regular file: a save does not replace it",
            ),
        ],
    )
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the user's FIFO


def test_a_device_as_the_state_file_is_not_read_nor_replaced(tmp_path: Path) -> None:
    zero = tmp_path / "zero"  # a /dev/zero of our own: a save that went wrong hits only it
    try:
        os.mknod(zero, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        zero.open("rb").close()
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    outcome = guarded(lambda: asyncio.run(open_and_close(zero)))
    assert outcome == (
        "returned",
        [
            ("aurora.state.corrupt", f"it is {DEVICE}, not a regular file: not read"),
            (
                "aurora.state.save_failed",
                f"[Errno 22] {zero} is {DEVICE}, not a regular file: a save does not replace it",
            ),
        ],
    )
    assert stat.S_ISCHR(zero.stat().st_mode)


async def load_device(path: str) -> tuple[int, list[tuple[str, str]]]:
    async with TokenPool([A]) as pool:
        with capture_logs() as logs:
            restored = StateFile(path).load_into(pool)
    return restored, [(e["event"], e["reason"]) for e in logs]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_loading_a_device_as_the_state_file_is_refused(device: str) -> None:
    outcome = guarded(lambda: asyncio.run(load_device(device)))
    reason = f"it is {DEVICE}, not a regular file: not read"
    assert outcome == ("returned", (0, [("aurora.state.corrupt", reason)]))
