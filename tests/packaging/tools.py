"""Paths and the Node tools the packaging tests use (from the JS client's node_modules)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rtbridge.staticfiles import JS_DIR
from tests.services import missing_service

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = JS_DIR / "node_modules"
TSC = NODE_MODULES / "typescript" / "bin" / "tsc"
ESBUILD = NODE_MODULES / "esbuild" / "bin" / "esbuild"


def node() -> str:
    """Return the ``node`` binary; skip (fail under CI) without it or the JS dev packages."""
    found = shutil.which("node")
    if found is None:
        missing_service("node not found (install Node.js 20)")
    if not TSC.exists() or not ESBUILD.exists():
        missing_service(f"{NODE_MODULES} lacks typescript/esbuild (run `make node-deps`)")
    return found  # type: ignore[return-value]


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd``; fail the test with its output when it exits non-zero."""
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result
