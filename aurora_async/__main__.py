"""``python -m aurora_async``: the ``aurora-async`` command-line tool."""

from __future__ import annotations

import sys

from aurora_async._cli import main

if __name__ == "__main__":
    sys.exit(main())
