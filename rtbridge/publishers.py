"""``publish``/``apublish``, the backend cache, and (below) model publishing."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from . import conf
from .backends.base import BaseBackend
from .exceptions import ImproperlyConfigured
from .messages import Message

__all__ = ["apublish", "flush", "get_backend", "load_backend", "publish", "reset_backend"]

_backend: BaseBackend | None = None
_backend_lock = threading.Lock()


def load_backend(path: str | None = None, **options: Any) -> BaseBackend:
    """Build a new backend from an alias or dotted path (default: ``RTBRIDGE_BACKEND``).

    ``options`` default to ``RTBRIDGE_OPTIONS``.
    """
    dotted = conf.resolve_backend_path(path)
    try:
        backend_class = import_string(dotted)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND names {dotted!r}, which cannot be imported: {exc}"
        ) from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseBackend)):
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND names {dotted!r}, which is not a subclass of "
            "rtbridge.backends.base.BaseBackend."
        )
    backend_class.check_sdk()
    if path is None and not options:
        options = conf.backend_options()
    return backend_class(**options)


def get_backend() -> BaseBackend:
    """Return the active backend, built once from the settings and cached."""
    global _backend
    backend = _backend
    if backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = load_backend()
            backend = _backend
    return backend


def reset_backend() -> None:
    """Close and forget the cached backend; the next publish builds it from the settings."""
    global _backend
    with _backend_lock:
        backend, _backend = _backend, None
    if backend is not None:
        backend.flush()
        backend.close()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("RTBRIDGE_BACKEND", "RTBRIDGE_OPTIONS"):
        reset_backend()


def _build(
    backend: BaseBackend,
    channels: str | Iterable[str],
    event: str,
    data: Any,
    exclude: str | None,
) -> Message:
    return Message(channels, event, data, exclude=exclude, max_bytes=backend.max_payload_bytes)


def publish(
    channels: str | Iterable[str], event: str, data: Any = None, *, exclude: str | None = None
) -> Message:
    """Publish ``event`` with ``data`` on one channel or several; return the validated message.

    Everything is validated before the backend is called, so a bad name, data that is not
    JSON or an oversize payload raises (``InvalidMessage``) and nothing is published.
    ``exclude`` is the socket id of a client that must not receive it (usually the sender).
    """
    backend = get_backend()
    message = _build(backend, channels, event, data, exclude)
    backend.send([message])
    return message


async def apublish(
    channels: str | Iterable[str], event: str, data: Any = None, *, exclude: str | None = None
) -> Message:
    """Publish from async code without blocking the event loop; see :func:`publish`."""
    backend = get_backend()
    message = _build(backend, channels, event, data, exclude)
    await backend.asend([message])
    return message


def publish_messages(messages: list[Message]) -> None:
    """Send already-validated messages through the active backend, in order."""
    if messages:
        get_backend().send(messages)


def flush(timeout: float | None = None) -> None:
    """Wait until the active backend has sent everything it queued."""
    if _backend is not None:
        _backend.flush(timeout)
