"""``rtbridge demo`` on the command line: first start, restart, --reset, clear errors, hosted config."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rtbridge.demo.cli import (
    HOSTED_ENVIRONMENT,
    DemoError,
    _allowed_hosts,
    _import_map,
    _sdk_scripts,
)
from tests.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    for variables in HOSTED_ENVIRONMENT.values():
        for variable, _, _ in variables:
            env.pop(variable, None)
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a demo that is expected to exit by itself (an error)."""
    return subprocess.run(
        [sys.executable, "-m", "rtbridge.demo", *args],
        cwd=ROOT,
        env=env or demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


class Running:
    """A demo started in the background and stopped with SIGINT (Ctrl-C)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rtbridge.demo", "--port", str(self.port), *args],
            cwd=ROOT,
            env=env or demo_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for_port(self.port, timeout=30)

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=15)
        assert self.process.returncode == 0, output
        return output


def rows(data_dir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        return db.execute(sql).fetchall()


def test_first_start_creates_users_and_sample_lists_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    demo = Running("--data-dir", str(data_dir))
    output = demo.stop()
    assert f"http://127.0.0.1:{demo.port}/" in output
    assert "ann / ann-demo" in output and "ben / ben-demo" in output
    assert "first start" in output
    assert str(data_dir) in output
    assert rows(data_dir, "SELECT username FROM auth_user ORDER BY username") == [
        ("ann",),
        ("ben",),
    ]
    lists = rows(data_dir, "SELECT name FROM todo_todolist ORDER BY id")
    assert lists[0] == ("Groceries",)

    # Started again: the board is kept as it was, nothing is added twice.
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        db.execute("UPDATE todo_todolist SET name = 'Renamed' WHERE name = 'Groceries'")
    output = Running("--data-dir", str(data_dir)).stop()
    assert "first start" not in output
    assert rows(data_dir, "SELECT name FROM todo_todolist ORDER BY id")[0] == ("Renamed",)
    assert len(rows(data_dir, "SELECT id FROM todo_todolist")) == len(lists)

    # --reset starts afresh.
    output = Running("--data-dir", str(data_dir), "--reset").stop()
    assert "first start" in output
    assert rows(data_dir, "SELECT name FROM todo_todolist ORDER BY id")[0] == ("Groceries",)


def test_default_data_dir_follows_xdg_data_home(tmp_path: Path) -> None:
    output = Running(env=demo_env(XDG_DATA_HOME=str(tmp_path))).stop()
    assert (tmp_path / "rtbridge-demo" / "db.sqlite3").exists()
    assert str(tmp_path / "rtbridge-demo") in output


def test_a_taken_port_is_named_with_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_demo("--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("backend", "missing"),
    [
        ("pusher", "PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET are not set"),
        ("pubnub", "PUBNUB_PUBLISH_KEY, PUBNUB_SUBSCRIBE_KEY are not set"),
        ("firebase", "FIREBASE_DATABASE_URL is not set"),
    ],
)
def test_hosted_backend_without_credentials_says_which_variables(
    tmp_path: Path, backend: str, missing: str
) -> None:
    result = run_demo("--backend", backend, "--data-dir", str(tmp_path), "--port", str(free_port()))
    assert result.returncode == 1
    assert missing in result.stderr
    assert "docs/demo.md" in result.stderr


def test_redis_url_needs_the_redis_backend(tmp_path: Path) -> None:
    result = run_demo("--redis-url", "redis://127.0.0.1:1/0", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "--redis-url only applies to --backend redis" in result.stderr


def test_unreachable_redis_is_reported(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_demo("--backend", "redis", "--redis-url", url, "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"cannot reach Redis at {url}" in result.stderr


def log_in(base: str, username: str, password: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/login/").read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(base + "/login/", body, headers={"Referer": base + "/login/"})
    opener.open(request).read()
    return opener


def test_pusher_backend_takes_credentials_from_the_environment(tmp_path: Path) -> None:
    env = demo_env(
        PUSHER_APP_ID="4242",
        PUSHER_KEY="demo-public-key",
        PUSHER_SECRET="demo-secret-never-shown",
        PUSHER_CLUSTER="eu",
        RTBRIDGE_DEMO_PUSHER_JS="/static/vendor/pusher.min.js",
    )
    demo = Running("--backend", "pusher", "--data-dir", str(tmp_path), env=env)
    try:
        base = f"http://127.0.0.1:{demo.port}"
        page = log_in(base, "ben", "ben-demo").open(base + "/").read().decode()
    finally:
        output = demo.stop()
    match = re.search(r'<script id="rtbridge-config" type="application/json">(.*?)</script>', page)
    assert match, page
    config = json.loads(match.group(1))
    assert config["backend"] == "pusher"
    assert config["key"] == "demo-public-key" and config["cluster"] == "eu"
    assert "demo-secret-never-shown" not in page
    assert '<script src="/static/vendor/pusher.min.js"></script>' in page
    assert "pusher" in output


def test_allowed_hosts_follow_the_address() -> None:
    assert _allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "[::1]"]
    assert _allowed_hosts("192.168.1.20") == ["localhost", "127.0.0.1", "[::1]", "192.168.1.20"]
    assert _allowed_hosts("fd00::2")[-1] == "[fd00::2]"
    assert _allowed_hosts("0.0.0.0") == ["*"]


def test_sdk_sources_are_urls_or_local_files(tmp_path: Path) -> None:
    app = tmp_path / "firebase-app.js"
    app.write_text("export const initializeApp = () => {};")
    database = tmp_path / "firebase-database.js"
    database.write_text(
        'import{x}from"https://www.gstatic.com/firebasejs/12.19.0/firebase-app.js";'
        'import"https://www.gstatic.com/firebasejs/12.19.0/firebase-unknown.js";'
    )
    scripts, files = _sdk_scripts(["https://cdn.example/sdk.js", str(app), str(database)])
    assert scripts == [
        "https://cdn.example/sdk.js",
        "/demo-sdk/1/firebase-app.js",
        "/demo-sdk/2/firebase-database.js",
    ]
    assert files == {"1/firebase-app.js": str(app), "2/firebase-database.js": str(database)}
    # Only imports of files the demo serves are redirected.
    assert _import_map(files) == {
        "https://www.gstatic.com/firebasejs/12.19.0/firebase-app.js": "/demo-sdk/1/firebase-app.js"
    }
    # An absolute path that is no file is taken as a URL path on this site ("/static/...").
    assert _sdk_scripts(["/static/vendor/pusher.min.js"]) == (["/static/vendor/pusher.min.js"], {})
    with pytest.raises(DemoError, match="neither a URL nor an existing file"):
        _sdk_scripts(["node_modules/missing.js"])


def test_migrations_match_the_models(tmp_path: Path) -> None:
    env = demo_env(DJANGO_SETTINGS_MODULE="rtbridge.demo.settings")
    env["RTBRIDGE_DEMO_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "django", "makemigrations", "--check", "--dry-run", "todo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
