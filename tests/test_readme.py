"""The README's quickstart, built into a fresh Django project and run: it cannot rot."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import chromium, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
_BLOCK_RE = re.compile(r"<!-- quickstart:(\w+) -->\s*```\w*\n(.*?)```", re.S)
README_ADDRESS = "127.0.0.1:8000"

pytestmark = pytest.mark.browser


def snippets() -> dict[str, str]:
    found = dict(_BLOCK_RE.findall(README.read_text("utf-8")))
    expected = {
        "settings", "models", "serializers", "routers", "admin", "template", "urls", "run",
        "shell", "curl",
    }  # fmt: skip
    assert set(found) == expected, f"README quickstart blocks: {sorted(found)}"
    return found


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{shlex.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def python_manage(line: str) -> list[str]:
    """Return the command of a README line ``python manage.py ...``, run with this Python."""
    command = shlex.split(line)
    assert command[:2] == ["python", "manage.py"], line
    return [sys.executable, *command[1:]]


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Build a project the way the README says: startproject, startapp, then the snippets."""
    # The checkout's rtbridge (the venv may hold an editable install of another checkout).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    env.pop("RTBRIDGE_TEST_DB", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    bin_dir = Path(sys.executable).parent
    run([str(bin_dir / "django-admin"), "startproject", "mysite", "."], tmp_path, env)
    run([sys.executable, "manage.py", "startapp", "todo"], tmp_path, env)
    parts = snippets()
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n" + parts["settings"])
    (tmp_path / "todo" / "models.py").write_text(parts["models"])
    (tmp_path / "todo" / "serializers.py").write_text(parts["serializers"])
    (tmp_path / "todo" / "routers.py").write_text(parts["routers"])
    (tmp_path / "todo" / "admin.py").write_text(parts["admin"])
    templates = tmp_path / "todo" / "templates" / "todo"
    templates.mkdir(parents=True)
    (templates / "index.html").write_text(parts["template"])
    (tmp_path / "mysite" / "urls.py").write_text(parts["urls"])
    return tmp_path, env


@pytest.fixture
def runserver(project: tuple[Path, dict[str, str]]) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """Run the README's commands; the last, ``runserver``, on a free port until the test ends."""
    root, env = project
    *setup, serve = snippets()["run"].strip().splitlines()
    for line in setup:
        run(python_manage(line), root, env)
    assert shlex.split(serve) == ["python", "manage.py", "runserver"]
    address = f"127.0.0.1:{free_port()}"
    output = tempfile.TemporaryFile()  # noqa: SIM115  (closed below)
    server = subprocess.Popen(
        [*python_manage(serve), address],
        cwd=root,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the reloader and its child, as in a terminal
    )
    try:
        wait_for_port(int(address.split(":")[1]), timeout=30)
        yield address, root, env
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
            server.wait(15)
        output.seek(0)
        text = output.read().decode(errors="replace")
        output.close()
    assert "System check identified no issues" in text, text
    assert f"rtbridge socket at ws://{address}/rtbridge/ws" in text, text


def test_quickstart_lists_follows_and_reloads(
    runserver: tuple[str, Path, dict[str, str]],
) -> None:
    address, root, env = runserver
    parts = snippets()
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"http://{address}/")
        # The page's socket is up (the router's `subscribe` verb went over it, then the list).
        page.wait_for_function("document.getElementById('items').childElementCount === 0")

        # From a shell, another process: the dev server gets it over the loopback channel.
        for line in parts["shell"].strip().splitlines():
            run(python_manage(line), root, env)
        page.wait_for_function("document.getElementById('items').textContent === 'milk'")

        # From curl, with the CSRF cookie and token the README says to send.
        curl = parts["curl"].replace(README_ADDRESS, address)
        answer = run(["bash", "-e", "-c", curl], root, env)
        assert '"text": "eggs"' in answer, answer
        page.wait_for_function("document.getElementById('items').textContent === 'milkeggs'")

        # A reload loads the list: every item, in order.
        page.reload()
        page.wait_for_function("document.getElementById('items').textContent === 'milkeggs'")
        assert page.eval_on_selector_all("#items li", "rows => rows.map(r => r.textContent)") == [
            "milk",
            "eggs",
        ]
        assert errors == []
        page.close()

    # What the README says about a bare POST: Django's CSRF 403.
    request = urllib.request.Request(
        f"http://{address}/rtbridge/data/todo-item/create", data=b'{"text": "x"}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert "CSRF cookie not set" in refused.value.read().decode()
    # The admin stays in urls.py.
    with urllib.request.urlopen(f"http://{address}/admin/login/", timeout=10) as admin:
        assert admin.status == 200
