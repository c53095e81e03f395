"""``python -m rtbridge.demo``: the same as ``rtbridge demo``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
