"""structlog events of aurora_async, without ever configuring logging for the application.

If the application configured structlog, events go through its configuration. If it did
not, they go to the standard library logger ``aurora_async`` rendered as ``key=value``
text, so an application that configured nothing sees nothing on stdout and, through
logging's last-resort handler, only warnings and errors on stderr. (structlog's own
defaults would print every event to stdout: a library must not impose that.)

Event names are stable and namespaced: ``aurora.<area>.<what>``; see the README.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

STDLIB_LOGGER = logging.getLogger("aurora_async")

_fallback = structlog.wrap_logger(
    STDLIB_LOGGER,
    processors=[
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
    ],
    wrapper_class=structlog.stdlib.BoundLogger,
)


def enabled(level: int) -> bool:
    """Whether an event at ``level`` would go anywhere; cheap enough for hot paths."""
    return structlog.is_configured() or STDLIB_LOGGER.isEnabledFor(level)


def emit(level: int, event: str, **fields: Any) -> None:
    """Emit one event. Never pass a token's secret: pass its masked name."""
    if structlog.is_configured():
        structlog.get_logger("aurora_async").log(level, event, **fields)
    elif STDLIB_LOGGER.isEnabledFor(level):
        _fallback.log(level, event, **fields)


def debug(event: str, **fields: Any) -> None:
    emit(logging.DEBUG, event, **fields)


def info(event: str, **fields: Any) -> None:
    emit(logging.INFO, event, **fields)


def warning(event: str, **fields: Any) -> None:
    emit(logging.WARNING, event, **fields)


def error(event: str, **fields: Any) -> None:
    emit(logging.ERROR, event, **fields)
