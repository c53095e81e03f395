"""Django settings for the server subprocess tests (backend and limits come from the environment)."""

import json
import os
from pathlib import Path

from tests.settings import *  # noqa: F403

ROOT_URLCONF = "tests.server.site_urls"
RTBRIDGE_BACKEND = os.environ.get("RTBRIDGE_TEST_BACKEND", "local")
RTBRIDGE_OPTIONS = json.loads(os.environ.get("RTBRIDGE_TEST_OPTIONS", "{}"))
RTBRIDGE_SERVER = json.loads(os.environ.get("RTBRIDGE_TEST_SERVER", "{}"))
RTBRIDGE_HISTORY = json.loads(os.environ.get("RTBRIDGE_TEST_HISTORY", "{}"))
STATICFILES_DIRS = [Path(__file__).resolve().parent / "static"]
