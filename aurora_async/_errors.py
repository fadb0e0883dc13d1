"""Every exception aurora_async raises on purpose.

::

    AuroraError                     base of everything below
    ├── TokenFileError              a token file is missing, empty or malformed
    │                               (.path, .line: where; never the token itself)
    ├── NoTokensAvailable           every token is disabled or removed; raised at once,
    │                               also to callers already waiting
    ├── LeaseTimeout                no token could be leased within ``timeout``
    │                               (also a ``TimeoutError``)
    ├── PoolClosed                  the pool was closed (or closed while you waited)
    ├── RequestFailed               ``pool.request`` spent its retry budget
    │                               (.attempts: what each try did, by masked token name)
    └── BackendUnavailable          the shared backend (Redis) is unreachable and the
                                    failure policy is ``fail-closed``

Messages say what went wrong, where, and what to do about it. None of them ever carries
a token's secret value: tokens appear only by their masked name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


class AuroraError(Exception):
    """Base class of every error raised by aurora_async."""


class TokenFileError(AuroraError, ValueError):
    """A token file (or token source) cannot be used.

    ``path`` is the file that was read (or looked for) and ``line`` the 1-based line
    number of the offending line, or ``None`` when the problem is the file as a whole.
    """

    def __init__(
        self, message: str, *, path: str | os.PathLike[str] | None, line: int | None = None
    ):
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.reason = message
        where = self.path or "<tokens>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class NoTokensAvailable(AuroraError):
    """No token can take a lease, now or later: all are disabled or removed."""


class LeaseTimeout(AuroraError, TimeoutError):
    """No token became free for the lease within its timeout."""


class PoolClosed(AuroraError, RuntimeError):
    """The pool is closed; it takes no new leases."""


class BackendUnavailable(AuroraError, ConnectionError):
    """The shared state backend cannot be reached and the policy is to fail closed."""


class RequestFailed(AuroraError):
    """``pool.request`` gave up: every attempt failed and the retry budget is spent.

    ``attempts`` lists one line per attempt, such as ``"sk-a…9f2c: 503"`` or
    ``"sk-b…77aa: ClientConnectorError"``; ``status`` is the last response's status, if
    any (set when ``raise_for_status`` turned an error response into this exception).
    """

    def __init__(
        self,
        method: str,
        url: str,
        attempts: Sequence[str],
        why: str,
        *,
        status: int | None = None,
    ):
        self.method = method
        self.url = url
        self.attempts = tuple(attempts)
        self.why = why
        #: The final response's status, when there was one (``raise_for_status``).
        self.status = status
        tried = "; ".join(self.attempts) or "none"
        super().__init__(
            f"{method} {url} failed after {len(self.attempts)} attempt(s) ({why}); tried: {tried}"
        )


def check_positive_int(name: str, value: int | None) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a positive int or ``None``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


# -- the texts of errors raised in more than one place ------------------------------------


def no_tokens_why(usable: int, cost: float | None = None) -> str:
    """Why no usable token can serve a lease (of ``cost``, where one is known): ``usable``
    is how many tokens are still in service."""
    if usable:
        what = "this cost" if cost is None else f"cost {cost:g}"
        return f"no usable token left can take {what}"
    return "every token is disabled or removed"


def no_tokens_error(usable: int, cost: float | None = None) -> NoTokensAvailable:
    """The error for :func:`no_tokens_why`."""
    return NoTokensAvailable(f"{no_tokens_why(usable, cost)}; see pool.stats() for the reasons")


def lease_timeout_error(cost: float, waited: float, why: str) -> LeaseTimeout:
    """A lease of ``cost`` that waited ``waited`` seconds in vain; ``why`` says what the
    pool saw (how many tokens, who else waits, which token comes soonest)."""
    return LeaseTimeout(
        f"no token could take a lease of cost {cost:g} within {waited:.3f}s ({why}). "
        "Raise the timeout, add tokens, or lower the load; pool.stats() shows each "
        "token's state."
    )
