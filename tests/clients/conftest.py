"""Fixtures of the browser tests: the Django site with the rtbridge socket, and Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application
from django.test import override_settings

from rtbridge.staticfiles import FINDER_PATH
from tests.services import missing_service

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).resolve().parent
SETTINGS: dict[str, Any] = {
    "ROOT_URLCONF": "tests.clients.urls",
    "RTBRIDGE_BACKEND": "local",
    "RTBRIDGE_OPTIONS": {},
    "STATICFILES_FINDERS": [
        "django.contrib.staticfiles.finders.FileSystemFinder",
        "django.contrib.staticfiles.finders.AppDirectoriesFinder",
        FINDER_PATH,
    ],
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
    """Debian's Chromium driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        missing_service(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright is not installed (pip install playwright)")
    # Playwright's sync API keeps an event loop running in this thread while it is open, which
    # makes Django refuse the tests' ORM calls ("async context"); they are plain blocking calls
    # here. Module scope: the loop and this switch end with the module, so later tests keep
    # Django's check (e.g. against ORM calls on the server's event loop).
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()
            if saved is None:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved
