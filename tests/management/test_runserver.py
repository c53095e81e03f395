"""``manage.py runserver`` serves the pages and the socket, with the autoreloader (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.devproject import DEFAULT_APPS, DevProject, RunningServer
from tests.services import chromium, free_port

SAVE = "from notes.models import Note; Note.objects.create(text={text!r})"


@pytest.fixture
def project(tmp_path: Path) -> DevProject:
    project = DevProject(tmp_path)
    project.manage("migrate", "-v0")
    return project


@pytest.fixture
def running() -> Iterator[list[RunningServer]]:
    """The runserver processes a test starts, stopped after it (their output on failure)."""
    started: list[RunningServer] = []
    yield started
    for server in started:
        server.stop()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {what}")
        time.sleep(0.1)


def answers(url: str, expected: str) -> bool:
    try:
        return get(url) == expected
    except OSError:
        return False


@pytest.mark.browser
def test_a_runserver_page_gets_saves_from_a_shell_and_reconnects_after_a_reload(
    project: DevProject, running: list[RunningServer]
) -> None:
    server = project.start("runserver")
    running.append(server)
    server.wait_for_output("rtbridge socket at")
    text = server.text()
    assert f"Starting development server at http://127.0.0.1:{server.port}/" in text
    assert f"rtbridge socket at ws://127.0.0.1:{server.port}/rtbridge/ws" in text
    assert "this project's other processes publish to it through 127.0.0.1:" in text
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.http_url + "/")
        page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=15_000)

        # A save in another process (a real `manage.py shell`) reaches the page.
        project.manage("shell", "-c", SAVE.format(text="from the shell"))
        page.wait_for_function("window.received.length === 1", timeout=10_000)
        assert page.evaluate("window.received") == [
            ["created", {"id": 1, "text": "from the shell"}]
        ]

        # An edit to a Python file: the autoreloader restarts the child, the page reconnects.
        page.evaluate("document.body.dataset.subscribed = 'no'")
        page.evaluate(
            "void window.rt.onResubscribed(() => (document.body.dataset.subscribed = 'yes'))"
        )
        project.write_views("two")
        wait_until(lambda: answers(server.http_url + "/version/", "two"), 30, "the reload")
        page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=20_000)
        states = page.evaluate("window.states")
        assert states[-1] == "connected" and "reconnecting" in states, states
        assert server.text().count("rtbridge socket at") == 2

        project.manage("shell", "-c", SAVE.format(text="after the reload"))
        page.wait_for_function("window.received.length === 2", timeout=10_000)
        assert page.evaluate("window.received[1]") == [
            "created",
            {"id": 2, "text": "after the reload"},
        ]
        assert errors == []
        page.close()


def test_noreload_nothreading_serves_the_site_the_socket_and_the_config(
    project: DevProject, running: list[RunningServer]
) -> None:
    server = project.start("runserver", "--noreload", "--nothreading")
    running.append(server)
    server.wait_for_output("rtbridge socket at")
    assert "Watching for file changes" not in server.text()
    assert 'id="rtbridge-config"' in get(server.http_url + "/")
    config = json.loads(get(server.http_url + "/rtbridge/config"))
    assert config["backend"] == "local" and config["csrfToken"]
    # A static file through staticfiles' handler (DEBUG), as Django's runserver serves it.
    assert "rtbridge client" in get(server.http_url + "/static/rtbridge/rtbridge.selfhosted.js")

    async def welcome() -> dict[str, Any]:
        from websockets.asyncio.client import connect

        async with connect(f"ws://127.0.0.1:{server.port}/rtbridge/ws") as socket:
            return dict(json.loads(await asyncio.wait_for(socket.recv(), 5)))

    assert asyncio.run(welcome())["op"] == "welcome"


def test_runserver_and_rtbridge_server_run_the_system_checks_at_start(tmp_path: Path) -> None:
    project = DevProject(tmp_path)
    models = tmp_path / "notes" / "models.py"
    models.write_text(models.read_text().replace('fields = ["text"]', 'fields = ["txet"]'))
    for command in (
        ["runserver", "--noreload", f"127.0.0.1:{free_port()}"],
        ["rtbridge_server", "--with-django", "--port", str(free_port())],
    ):
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=tmp_path,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "rtbridge.E006" in output and "txet" in output, output
        assert "rtbridge socket at" not in output and "rtbridge server on" not in output


def test_staticfiles_before_rtbridge_is_a_warning(tmp_path: Path) -> None:
    apps = [app for app in DEFAULT_APPS if app != "rtbridge"]
    apps.insert(apps.index("django.contrib.staticfiles") + 1, "rtbridge")
    output = DevProject(tmp_path, installed_apps=apps).manage("check")
    assert "rtbridge.W022" in output
    assert "List 'rtbridge' before 'django.contrib.staticfiles'" in output
