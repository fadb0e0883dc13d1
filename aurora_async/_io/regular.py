"""Read a file that must be a regular file, without blocking and without reading too much.

A FIFO opened for reading blocks until a writer comes, ``/dev/zero`` and ``/dev/urandom``
never end, and a mistyped path may name any of them. So a file is opened with
``O_NONBLOCK`` (opening a FIFO then returns at once), the opened descriptor is checked with
``fstat`` (no race with a file swapped in between a check and the open), anything but a
regular file is refused, and at most ``limit + 1`` bytes are ever read.

Everything here is blocking disk I/O: call it from a worker thread when an event loop runs.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

__all__ = ["NotRegular", "TooLarge", "describe_kind", "read_regular", "special_kind"]

#: Flags for opening: never block (FIFOs), never become our controlling terminal (ttys),
#: not inherited by child processes.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def describe_kind(mode: int) -> str:
    """What a file of ``mode`` (``st_mode``) is, for a message: ``"a FIFO (named pipe)"``."""
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


@dataclass(frozen=True, slots=True)
class NotRegular:
    """The file was not read: it is a directory, FIFO, device or socket (``kind``)."""

    path: str
    kind: str

    @property
    def is_directory(self) -> bool:
        return self.kind == "a directory"


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The file was not read: it holds more than ``limit`` bytes (``size``, when known)."""

    path: str
    limit: int
    size: int | None


def read_regular(path: str | os.PathLike[str], *, limit: int) -> bytes | NotRegular | TooLarge:
    """The bytes of the regular file at ``path`` (symbolic links followed), or why they
    were not read: :class:`NotRegular` for anything but a regular file, :class:`TooLarge`
    when it holds more than ``limit`` bytes (known from its size, or found by reading
    ``limit + 1`` bytes for files whose size says nothing, as in ``/proc``).

    Raises the ``OSError`` of the open or the read (``FileNotFoundError``,
    ``PermissionError``...).
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError:
        kind = special_kind(name)  # a socket cannot be opened at all (ENXIO)
        if kind is not None:
            return NotRegular(name, kind)
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return NotRegular(name, describe_kind(info.st_mode))
        if info.st_size > limit:
            return TooLarge(name, limit, info.st_size)
        chunks: list[bytes] = []
        total = 0
        want = min(info.st_size + 1, limit + 1)  # one read for an honest size
        while True:
            chunk = os.read(fd, min(want, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                return TooLarge(name, limit, None)
            want = _CHUNK
    finally:
        os.close(fd)


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it exists and is not a regular file (symbolic links followed),
    else ``None``: checked before replacing a file, so a FIFO or a device is never
    clobbered."""
    try:
        info = os.stat(os.fspath(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return None if stat.S_ISREG(info.st_mode) else describe_kind(info.st_mode)
