"""``rtbridge demo`` and ``python -m rtbridge demo`` reach the demo (the console script's entry)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rtbridge.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_rtbridge_demo_runs_the_demo_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rtbridge", "demo", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--port", "--data-dir", "--backend", "--redis-url", "--reset"):
        assert option in result.stdout


def test_console_entry_point_reports_demo_errors(capsys: pytest.CaptureFixture[str]) -> None:
    # The entry point `rtbridge = rtbridge.__main__:main` (pyproject.toml) with a bad flag
    # combination: the demo's own one-line error, status 1.
    assert main(["demo", "--redis-url", "redis://127.0.0.1:1/0"]) == 1
    assert "--redis-url only applies to --backend redis" in capsys.readouterr().err
