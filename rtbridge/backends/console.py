"""``console``: log each message through ``logging`` (logger ``rtbridge.console``)."""

from __future__ import annotations

import logging
from typing import Any

from ..exceptions import ImproperlyConfigured
from ..messages import Message
from .base import BaseBackend, SelfHostedAuthMixin

logger = logging.getLogger("rtbridge.console")


class ConsoleBackend(SelfHostedAuthMixin, BaseBackend):
    """Log every message at ``level`` (default INFO) instead of sending it."""

    alias = "console"

    def __init__(self, *, level: int | str = logging.INFO, **options: Any) -> None:
        super().__init__(**options)
        resolved = logging.getLevelName(level) if isinstance(level, str) else level
        if not isinstance(resolved, int):
            raise ImproperlyConfigured(
                f"ConsoleBackend option level={level!r} is not a logging level; "
                "use e.g. 'INFO', 'DEBUG' or logging.INFO."
            )
        self.level = resolved

    def publish(self, message: Message) -> None:
        """Log the channels, the event and the JSON payload."""
        logger.log(
            self.level,
            "publish %s on %s%s: %s",
            message.event,
            ",".join(message.channels),
            f" (exclude {message.exclude})" if message.exclude else "",
            message.payload,
        )
