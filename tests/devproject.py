"""A small Django project written to a temp dir, run with ``manage.py`` in real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from tests.services import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

MANAGE = """\
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "devsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

SETTINGS = """\
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = {secret_key!r}
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = {installed_apps!r}
MIDDLEWARE = [
    "rtbridge.middleware.SocketIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "devsite.urls"
TEMPLATES = [
    {{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "devsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {{"context_processors": ["django.template.context_processors.request"]}},
    }}
]
STATIC_URL = "/static/"
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
RTBRIDGE_BACKEND = "local"
"""

URLS = """\
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.page),
    path("version/", views.version),
    path("rtbridge/", include("rtbridge.urls")),
]
"""

VIEWS = """\
from django.http import HttpResponse
from django.shortcuts import render

VERSION = {version!r}


def page(request):
    return render(request, "page.html")


def version(request):
    return HttpResponse(VERSION)
"""

PAGE = """\
{% load rtbridge %}<!doctype html>
<title>dev page</title>
<link rel="icon" href="data:,">
{% rtbridge_config %}
{% rtbridge_js %}
<script type="module">
  import { connect } from "{% rtbridge_js_url %}";
  window.received = [];
  window.states = [];
  const rt = connect();
  rt.onState((state) => {
    window.states.push(state);
    document.body.dataset.state = state;
  });
  const sub = rt.subscribe("notes.note", (event, data) => window.received.push([event, data]));
  sub.ready.then(() => (document.body.dataset.subscribed = "yes"));
  window.rt = rt;
</script>
"""

NOTES_MODELS = """\
from django.db import models

import rtbridge


class Note(rtbridge.SelfPublishModel, models.Model):
    text = models.CharField(max_length=200)

    class RTBridge:
        fields = ["text"]
"""

NOTES_MIGRATION = """\
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.CharField(max_length=200)),
            ],
        )
    ]
"""

DEFAULT_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    # Before staticfiles: rtbridge's runserver (with the socket) must win (check W022).
    "rtbridge",
    "django.contrib.staticfiles",
    "notes",
]


class DevProject:
    """The project's files under ``root`` and the environment its subprocesses run with."""

    def __init__(
        self,
        root: Path,
        *,
        installed_apps: list[str] | None = None,
        secret_key: str = "devproject-secret",
        extra_settings: str = "",
    ) -> None:
        self.root = root
        site = root / "devsite"
        (site / "templates").mkdir(parents=True)
        (root / "manage.py").write_text(MANAGE)
        (site / "__init__.py").write_text("")
        (site / "settings.py").write_text(
            SETTINGS.format(secret_key=secret_key, installed_apps=installed_apps or DEFAULT_APPS)
            + extra_settings
        )
        (site / "urls.py").write_text(URLS)
        self.write_views("one")
        (site / "templates" / "page.html").write_text(PAGE)
        notes = root / "notes"
        (notes / "migrations").mkdir(parents=True)
        (notes / "__init__.py").write_text("")
        (notes / "models.py").write_text(NOTES_MODELS)
        (notes / "migrations" / "__init__.py").write_text("")
        (notes / "migrations" / "0001_initial.py").write_text(NOTES_MIGRATION)
        self.env = {
            **os.environ,
            # The checkout's rtbridge first (the venv may hold an editable install of another).
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "devsite.settings",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("RTBRIDGE_TEST_DB", None)
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    def write_views(self, version: str) -> None:
        """(Re)write ``devsite/views.py``; ``/version/`` answers ``version``."""
        (self.root / "devsite" / "views.py").write_text(VIEWS.format(version=version))

    def manage(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        """Run ``manage.py <args>`` to the end; return its output (stdout and stderr)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{output}"
        return output

    def start(self, *args: str) -> RunningServer:
        """Start ``manage.py <args> <port>`` (``runserver`` and its options) on a free port."""
        return RunningServer(self, list(args))


class RunningServer:
    """A ``manage.py runserver`` subprocess (and its reloader child), output in a file."""

    def __init__(self, project: DevProject, args: list[str]) -> None:
        self.port = free_port()
        self._output: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", *args, f"127.0.0.1:{self.port}"],
            cwd=project.root,
            env=project.env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            # Its own process group, as in a terminal: Ctrl-C (SIGINT to the group) reaches the
            # reloader parent and its child, and nothing else.
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"runserver did not start:\n{self.text()}") from None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        self._output.seek(0)
        return self._output.read().decode(errors="replace")

    def wait_for_output(self, needle: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if time.monotonic() > deadline or self.popen.poll() is not None:
                raise AssertionError(f"runserver never printed {needle!r}:\n{self.text()}")
            time.sleep(0.1)

    def stop(self) -> str:
        """Stop it (SIGINT, as Ctrl-C: the reloader child ends with it); return its output."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        text = self.text()
        self._output.close()
        return text
