"""The pool's structlog events as short lines, for the demo's display.

The command-line tool is an application, so unlike the library it may configure
structlog: while :func:`capture_events` is active, token and pool events (``info`` and
up) become one-line descriptions handed to ``sink`` instead of being printed, and the
previous configuration comes back afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog

__all__ = ["capture_events", "describe"]

_SHOWN = ("aurora.token.", "aurora.pool.", "aurora.tokens.")


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
    return f"{name.removeprefix('aurora.')} {token}".rstrip()


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
