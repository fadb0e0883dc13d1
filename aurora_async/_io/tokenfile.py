"""Find and read the token file (or the ``AURORA_TOKENS`` variable): the I/O edge.

Parsing is in :mod:`aurora_async._core.tokenfile`; this module only decides where to
look, reads the bytes and turns every way that can fail into a :class:`TokenFileError`
that says where it looked, why it was there, and how to point the library elsewhere.
No message ever carries a token.

Only a regular file is read, and at most :data:`DEFAULT_MAX_BYTES` of it (or
``$AURORA_TOKENS_MAX_BYTES``): a FIFO, ``/dev/zero`` or another device is refused at once
instead of hanging or filling the memory (see :mod:`aurora_async._io.regular`). Reading is
blocking I/O: from a coroutine, call these functions in a worker thread.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from aurora_async import _log
from aurora_async._core.gcpause import gc_paused
from aurora_async._core.tokenfile import ParsedTokens, parse_token_list, parse_token_text
from aurora_async._core.tokens import Token
from aurora_async._errors import TokenFileError
from aurora_async._io.regular import NotRegular, TooLarge, read_regular

__all__ = [
    "DEFAULT_FILE",
    "DEFAULT_MAX_BYTES",
    "ENV_FILE",
    "ENV_MAX_BYTES",
    "ENV_TOKENS",
    "max_bytes",
    "read_token_bytes",
    "read_token_env",
    "read_token_file",
    "read_tokens",
    "resolve_token_path",
    "warn_duplicates",
]

ENV_FILE = "AURORA_TOKENS_FILE"
ENV_TOKENS = "AURORA_TOKENS"
ENV_MAX_BYTES = "AURORA_TOKENS_MAX_BYTES"
DEFAULT_FILE = "access_tokens.txt"
#: The largest token file read (64 MiB: over a million tokens with limits on every line).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

HOW_GIVEN = "given"
HOW_ENV = f"from ${ENV_FILE}"
HOW_DEFAULT = f"default ./{DEFAULT_FILE} in the working directory"

_LISTED = 5  # directory entries named in the "is a directory" message


def resolve_token_path(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[Path, str]:
    """Where the token file is, and how that was chosen.

    An explicit ``path`` wins (``"given"``); else ``$AURORA_TOKENS_FILE``
    (``"from $AURORA_TOKENS_FILE"``); else ``access_tokens.txt`` in the working directory
    (``"default ./access_tokens.txt in the working directory"``). A relative path is taken
    relative to ``cwd`` (default: the process's working directory) and ``~`` is expanded.
    The path is made absolute but symbolic links are not resolved, so messages show the
    path as the user wrote it. ``environ`` defaults to :data:`os.environ`.
    """
    found, how, _ = _resolve(path, environ, cwd)
    return found, how


def read_token_file(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ParsedTokens:
    """Read and parse the token file chosen as :func:`resolve_token_path` does.

    Raises :class:`TokenFileError` when the file is missing, unreadable, a directory, a
    dangling symbolic link, not a regular file (a FIFO, a device), larger than
    :func:`max_bytes`, empty, or malformed; the message says which path was used, how it
    was chosen and what to do.
    """
    found, how, workdir = _resolve(path, environ, cwd)
    where = f"{how}; working directory: {workdir}"
    data = read_token_bytes(found, where, environ=environ)
    try:
        with gc_paused(len(data) // 64):  # (its million-entry list is gone by the end)
            return parse_token_text(data, source=str(found))
    except TokenFileError as exc:
        if exc.line is not None:
            raise
        raise TokenFileError(f"{exc.reason} ({where}). {_empty_hint()}", path=found) from None


def read_tokens(path: str | os.PathLike[str] | None = None) -> list[Token]:
    """The tokens of a token file, in order, each once, as :class:`Token` objects.

    For building a token list of your own: a line's annotations (``limit=20/1s,burst=5``,
    ``max_in_flight=4``) become the token's ``limits`` and ``max_in_flight``; a token
    without them has ``limits=None`` (the pool's default). ``path`` ``None`` means
    ``$AURORA_TOKENS_FILE``, else ``./access_tokens.txt``. Duplicates are kept once, with a
    warning (``aurora.tokens.duplicate``). Raises :class:`TokenFileError`, as
    ``TokenPool.from_file`` does. Blocking file I/O: from a coroutine, run it in a thread
    (``await asyncio.to_thread(read_tokens, path)``).
    """
    parsed = read_token_file(path)
    warn_duplicates(parsed)
    return list(parsed.tokens)


def warn_duplicates(parsed: ParsedTokens) -> None:
    """Warn of each token a file or variable holds more than once, by masked name."""
    for dup in parsed.duplicates:
        _log.warning(
            "aurora.tokens.duplicate",
            source=parsed.source,
            token=dup.name,
            lines=list(dup.lines),
            kept_line=dup.lines[0],
        )


def max_bytes(environ: Mapping[str, str] | None = None) -> int:
    """The largest token file read: ``$AURORA_TOKENS_MAX_BYTES`` (a whole number of bytes)
    when set, else :data:`DEFAULT_MAX_BYTES`. Raises :class:`TokenFileError` for a value
    that is not a positive whole number."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_MAX_BYTES)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_BYTES
    text = raw.strip().replace("_", "")
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise TokenFileError(
            f"{ENV_MAX_BYTES} must be a whole number of bytes > 0, e.g. {2 * DEFAULT_MAX_BYTES} "
            f"for 128 MiB, got {raw[:40]!r}; unset it for the default of 64 MiB",
            path=f"${ENV_MAX_BYTES}",
        )
    return int(text)


def read_token_bytes(found: Path, where: str, *, environ: Mapping[str, str] | None = None) -> bytes:
    """The bytes of the token file ``found`` (chosen as ``where`` says), read without
    blocking and up to :func:`max_bytes`; every failure is a :class:`TokenFileError`."""
    limit = max_bytes(environ)
    try:
        data = read_regular(found, limit=limit)
    except FileNotFoundError:
        raise TokenFileError(_missing_message(found, where), path=found) from None
    except PermissionError:
        if os.path.isdir(found):  # Windows reports a directory as "permission denied"
            raise TokenFileError(_directory_message(found, where), path=found) from None
        raise TokenFileError(_permission_message(found, where), path=found) from None
    except OSError as exc:
        raise TokenFileError(
            f"cannot read the token file {found} ({where}): {exc.strerror or exc}. {_hints(found)}",
            path=found,
        ) from None
    if isinstance(data, NotRegular):
        if data.is_directory:
            raise TokenFileError(_directory_message(found, where), path=found)
        raise TokenFileError(_special_message(found, data.kind, where), path=found)
    if isinstance(data, TooLarge):
        raise TokenFileError(_too_large_message(found, data, where), path=found)
    return data


def read_token_env(
    var: str = ENV_TOKENS, *, environ: Mapping[str, str] | None = None
) -> ParsedTokens:
    """Parse the tokens held in the environment variable ``var``.

    Tokens are separated by newlines, commas or white space; the ``line`` of each entry
    is its position in the list. The source in messages is ``"$" + var``. Raises
    :class:`TokenFileError` when the variable is unset, holds no token, or holds a
    malformed one.
    """
    env = os.environ if environ is None else environ
    source = f"${var}"
    usage = (
        "set it to the tokens separated by newlines, commas or spaces, "
        f"or put them in a file, one per line, and set {ENV_FILE} to its path"
    )
    value = env.get(var)
    if value is None:
        raise TokenFileError(f"the environment variable is not set: {usage}", path=source)
    try:
        return parse_token_list(value, source=source)
    except TokenFileError as exc:
        if exc.line is not None:
            raise
        raise TokenFileError(f"{exc.reason}. To fix it, {usage}", path=source) from None


def _resolve(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    cwd: Path | None,
) -> tuple[Path, str, Path]:
    env = os.environ if environ is None else environ
    workdir = Path.cwd() if cwd is None else cwd
    if path is not None:
        raw = os.fspath(path)
        how = HOW_GIVEN
        if not raw:
            raise TokenFileError(
                "the token file path given is an empty string: pass the path of the file "
                f"(or None to use ${ENV_FILE}, else ./{DEFAULT_FILE})",
                path=None,
            )
    elif ENV_FILE in env:
        raw = env[ENV_FILE]
        how = HOW_ENV
        if not raw.strip():
            raise TokenFileError(
                f"{ENV_FILE} is set but empty: set it to the path of the token file, or "
                f"unset it to use ./{DEFAULT_FILE} in the working directory ({workdir})",
                path=f"${ENV_FILE}",
            )
    else:
        raw = DEFAULT_FILE
        how = HOW_DEFAULT
    found = Path(raw).expanduser()
    if not found.is_absolute():
        found = workdir / found
    return found, how, workdir


def _missing_message(found: Path, where: str) -> str:
    if os.path.islink(found):
        target = os.readlink(found)
        message = (
            f"{found} is a symbolic link to {target}, which does not exist ({where}). "
            "Check that the link's target is mounted: a volume or secret that is not "
            "mounted, or a key that was removed from a Kubernetes secret, leaves such a "
            "link behind."
        )
    else:
        message = f"token file not found: {found} ({where})."
        if not os.path.isdir(found.parent):
            message += f" The directory {found.parent} does not exist either."
        if any(part != part.strip() for part in found.parts):
            message += " Note: the path has a part with leading or trailing white space."
    return f"{message} {_hints(found)}"


def _empty_hint() -> str:
    return (
        "The file is there but holds no token: fill it, or point the library at the file "
        f"that holds them: pass its path (TokenPool.from_file(path=...)) or set {ENV_FILE}. "
        "In a container, an empty file at the mount point usually means the secret itself "
        "is empty: check its contents on the host or in the secret store."
    )


def _special_message(found: Path, kind: str, where: str) -> str:
    return (
        f"{found} is {kind}, not a regular file ({where}); it is not read, as it may never "
        "end or never arrive. Put the tokens in a regular file, one per line, and pass its "
        f"path or set {ENV_FILE} to it; to hand tokens over from a program or a pipe, set "
        f"{ENV_TOKENS} instead (TokenPool.from_env)."
    )


def _too_large_message(found: Path, exc: TooLarge, where: str) -> str:
    size = f"{exc.size:,} bytes" if exc.size is not None else f"more than {exc.limit:,} bytes"
    return (
        f"{found} is too large for a token file: {size}, over the limit of {exc.limit:,} "
        f"bytes ({where}). Is it the right file? To read a larger token file, set "
        f"{ENV_MAX_BYTES} to its size in bytes or more."
    )


def _hints(found: Path) -> str:
    return (
        "To use another file, pass its path (TokenPool.from_file(path=...)) or set "
        f"{ENV_FILE}=/path/to/{DEFAULT_FILE}. In a container, mount the file at this path, "
        f"e.g. `docker run -v ./{DEFAULT_FILE}:{found}:ro ...`, or mount a Kubernetes "
        f"secret as a volume and set {ENV_FILE} to the key's file inside it."
    )


def _directory_message(found: Path, where: str) -> str:
    try:
        names = sorted(entry for entry in os.listdir(found) if not entry.startswith(".."))
    except OSError:
        contents = ""
    else:
        if not names:
            contents = " It is empty."
        else:
            shown = ", ".join(names[:_LISTED])
            more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
            contents = f" It contains: {shown}{more}."
    return (
        f"{found} is a directory, not a file ({where}).{contents} "
        "In Docker this usually means the host file did not exist when the container "
        "started, so Docker created an empty directory in its place: check the host path "
        "of -v/--mount (use an absolute path to an existing file). A Kubernetes secret "
        f"volume is a directory too: set {ENV_FILE} to the key's file inside it, or mount "
        f"the key alone with subPath. {_hints(found)}"
    )


def _permission_message(found: Path, where: str) -> str:
    try:
        info = found.stat()
    except OSError:
        owner = " (or a directory on the way to it cannot be searched by this user)"
    else:
        owner = (
            f"; the file is owned by user id {info.st_uid}, group id {info.st_gid}, "
            f"mode {stat.filemode(info.st_mode)}"
        )
    return (
        f"permission denied reading {found} ({where}). This process runs as "
        f"{_user()}{owner}. Containers often run as a non-root user: make the file "
        "readable by that user, e.g. chmod 0444 or chown on the host, --user in Docker, or "
        "defaultMode / fsGroup on a Kubernetes secret volume."
    )


def _user() -> str:
    if sys.platform == "win32":  # pragma: no cover
        return "the current user"
    return f"user id {os.geteuid()}, group id {os.getegid()}"
