"""Django settings of the todo demo; ``rtbridge demo`` sets the environment variables below.

``RTBRIDGE_DEMO_DATA_DIR`` (the SQLite file and the secret key; default
``$XDG_DATA_HOME/rtbridge-demo`` or ``~/.local/share/rtbridge-demo``), ``RTBRIDGE_DEMO_BACKEND``
(``local`` by default), ``RTBRIDGE_DEMO_OPTIONS`` (JSON: the backend's ``RTBRIDGE_OPTIONS``),
``RTBRIDGE_DEMO_PUBLIC_URL`` (the socket URL pages connect to, when the rtbridge server runs
in another process), ``RTBRIDGE_DEMO_SDK`` (JSON: script URLs of a hosted backend's JS SDK),
``RTBRIDGE_DEMO_SDK_FILES`` (JSON: local copies of them that the demo serves),
``RTBRIDGE_DEMO_IMPORT_MAP`` (JSON: module URLs redirected to those copies) and
``RTBRIDGE_DEMO_ALLOWED_HOSTS`` (JSON; default the loopback names).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from rtbridge.demo.paths import default_data_dir


def _secret_key(data_dir: Path) -> str:
    # One key per data directory, so sessions survive restarts and a second process (the
    # rtbridge server with --backend redis) verifies the subscription tokens Django signs.
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key


DATA_DIR = Path(os.environ.get("RTBRIDGE_DEMO_DATA_DIR") or default_data_dir()).expanduser()
SECRET_KEY = _secret_key(DATA_DIR)
DEBUG = True
ALLOWED_HOSTS: list[str] = json.loads(
    os.environ.get("RTBRIDGE_DEMO_ALLOWED_HOSTS") or '["localhost", "127.0.0.1", "[::1]"]'
)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rtbridge",
    "rtbridge.demo.todo",
]
MIDDLEWARE = [
    "rtbridge.middleware.SocketIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "rtbridge.demo.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        # Django's views run in a thread pool next to the sockets: wait for the write lock
        # rather than failing with "database is locked" when two windows save at once.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "board"
LOGOUT_REDIRECT_URL = "login"
# The demo users have short, well-known passwords on purpose.
AUTH_PASSWORD_VALIDATORS: list[dict[str, Any]] = []

RTBRIDGE_BACKEND = os.environ.get("RTBRIDGE_DEMO_BACKEND") or "local"
RTBRIDGE_OPTIONS: dict[str, Any] = json.loads(os.environ.get("RTBRIDGE_DEMO_OPTIONS") or "{}")
RTBRIDGE_SERVER: dict[str, Any] = {
    "public_url": os.environ.get("RTBRIDGE_DEMO_PUBLIC_URL") or None,
    "stats_interval": 0,
}
#: Script URLs of a hosted backend's JS SDK, loaded before the client (see docs/demo.md).
RTBRIDGE_DEMO_SDK: list[str] = json.loads(os.environ.get("RTBRIDGE_DEMO_SDK") or "[]")
#: Module URLs the page's import map redirects to local copies (Firebase's modules).
RTBRIDGE_DEMO_IMPORT_MAP: dict[str, str] = json.loads(
    os.environ.get("RTBRIDGE_DEMO_IMPORT_MAP") or "{}"
)
#: Local copies of those scripts the demo serves itself: {"<n>/<file name>": path}.
RTBRIDGE_DEMO_SDK_FILES: dict[str, str] = json.loads(
    os.environ.get("RTBRIDGE_DEMO_SDK_FILES") or "{}"
)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "rtbridge": {"handlers": ["console"], "level": "WARNING"},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
