"""Find and read the token file (or the ``AURORA_TOKENS`` variable): the I/O edge.

Parsing is in :mod:`aurora_async._core.tokenfile`; this module only decides where to
look, reads the bytes and turns every way that can fail into a :class:`TokenFileError`
that says where it looked, why it was there, and how to point the library elsewhere.
No message ever carries a token.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from aurora_async._core.tokenfile import ParsedTokens, parse_token_list, parse_token_text
from aurora_async._errors import TokenFileError

__all__ = [
    "DEFAULT_FILE",
    "ENV_FILE",
    "ENV_TOKENS",
    "read_token_env",
    "read_token_file",
    "resolve_token_path",
]

ENV_FILE = "AURORA_TOKENS_FILE"
ENV_TOKENS = "AURORA_TOKENS"
DEFAULT_FILE = "access_tokens.txt"

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
    dangling symbolic link, empty, or malformed; the message says which path was used,
    how it was chosen and what to do.
    """
    found, how, workdir = _resolve(path, environ, cwd)
    where = f"{how}; working directory: {workdir}"
    try:
        data = found.read_bytes()
    except FileNotFoundError:
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
        raise TokenFileError(f"{message} {_hints(found)}", path=found) from None
    except IsADirectoryError:
        raise TokenFileError(_directory_message(found, where), path=found) from None
    except PermissionError:
        if os.path.isdir(found):  # Windows reports a directory as "permission denied"
            raise TokenFileError(_directory_message(found, where), path=found) from None
        raise TokenFileError(_permission_message(found, where), path=found) from None
    except OSError as exc:
        raise TokenFileError(
            f"cannot read the token file {found} ({where}): {exc.strerror or exc}. {_hints(found)}",
            path=found,
        ) from None
    try:
        return parse_token_text(data, source=str(found))
    except TokenFileError as exc:
        if exc.line is not None:
            raise
        raise TokenFileError(
            f"{exc.reason} ({where}). {_hints(found)}", path=found, line=None
        ) from None


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
