"""Django settings of the fan-out benchmark's Django Channels side (daphne + channels_redis).

``BENCH_CHANNELS_CAPACITY`` sets the channel layer's ``capacity`` (channels_redis' default is
100: once that many messages wait for one daphne process, further group messages are dropped
without an error).
"""

import os

SECRET_KEY = "rtbridge-bench-fanout"
USE_TZ = True
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
DATABASES: dict[str, dict[str, str]] = {}
ROOT_URLCONF = "benchmarks.fanout.channels_asgi"
ASGI_APPLICATION = "benchmarks.fanout.channels_asgi.application"

# socket_timeout: redis-py 8 reads with a 5 s timeout by default, the same 5 s that
# channels_redis blocks in BZPOPMIN, so an idle receiving consumer dies with TimeoutError
# (its socket closes with 1011) unless the read timeout is longer.
_config: dict[str, object] = {
    "hosts": [
        {
            "address": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "socket_timeout": 30,
        }
    ]
}
if os.environ.get("BENCH_CHANNELS_CAPACITY"):
    _config["capacity"] = int(os.environ["BENCH_CHANNELS_CAPACITY"])
CHANNEL_LAYERS = {
    "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": _config}
}
