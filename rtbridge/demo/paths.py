"""Where the demo keeps its data (no Django imports: the command line reads it before set-up)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """Return the per-user data directory: ``$XDG_DATA_HOME/rtbridge-demo`` or the XDG default."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "rtbridge-demo"
