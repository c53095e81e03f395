"""The backend contract suite's vocabulary: targets, listeners, deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from rtbridge.backends.base import BaseBackend


@dataclass(frozen=True)
class Delivery:
    """One message as a subscriber on one channel received it."""

    channel: str
    event: str
    data: Any


class Listener(Protocol):
    def received(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        """Wait until ``count`` deliveries arrived (or the timeout passed); return them all."""

    def close(self) -> None:
        """Stop listening."""


class Target(Protocol):
    backend: BaseBackend

    def listen(self, channels: list[str]) -> Listener | None:
        """Start observing ``channels`` (ready on return); ``None`` if it cannot be observed."""
