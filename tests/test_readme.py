"""The README's quickstart, built into a fresh Django project and run: it cannot rot."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.services import free_port, wait_for_port

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK_RE = re.compile(r"<!-- quickstart:(\w+) -->\s*```\w*\n(.*?)```", re.S)


def snippets() -> dict[str, str]:
    found = dict(_BLOCK_RE.findall(README.read_text("utf-8")))
    expected = {"settings", "models", "serializers", "routers", "template", "urls", "run"}
    assert set(found) == expected, f"README quickstart blocks: {sorted(found)}"
    return found


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{shlex.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Build a project the way the README says: startproject, startapp, then the snippets."""
    env = {**os.environ, "PYTHONPATH": "", "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    env.pop("RTBRIDGE_TEST_DB", None)
    bin_dir = Path(sys.executable).parent
    run([str(bin_dir / "django-admin"), "startproject", "mysite", "."], tmp_path, env)
    run([sys.executable, "manage.py", "startapp", "todo"], tmp_path, env)
    parts = snippets()
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n" + parts["settings"])
    (tmp_path / "todo" / "models.py").write_text(parts["models"])
    (tmp_path / "todo" / "serializers.py").write_text(parts["serializers"])
    (tmp_path / "todo" / "routers.py").write_text(parts["routers"])
    templates = tmp_path / "todo" / "templates" / "todo"
    templates.mkdir(parents=True)
    (templates / "index.html").write_text(parts["template"])
    (tmp_path / "mysite" / "urls.py").write_text(parts["urls"])
    return tmp_path, env


def test_quickstart_builds_runs_and_delivers(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    port = free_port()
    commands = [shlex.split(line) for line in snippets()["run"].strip().splitlines()]
    *setup, serve = commands
    for command in setup:
        assert command[:2] == ["python", "manage.py"]
        run([sys.executable, *command[1:]], root, env)
    assert serve[:3] == ["python", "manage.py", "rtbridge_server"]
    serve = [sys.executable, *serve[1:]]
    serve[serve.index("--port") + 1] = str(port)
    server = subprocess.Popen(
        serve, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port, timeout=20)
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert 'id="rtbridge-config"' in page and "rtbridge" in page
        script = opener.open(f"http://127.0.0.1:{port}/static/rtbridge/rtbridge.js", timeout=10)
        assert script.status == 200
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        asyncio.run(_subscribe_then_create(port, opener, csrf))
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0].decode(errors="replace")
    assert server.returncode == 0, output


async def _subscribe_then_create(
    port: int, opener: urllib.request.OpenerDirector, csrf: str
) -> None:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/rtbridge/ws") as socket:
        welcome = json.loads(await socket.recv())
        assert welcome["op"] == "welcome"
        await socket.send(json.dumps({"op": "subscribe", "id": 1, "channel": "todo.todoitem"}))
        assert json.loads(await socket.recv())["op"] == "ack"
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/rtbridge/data/todo-item/create",
            data=json.dumps({"text": "milk"}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-CSRFToken": csrf,
                "Referer": f"http://127.0.0.1:{port}/",
            },
            method="POST",
        )
        reply = await asyncio.to_thread(lambda: json.loads(opener.open(request, timeout=10).read()))
        assert reply["data"]["text"] == "milk"
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
            if frame["op"] == "message":
                break
        assert (frame["channel"], frame["event"], frame["data"]) == (
            "todo.todoitem",
            "created",
            {"id": reply["data"]["id"], "text": "milk", "done": False},
        )
