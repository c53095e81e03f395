"""Fixtures of the browser tests: the Django site with the rtbridge socket, and Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application
from django.test import override_settings

from tests.services import chromium

HERE = Path(__file__).resolve().parent
SETTINGS: dict[str, Any] = {
    "ROOT_URLCONF": "tests.clients.urls",
    "RTBRIDGE_BACKEND": "local",
    "RTBRIDGE_OPTIONS": {},
    "TEMPLATES": [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(HERE / "templates")],
            "APP_DIRS": True,
        }
    ],
}


def clear_finders() -> None:
    finders.get_finder.cache_clear()  # type: ignore[attr-defined]


@pytest.fixture
def site() -> Iterator[Any]:
    """The Django site and the rtbridge socket in one in-process server on a free port."""
    from rtbridge.server import Server

    with override_settings(**SETTINGS):
        clear_finders()
        server = Server(port=0, wsgi_app=StaticFilesHandler(get_wsgi_application())).start()
        try:
            yield server
        finally:
            server.stop()
            clear_finders()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (one per module)."""
    with chromium(allow_async_unsafe=True) as launched:
        yield launched
