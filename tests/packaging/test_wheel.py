"""`python -m build` makes a wheel and an sdist; the wheel, alone in a clean venv, runs `rtbridge demo`."""

from __future__ import annotations

import http.cookiejar
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from rtbridge.staticfiles import STATIC_DIR
from tests.services import free_port, missing_service, wait_for_port

from .tools import REPO, run

# Building, then installing Django and Tornado into a new venv: about a minute.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("build") is None:
        missing_service("the `build` package is not installed (pip install -e '.[test]')")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out, timeout=300)
    return out


def only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_the_wheel_ships_the_builds_and_templates_but_no_js_tooling(dist: Path) -> None:
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        names = set(wheel.namelist())
        shipped = wheel.read("rtbridge/static/rtbridge/rtbridge.selfhosted.js")
        licence = wheel.read(next(n for n in names if n.endswith(".dist-info/licenses/LICENSE")))
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for build in STATIC_DIR.iterdir():
        assert f"rtbridge/static/rtbridge/{build.name}" in names, build.name
    assert shipped == (STATIC_DIR / "rtbridge.selfhosted.js").read_bytes()
    assert "rtbridge/demo/todo/templates/todo/board.html" in names
    assert "rtbridge/clients/js/src/rtbridge.js" in names  # for the deprecated finder
    assert not [
        name
        for name in names
        if re.match(r"rtbridge/clients/js/(test|scripts|node_modules)/|tests/", name)
    ]
    assert licence == (REPO / "LICENSE").read_bytes()
    assert "License-Expression: BSD-3-Clause" in metadata


def test_the_sdist_has_what_the_wheel_is_built_from(dist: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "pyproject.toml", "rtbridge/static/rtbridge/bundles.json"} <= names
    assert not [name for name in names if "node_modules" in name or name.startswith(".venv")]


def log_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/login/").read()
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    opener.open(
        urllib.request.Request(base + "/login/", body, headers={"Referer": base + "/login/"})
    )
    return opener


def test_the_wheel_in_a_clean_venv_serves_the_demo_and_its_js(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    wheel = only(dist, "*.whl")
    # The machine's configured index gives Django and Tornado; rtbridge comes from the wheel only.
    run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[server]"],
        cwd=tmp_path,
        timeout=400,
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")
    }
    where = run(
        [str(python), "-c", "import rtbridge, sys; print(rtbridge.__file__); print(sys.path)"],
        cwd=tmp_path,
    ).stdout
    assert where.startswith(str(venv)), where
    assert str(REPO) not in where

    port = free_port()
    demo = subprocess.Popen(
        [
            str(venv / "bin" / "rtbridge"),
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        page = log_in(base, "ann", "ann-demo").open(base + "/").read().decode()
        scripts = sorted(set(re.findall(r"/static/rtbridge/[\w.-]+\.js", page)))
        assert scripts, page
        for script in scripts:
            with urllib.request.urlopen(base + script) as response:
                # What browsers accept for a module script (Python < 3.12 says application/).
                assert response.headers["Content-Type"].split(";")[0] in (
                    "text/javascript",
                    "application/javascript",
                )
                body = response.read()
            assert body == (STATIC_DIR / script.rsplit("/", 1)[1]).read_bytes(), script
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, output
