"""``aurora-async``, the command-line tool: ``check``, ``demo``, ``plan`` and ``bench``.

It needs the ``cli`` extra (typer and rich), imported only here, when the tool runs:
``import aurora_async`` never needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

EXTRA_HINT = "pip install 'aurora_async[cli]'"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool with ``argv`` (default: the process's arguments); the exit status."""
    try:
        import rich  # noqa: F401
        import typer  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "typer or rich"
        sys.stderr.write(
            f"aurora-async: the command-line tool needs the 'cli' extra ({missing} is not "
            f"installed): {EXTRA_HINT}\n"
        )
        return 2
    from .app import run

    return run(sys.argv[1:] if argv is None else list(argv))
