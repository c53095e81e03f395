"""A single-page app on another origin: ``connect({configUrl})``, CORS with credentials, CSRF.

The app is served by a plain static server on its own port (what a Vite dev server is to
rtbridge: another origin), Django and the socket by ``manage.py runserver``; the project is
set up as docs/js.md ("Single-page apps") says, with django-cors-headers.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtbridge.staticfiles import STATIC_DIR
from tests.devproject import DevProject, RunningServer
from tests.services import chromium, free_port

pytestmark = pytest.mark.browser

SETTINGS = """
# docs/js.md, "Single-page apps": the app's origin may call Django with the visitor's cookies.
from corsheaders.defaults import default_headers

INSTALLED_APPS += ["corsheaders"]
MIDDLEWARE.insert(0, "corsheaders.middleware.CorsMiddleware")
CORS_ALLOWED_ORIGINS = [{origin!r}]
CORS_ALLOW_CREDENTIALS = True
CORS_ALLOW_HEADERS = (*default_headers, "x-rtbridge-socket-id")
CSRF_TRUSTED_ORIGINS = [{origin!r}]
RTBRIDGE_ALLOWED_ORIGINS = [{origin!r}]
"""

URLS = """\
from django.contrib.auth import get_user_model, login
from django.http import HttpResponse
from django.urls import include, path


def log_in(request):
    user, _ = get_user_model().objects.get_or_create(username=request.GET["name"])
    login(request, user)
    return HttpResponse("logged in")


urlpatterns = [path("login/", log_in), path("rtbridge/", include("rtbridge.urls"))]
"""

ROUTERS = """\
import rtbridge


class NoteSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = "notes.Note"
        fields = ["text"]
        update_fields = ["text"]


class NoteRouter(rtbridge.ModelRouter):
    route_name = "note"
    serializer_class = NoteSerializer
"""

CHANNELS = """\
import rtbridge


@rtbridge.channel("presence-room")
def room(user):
    return {"name": user.username} if user.is_authenticated else None
"""

APP = """\
<!doctype html>
<title>spa</title>
<link rel="icon" href="data:,">
<script type="module">
  import { connect } from "./rtbridge.js";
  const params = new URLSearchParams(location.search);
  const name = params.get("name");
  window.fetches = [];
  window.events = [];
  const recording = async (url, init) => {
    const response = await fetch(url, init);
    window.fetches.push([init?.method ?? "GET", url, response.status, init?.credentials]);
    return response;
  };
  try {
    const rt = await connect({ configUrl: `${params.get("django")}/rtbridge/config`, fetch: recording });
    window.rt = rt;
    rt.subscribe("notes.note", (event, data) => window.events.push([event, data.text]));
    // Right after connect() the socket has no welcome yet: this create goes over HTTP (CORS).
    const created = await rt.create("note", { text: `from ${name}` });
    await rt.ready();
    const list = await rt.getList("note");
    const room = rt.join("presence-room");
    window.joined = [];
    room.joining((member) => window.joined.push(member.info.name));
    await room.ready;
    window.result = { created, list: list.data, members: room.members().map((m) => m.info.name) };
  } catch (error) {
    window.failure = `${error.code}: ${error.message}`;
  }
</script>
"""


class StaticApp:
    """A static file server for the app on its own port (another origin than Django's)."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".js": "text/javascript", ".html": "text/html"}

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def app_files(tmp_path: Path) -> Path:
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "index.html").write_text(APP)
    # What the app's bundler would ship: the npm package's code, built.
    shutil.copy(STATIC_DIR / "rtbridge.js", directory / "rtbridge.js")
    return directory


@pytest.fixture
def apps(app_files: Path) -> Iterator[tuple[StaticApp, StaticApp]]:
    """The app on an allowed origin, and the same app on an origin Django does not allow."""
    allowed, foreign = StaticApp(app_files), StaticApp(app_files)
    yield allowed, foreign
    allowed.stop()
    foreign.stop()


@pytest.fixture
def django_site(tmp_path: Path, apps: tuple[StaticApp, StaticApp]) -> Iterator[RunningServer]:
    project = DevProject(tmp_path / "site", extra_settings=SETTINGS.format(origin=apps[0].origin))
    (project.root / "devsite" / "urls.py").write_text(URLS)
    (project.root / "notes" / "routers.py").write_text(ROUTERS)
    (project.root / "notes" / "channels.py").write_text(CHANNELS)
    project.manage("migrate", "-v0")
    server = project.start("runserver", "--noreload")
    try:
        server.wait_for_output("rtbridge socket at")
        yield server
    finally:
        server.stop()


def open_app(browser: Any, django: RunningServer, app: StaticApp, name: str) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{django.http_url}/login/?name={name}")  # the visitor's Django session
    page.goto(f"{app.origin}/?django={django.http_url}&name={name}")
    page.wait_for_function("window.result || window.failure", timeout=15_000)
    return page


def test_an_app_on_another_origin_makes_data_calls_and_joins_presence(
    django_site: RunningServer, apps: tuple[StaticApp, StaticApp]
) -> None:
    app = apps[0]
    django = django_site.http_url
    with chromium() as browser:
        ann = open_app(browser, django_site, app, "ann")
        assert ann.evaluate("window.failure ?? null") is None
        result = ann.evaluate("window.result")
        assert result["created"] == {"id": 1, "text": "from ann"}
        assert result["list"] == [{"id": 1, "text": "from ann"}]
        assert result["members"] == ["ann"]
        fetches = ann.evaluate("window.fetches")
        # The config and the create went over HTTP, cross-origin, with the cookies; the
        # presence authorization too (as ann: her session reached Django).
        assert fetches[0] == ["GET", f"{django}/rtbridge/config", 200, "include"]
        assert ["POST", f"{django}/rtbridge/data/note/create", 201, "include"] in fetches
        assert ["POST", f"{django}/rtbridge/auth", 200, "include"] in fetches

        ben = open_app(browser, django_site, app, "ben")
        assert ben.evaluate("window.failure ?? null") is None
        assert sorted(ben.evaluate("window.result.members")) == ["ann", "ben"]
        ann.wait_for_function("window.joined.includes('ben')", timeout=10_000)
        # Ben's create reached Ann's page through the socket.
        ann.wait_for_function(
            "window.events.some(([event, text]) => text === 'from ben')", timeout=10_000
        )
        ann.context.close()
        ben.context.close()


def test_an_origin_django_does_not_allow_gets_an_error_that_says_why(
    django_site: RunningServer, apps: tuple[StaticApp, StaticApp]
) -> None:
    with chromium() as browser:
        page = open_app(browser, django_site, apps[1], "eve")
        failure = page.evaluate("window.failure")
        assert failure.startswith(
            f"config_failed: rtbridge: fetching the config from {django_site.http_url}/rtbridge/config failed"
        ), failure
        assert "CORS headers that allow this origin with credentials" in failure
        page.context.close()
