"""What rtbridge tells users to load is the vendor JS SDK build the wire tests run.

The wire tests install pusher-js, pubnub and firebase from ``tests/wire/package-lock.json``;
every SDK URL an error message, a doc or the demo names must be that version, so a user who
follows a message gets the build we tested (bump both together).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = json.loads((ROOT / "tests" / "wire" / "package-lock.json").read_text(encoding="utf-8"))

#: SDK URL patterns (the version is group 1) and the npm package each comes from.
PATTERNS = {
    r"https://js\.pusher\.com/([0-9.]+)/pusher(?:\.min)?\.js": "pusher-js",
    r"https://cdn\.pubnub\.com/sdk/javascript/pubnub\.([0-9.]+)(?:\.min)?\.js": "pubnub",
    r"https://www\.gstatic\.com/firebasejs/([0-9.]+)/": "firebase",
}

SOURCES = [
    *sorted((ROOT / "rtbridge" / "clients" / "js" / "src").rglob("*.js")),
    *sorted((ROOT / "rtbridge").glob("demo/**/*.py")),
    *sorted((ROOT / "rtbridge").glob("templates/**/*.html")),
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "README.md",
]


def locked_version(package: str) -> str:
    version: str = LOCK["packages"][f"node_modules/{package}"]["version"]
    return version


@pytest.mark.parametrize("pattern, package", PATTERNS.items())
def test_every_sdk_url_names_the_tested_version(pattern: str, package: str) -> None:
    found = []
    for path in SOURCES:
        for match in re.finditer(pattern, path.read_text(encoding="utf-8")):
            found.append((path.relative_to(ROOT), match.group(1)))
    assert found, f"no {package} URL found: the pattern is stale"
    wrong = [(str(path), version) for path, version in found if version != locked_version(package)]
    assert not wrong, (
        f"{package} {locked_version(package)} is the tested build; these name another: {wrong}"
    )
