"""``dummy``: accepts every message and sends nothing (for tests and for switching off)."""

from __future__ import annotations

from ..messages import Message
from .base import BaseBackend, SelfHostedAuthMixin


class DummyBackend(SelfHostedAuthMixin, BaseBackend):
    """Drop every message after validation."""

    alias = "dummy"

    def publish(self, message: Message) -> None:
        """Do nothing: the message was already validated."""
