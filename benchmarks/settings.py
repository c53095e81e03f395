"""Django settings for the benchmarks: BENCH_DB=sqlite (default, a temp file) or postgres."""

import os
import tempfile

SECRET_KEY = "rtbridge-benchmarks"
USE_TZ = True
INSTALLED_APPS = ["rtbridge", "benchmarks.benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
RTBRIDGE_BACKEND = "dummy"

if os.environ.get("BENCH_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": "127.0.0.1",
            "PORT": "5432",
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(tempfile.gettempdir(), "rtbridge-bench.sqlite3"),
        }
    }
