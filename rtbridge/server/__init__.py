"""The self-hosted rtbridge server: Tornado WebSockets fed by an in-process hub or Redis.

Run it with ``python manage.py rtbridge_server`` (or ``rtbridge serve``), or from Python::

    from rtbridge.server import Server

    server = Server(port=0).start()          # a daemon thread with its own event loop
    print(server.url)                        # ws://127.0.0.1:<port>/rtbridge/ws
    server.publish(Message("chat", "said", {"text": "hi"}))   # from any thread
    server.stop()                            # clients get close code 1001

    # or on a running event loop:
    server = Server(port=8000, redis_url="redis://127.0.0.1:6379/0")
    await server.astart()
    ...
    await server.astop()

``Server`` options: ``address``, ``port`` (0 = a free one), ``broker`` (``"memory"``,
``"redis"`` or a ``Broker``), ``redis_url`` (a URL, or a Sentinel or Cluster target of
``rtbridge.redis_target``) and ``prefix`` (Redis broker), ``options``
(overrides of ``RTBRIDGE_SERVER`` keys), ``allowed_origins`` (instead of
``RTBRIDGE_ALLOWED_ORIGINS``) and ``wsgi_app`` (served on every other path). While a server
runs, ``LocalBackend`` publishes into it. See docs/server.md and docs/protocol.md.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Server, make_app
    from .brokers import Broker, MemoryBroker, RedisBroker
    from .cluster import ClusterBroker

__all__ = ["Broker", "ClusterBroker", "MemoryBroker", "RedisBroker", "Server", "make_app"]

# Where each public name lives. They are loaded on first use (PEP 562) because Tornado is an
# optional dependency (the ``server`` extra), while two modules of this package run in every
# Django process with or without it: ``checks`` (system checks) and ``registry`` (the entry
# point of the default ``local`` backend). Importing them must not import Tornado.
_PUBLIC = {
    "Server": "app",
    "make_app": "app",
    "Broker": "brokers",
    "MemoryBroker": "brokers",
    "RedisBroker": "brokers",
    "ClusterBroker": "cluster",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
