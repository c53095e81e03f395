"""A self-hosted page fetches exactly one rtbridge script, with Django's default static finders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application
from django.test import override_settings

import rtbridge
from rtbridge.staticfiles import STATIC_DIR
from tests.services import chromium

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
SETTINGS: dict[str, Any] = {
    "ROOT_URLCONF": "tests.templatetags.urls",
    "RTBRIDGE_BACKEND": "local",
    "RTBRIDGE_OPTIONS": {},
    # No STATICFILES_FINDERS: Django's defaults find rtbridge/static/rtbridge/.
    "TEMPLATES": [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(HERE / "templates")],
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
        }
    ],
}


@pytest.fixture
def site() -> Iterator[Any]:
    from rtbridge.server import Server

    with override_settings(**SETTINGS):
        assert settings.STATICFILES_FINDERS == [
            "django.contrib.staticfiles.finders.FileSystemFinder",
            "django.contrib.staticfiles.finders.AppDirectoriesFinder",
        ]
        finders.get_finder.cache_clear()  # type: ignore[attr-defined]
        server = Server(port=0, wsgi_app=StaticFilesHandler(get_wsgi_application())).start()
        try:
            yield server
        finally:
            server.stop()
            finders.get_finder.cache_clear()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize(
    ("page_path", "build"),
    [("/module/", "rtbridge.selfhosted.js"), ("/classic/", "rtbridge.selfhosted.iife.js")],
)
def test_a_self_hosted_page_loads_one_rtbridge_script(
    site: Any, browser: Any, page_path: str, build: str
) -> None:
    page = browser.new_page()
    scripts: list[str] = []
    errors: list[str] = []
    page.on(
        "request",
        lambda request: scripts.append(request.url) if request.resource_type == "script" else None,
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(site.http_url + page_path)
        page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=10_000)
        rtbridge.publish("todo.todoitem;todo_list_id=1", "created", {"id": 1, "text": "milk"})
        page.wait_for_function("window.received.length === 1", timeout=10_000)
        assert errors == []
        assert scripts == [f"{site.http_url}/static/rtbridge/{build}"]
        if page_path == "/module/":
            assert page.evaluate("window.sameInstance") is True
        # The one file is the minified build of the self-hosted transport: no vendor transport.
        body = page.evaluate(f"fetch('/static/rtbridge/{build}').then(r => r.text())")
        assert body == (STATIC_DIR / build).read_text(encoding="utf-8")
        assert "pusherOptions" not in body and "pubnubOptions" not in body
    finally:
        page.close()
