"""``Token``: one access token and its limits, shown everywhere by a masked name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .limits import Limit

ELLIPSIS = "…"


def mask(secret: str) -> str:
    """The display name of a secret: at most 8 of its characters, never the whole.

    Long secrets show 4 characters at each end (``sk-a…9f2c``); shorter ones show
    proportionally less, and secrets under 4 characters show none, so a name never
    reveals more than half of a secret.
    """
    keep = min(4, len(secret) // 4)
    if keep == 0:
        return f"{ELLIPSIS}({len(secret)})"
    return f"{secret[:keep]}{ELLIPSIS}{secret[-keep:]}"


def as_limits(limits: Limit | Iterable[Limit] | None, where: str) -> tuple[Limit, ...] | None:
    if limits is None:
        return None
    if isinstance(limits, Limit):
        return (limits,)
    result = tuple(limits)
    if not result:
        raise ValueError(f"{where}: limits must hold at least one Limit (or be None)")
    for item in result:
        if not isinstance(item, Limit):
            raise TypeError(f"{where}: limits must be Limit objects, not {type(item).__name__}")
    return result


@dataclass(frozen=True, slots=True)
class Token:
    """One access token.

    ``value`` is the secret; it is never shown: ``repr``, ``str``, stats, logs and errors
    use :attr:`name`. ``limits`` overrides the pool's default limits for this token (a
    lease needs room in every one of them). ``max_in_flight`` caps how many leases of this
    token may be out at once (``None``: the pool's setting).
    """

    value: str = field(repr=False)
    limits: tuple[Limit, ...] | None = None
    max_in_flight: int | None = None
    name: str = field(init=False, compare=False)

    def __init__(
        self,
        value: str,
        limits: Limit | Sequence[Limit] | None = None,
        *,
        max_in_flight: int | None = None,
    ) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Token value must be a str, not {type(value).__name__}")
        if not value or not _plain(value):
            raise ValueError(
                "Token value must be non-empty, with no white space or control characters "
                f"(token {mask(value.strip())!s})"
            )
        if max_in_flight is not None and (
            isinstance(max_in_flight, bool)
            or not isinstance(max_in_flight, int)
            or max_in_flight < 1
        ):
            raise ValueError(f"Token {mask(value)}: max_in_flight must be a positive int or None")
        name = mask(value)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "limits", as_limits(limits, f"Token {name}"))
        object.__setattr__(self, "max_in_flight", max_in_flight)
        object.__setattr__(self, "name", name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        extra = f", limits={list(self.limits)!r}" if self.limits else ""
        if self.max_in_flight is not None:
            extra += f", max_in_flight={self.max_in_flight}"
        return f"Token({self.name!r}{extra})"


def _plain(value: str) -> bool:
    """No white space and no control character (below U+0020) in ``value``. Printable
    text without a space has neither (every other white space character is not
    printable), which a C loop checks; only other text is looked at character by
    character (it may hold invisible characters that are allowed)."""
    if value.isprintable() and " " not in value:
        return True
    return not any(c.isspace() or ord(c) < 32 for c in value)


def as_token(item: str | Token) -> Token:
    if isinstance(item, Token):
        return item
    if isinstance(item, str):
        return Token(item)
    raise TypeError(f"tokens must be str or Token, not {type(item).__name__}")
