"""The event loop a node makes for itself: asyncio's, or uvloop's if the settings ask for it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from importlib import import_module
from types import ModuleType
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = ["EVENT_LOOPS", "new_event_loop", "run"]

#: The values ``RTBRIDGE_SERVER["event_loop"]`` accepts.
EVENT_LOOPS = ("asyncio", "uvloop")


def _uvloop() -> ModuleType:
    # An optional dependency, imported only when asked for.
    try:
        return import_module("uvloop")
    except ImportError:
        raise ImproperlyConfigured(
            "RTBRIDGE_SERVER['event_loop'] is 'uvloop', but uvloop is not installed; "
            "pip install 'rtbridge[uvloop]', or set it to 'asyncio'."
        ) from None


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """Return a new event loop of ``kind`` (one of ``EVENT_LOOPS``)."""
    if kind == "uvloop":
        loop: asyncio.AbstractEventLoop = _uvloop().new_event_loop()
        return loop
    return asyncio.new_event_loop()


def run(coroutine: Coroutine[Any, Any, None], kind: str) -> None:
    """Run ``coroutine`` to completion on a new loop of ``kind``, as ``asyncio.run`` does."""
    if kind == "uvloop":
        _uvloop().run(coroutine)
    else:
        asyncio.run(coroutine)
