"""Django settings of the fan-out benchmark's rtbridge server and publisher (Redis broker).

``BENCH_REDIS_URL`` names Redis (or ``BENCH_REDIS_OPTIONS`` holds the JSON of
``RTBRIDGE_OPTIONS``, e.g. a ``cluster``). ``BENCH_RTBRIDGE_SERVER`` may hold a JSON object of
``RTBRIDGE_SERVER`` keys to try other limits, e.g. ``'{"heartbeat": 300}'``, and
``BENCH_RTBRIDGE_HISTORY`` the ``RTBRIDGE_HISTORY`` setting as JSON (``null``: history off).
"""

import json
import os

SECRET_KEY = "rtbridge-bench-fanout"
USE_TZ = True
INSTALLED_APPS = ["rtbridge"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES: dict[str, dict[str, str]] = {}
RTBRIDGE_BACKEND = "redis"
RTBRIDGE_OPTIONS = json.loads(os.environ.get("BENCH_REDIS_OPTIONS") or "null") or {
    "url": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
}
# Defaults everywhere (heartbeat 25 s, idle timeout 60 s, 1 MiB outbound buffer per socket)
# except the stats line, which would only add noise to the benchmark's output.
RTBRIDGE_SERVER = {"stats_interval": 0, **json.loads(os.environ.get("BENCH_RTBRIDGE_SERVER", "{}"))}
RTBRIDGE_HISTORY = json.loads(os.environ.get("BENCH_RTBRIDGE_HISTORY", "{}"))
