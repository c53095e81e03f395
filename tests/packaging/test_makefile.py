"""`make test` installs what a fresh Debian machine lacks, or says in one line what to run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .tools import REPO

pytestmark = pytest.mark.skipif(
    subprocess.run(["make", "--version"], capture_output=True, check=False).returncode != 0,
    reason="make not found",
)


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CI": "", **(env or {})},
        check=False,
    )


@pytest.fixture
def apt_get(tmp_path: Path) -> Path:
    """A stand-in for apt-get that records its arguments (nothing is installed)."""
    script = tmp_path / "apt-get"
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "apt.log"}\n', encoding="utf-8")
    script.chmod(0o755)
    return script


MISSING = [
    "CHROMIUM=/nonexistent/chromium",
    "REDIS_SERVER=/nonexistent/redis-server",
    "NGINX=/nonexistent/nginx",
]


def test_make_test_runs_the_system_packages_step_before_the_tests() -> None:
    result = make("-n", "test", *MISSING)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    install = next(i for i, line in enumerate(lines) if "apt-get install -y -qq$missing" in line)
    pytest_run = next(i for i, line in enumerate(lines) if line.endswith("-m pytest"))
    npm_test = next(i for i, line in enumerate(lines) if line.endswith("npm test"))
    assert install < npm_test < pytest_run
    # .ci/run only calls it: every install step lives in the Makefile.
    assert (REPO / ".ci" / "run").read_text(encoding="utf-8").rstrip().endswith("exec make test")


def test_as_root_the_missing_packages_are_installed(apt_get: Path) -> None:
    result = make("system-deps", *MISSING, "USER_ID=0", f"APT_GET={apt_get}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        result.stdout
        == "make: installing chromium redis-server nginx (Debian packages the tests need)\n"
    )
    log = (apt_get.parent / "apt.log").read_text(encoding="utf-8").splitlines()
    assert log == ["update -qq", "install -y -qq chromium redis-server nginx"]


def test_not_root_one_line_says_what_to_run_and_ci_fails(apt_get: Path) -> None:
    args = ["system-deps", *MISSING, "USER_ID=1000", f"APT_GET={apt_get}"]
    line = (
        "make: the tests need chromium redis-server nginx; run: "
        "sudo apt-get update && sudo apt-get install -y chromium redis-server nginx\n"
    )
    local = make(*args)
    assert (local.returncode, local.stdout) == (0, line)  # locally the browser tests skip
    in_ci = make(*args, env={"CI": "true"})
    assert in_ci.returncode != 0
    assert in_ci.stdout == line
    assert not (apt_get.parent / "apt.log").exists()


def test_nothing_happens_when_the_packages_are_there(apt_get: Path, tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n", encoding="utf-8")
    chromium.chmod(0o755)
    result = make(
        "system-deps",
        f"CHROMIUM={chromium}",
        "REDIS_SERVER=sh",
        f"NGINX={chromium}",  # any executable
        f"APT_GET={apt_get}",
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert not (apt_get.parent / "apt.log").exists()


def test_an_old_python_is_refused_in_one_line(tmp_path: Path) -> None:
    python = tmp_path / "python3.9"
    python.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.9.2" && exit 0\nexit 1\n',
        encoding="utf-8",
    )
    python.chmod(0o755)
    result = make("venv", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0
    assert result.stdout.splitlines() == [
        f"make: rtbridge needs Python 3.10 or newer, and PYTHON={python} is Python 3.9.2; "
        "run make with PYTHON=python3.12 (or another 3.10+ interpreter)."
    ]
    assert not (tmp_path / "venv").exists()
    missing = make("venv", "PYTHON=/nonexistent/python3", f"VENV={tmp_path / 'venv'}")
    assert missing.returncode != 0
    assert "PYTHON=/nonexistent/python3 is not found;" in missing.stdout


@pytest.mark.skipif(
    subprocess.run(["node", "--version"], capture_output=True, check=False).returncode != 0,
    reason="node not found",
)
def test_this_machines_node_passes_the_check() -> None:
    # Node 20 throws on process.exit(false): a check written that way refuses every Node.
    result = make("node-check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_an_old_node_is_refused_in_one_line(tmp_path: Path) -> None:
    old_node = tmp_path / "node"
    old_node.write_text(
        '#!/bin/sh\n[ "$1" = --version ] && echo v18.19.0 && exit 0\n'
        "exec node -e \"Object.defineProperty(process.versions, 'node', {value: '18.19.0'}); $2\"\n",
        encoding="utf-8",
    )
    old_node.chmod(0o755)
    result = make("node-check", f"NODE={old_node}")
    assert result.returncode != 0
    assert result.stdout.splitlines() == [
        f"make: the tests need Node.js 20 or newer (with npm), and {old_node} is v18.19.0; "
        "install Node.js 20+ and npm (on Debian 13: sudo apt-get install -y nodejs npm)."
    ]


def test_a_missing_node_is_refused_in_one_line() -> None:
    result = make("node-check", "NODE=/nonexistent/node")
    assert result.returncode != 0
    assert result.stdout.splitlines() == [
        "make: the tests need Node.js 20 or newer (with npm), and /nonexistent/node is not found; "
        "install Node.js 20+ and npm (on Debian 13: sudo apt-get install -y nodejs npm)."
    ]


def test_the_min_sdk_pins_are_the_minimums_pyproject_allows() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    minimums = {}
    for extra in ("pusher", "pubnub", "firebase"):
        (requirement,) = extras[extra]
        name, low = re.fullmatch(r"([\w-]+)>=([\d.]+),<\d+", requirement).groups()
        minimums[name] = low
    recipe = (REPO / "Makefile").read_text(encoding="utf-8")
    pins = dict(re.findall(r"'([\w-]+)==([\d.]+)'", recipe))
    # 3.3.1 pins '3.3.1', but a range '>=10.7' means 10.7.0.
    assert {name: pins[name] for name in minimums} == {
        name: low if low.count(".") == 2 else f"{low}.0" for name, low in minimums.items()
    }
