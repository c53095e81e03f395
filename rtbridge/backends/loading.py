"""``backend_class()``: the one place a backend setting becomes a ``BaseBackend`` subclass."""

from __future__ import annotations

from django.utils.module_loading import import_string

from .. import conf
from ..exceptions import ImproperlyConfigured
from .base import BaseBackend

__all__ = ["backend_class"]


def backend_class(path: str | None = None) -> type[BaseBackend]:
    """Return the backend class an alias or dotted path names (default: ``RTBRIDGE_BACKEND``).

    Imports only that class's module (a vendor SDK is imported later, when it is used).
    Raises ``ImproperlyConfigured`` naming the value if it is not a known alias, cannot be
    imported, or is not a :class:`~rtbridge.backends.base.BaseBackend` subclass.
    """
    dotted = conf.resolve_backend_path(path)
    try:
        found = import_string(dotted)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND names {dotted!r}, which cannot be imported: {exc}. Check the "
            "dotted path (module.ClassName) and that its package is installed."
        ) from exc
    if not (isinstance(found, type) and issubclass(found, BaseBackend)):
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND names {dotted!r}, which is not a subclass of "
            "rtbridge.backends.base.BaseBackend; subclass it and implement publish(message)."
        )
    return found
