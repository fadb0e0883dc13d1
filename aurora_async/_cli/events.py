"""The pool's structlog events as short lines, for the demo's display.

The command-line tool is an application, so unlike the library it may configure
structlog: while :func:`capture_events` is active, token and pool events (``info`` and
up) become one-line descriptions handed to ``sink`` instead of being printed, and the
previous configuration comes back afterwards. :func:`condense` folds lines that say the
same of several tokens (a server's headers setting every token's limit at once) into one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = ["capture_events", "condense", "describe"]

_SHOWN = ("aurora.token.", "aurora.pool.", "aurora.tokens.")
#: What each limit event says happened to the token's effective limits.
_LIMITS = {
    "aurora.token.limit_lowered": "limit lowered",
    "aurora.token.limit_raised": "limit raised",
    "aurora.token.limit_from_header": "limit from the server's headers",
    "aurora.token.limit_restored": "limit restored",
}
#: A line about one token: its masked name (never more of the secret), then the rest.
_ABOUT_A_TOKEN = re.compile(r"(?P<name>\S*…\S*) (?P<rest>.+)")
#: Names shown before "and N more".
_NAMES = 2


def _limits(value: object) -> str:
    if isinstance(value, list | tuple):
        return " and ".join(str(v) for v in value)
    return str(value)


def _limit_change(name: str, event: MutableMapping[str, Any]) -> str:
    text = f"{event.get('token', '')} {_LIMITS[name]}"
    was, now = _limits(event.get("was", "")), _limits(event.get("limits", ""))
    text += f": {was} -> {now}" if was and was != now else f": {now}"
    reason = event.get("reason")
    return f"{text} ({reason})" if reason else text


def describe(event: MutableMapping[str, Any]) -> str | None:
    """One line for a token or pool event; ``None`` for events the demo leaves out."""
    name = str(event.get("event", ""))
    if not name.startswith(_SHOWN):
        return None
    token = event.get("token", "")
    if name == "aurora.token.disabled":
        return f"{token} disabled: {event.get('reason', '')}"
    if name == "aurora.token.cooling":
        return (
            f"{token} cooling down for {float(event.get('seconds', 0)):.2f} s ({event.get('why')})"
        )
    if name == "aurora.pool.low":
        return f"pool low: {event.get('active')} of {event.get('tokens')} tokens active"
    if name == "aurora.pool.recovered":
        return f"pool recovered: {event.get('active')} of {event.get('tokens')} tokens active"
    if name in _LIMITS:
        return _limit_change(name, event)
    return f"{name.removeprefix('aurora.')} {token}".rstrip()


def condense(lines: Sequence[str]) -> list[str]:
    """``lines`` with those that say the same of several tokens folded into one
    (``"a…1, b…2 and 3 more: limit raised ..."``) where the first of them came."""
    groups: dict[tuple[int, str], list[str]] = {}  # (-1, rest) or (position, line)
    for position, line in enumerate(lines):
        match = _ABOUT_A_TOKEN.fullmatch(line)
        if match is None:  # not about a token: kept as it is, in its place
            groups[position, line] = []
        else:
            groups.setdefault((-1, match["rest"]), []).append(match["name"])
    out = []
    for (_, rest), names in groups.items():
        if len(names) <= 1:
            out.append(f"{names[0]} {rest}" if names else rest)
            continue
        shown = ", ".join(names[:_NAMES])
        more = len(names) - _NAMES
        out.append(f"{shown} and {more} more: {rest}" if more > 0 else f"{shown}: {rest}")
    return out


@contextmanager
def capture_events(sink: Callable[[str], None]) -> Iterator[None]:
    """Route aurora_async's events to ``sink`` (as lines) while the block runs."""

    def collect(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
        line = describe(event)
        if line is not None:
            sink(line)
        raise structlog.DropEvent

    was_configured = structlog.is_configured()
    before = structlog.get_config()
    structlog.configure(
        processors=[collect],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**before)
        else:
            structlog.reset_defaults()
