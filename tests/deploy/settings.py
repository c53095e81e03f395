"""Django settings of the server nodes behind nginx (tests/deploy/test_nginx.py)."""

import os
from pathlib import Path

from tests.settings import *  # noqa: F403

ROOT_URLCONF = "tests.deploy.urls"
# The page is opened at http://[::1]:<nginx port>/ (the Host nginx passes on).
ALLOWED_HOSTS = ["[::1]", "127.0.0.1", "localhost"]
RTBRIDGE_BACKEND = "redis"
RTBRIDGE_OPTIONS = {"url": os.environ.get("RTBRIDGE_DEPLOY_REDIS", "redis://127.0.0.1:6379/0")}
# nginx connects from 127.0.0.1; the browser from [::1], which the logs must show.
RTBRIDGE_SERVER = {"trusted_proxies": ["127.0.0.1"], "serve_static": True}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(Path(__file__).resolve().parent / "templates")],
        "APP_DIRS": True,
    }
]
