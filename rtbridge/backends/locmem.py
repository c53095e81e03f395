"""``locmem``: keep published messages in ``rtbridge.outbox``, like Django's locmem mail."""

from __future__ import annotations

from typing import Any

from ..messages import Message
from .base import BaseBackend, SelfHostedAuthMixin

__all__ = ["LocMemBackend", "outbox"]

#: Messages published through this backend, in order; also ``rtbridge.outbox`` (the same
#: list: clear it, do not rebind it).
outbox: list[Message] = []


class LocMemBackend(SelfHostedAuthMixin, BaseBackend):
    """Append a copy of every message to ``rtbridge.outbox`` (data as a client receives it)."""

    alias = "locmem"

    def __init__(self, *, max_payload_bytes: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        # Tests can set a limit to exercise oversize handling without a hosted backend.
        self.max_payload_bytes = max_payload_bytes

    def publish(self, message: Message) -> None:
        """Append a decoded copy of ``message`` to ``rtbridge.outbox``."""
        outbox.append(message.as_received())
