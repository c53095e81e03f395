"""Contract targets for the in-process backends (locmem, dummy, console)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import rtbridge
from rtbridge.backends.base import BaseBackend
from rtbridge.publishers import load_backend
from tests.contract import Delivery


@dataclass
class OutboxListener:
    channels: list[str]
    start: int = field(default_factory=lambda: len(rtbridge.outbox))

    def received(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        return [
            Delivery(channel, m.event, m.data)
            for m in rtbridge.outbox[self.start :]
            for channel in m.channels
            if channel in self.channels
        ]

    def close(self) -> None:
        pass


@dataclass
class LocMemTarget:
    backend: BaseBackend

    def listen(self, channels: list[str]) -> OutboxListener:
        return OutboxListener(channels)


def locmem_target(request: pytest.FixtureRequest) -> Iterator[LocMemTarget]:
    rtbridge.outbox.clear()
    yield LocMemTarget(load_backend("locmem"))
    rtbridge.outbox.clear()


@dataclass
class BlindTarget:
    backend: BaseBackend

    def listen(self, channels: list[str]) -> None:
        return None


def dummy_target(request: pytest.FixtureRequest) -> Iterator[BlindTarget]:
    yield BlindTarget(load_backend("dummy"))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class ConsoleListener:
    handler: _Records
    channels: list[str]

    def received(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self._parse()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._parse()

    def _parse(self) -> list[Delivery]:
        import json

        out = []
        for record in self.handler.records:
            event, channels, _exclude, payload = record.args  # type: ignore[misc]
            for channel in str(channels).split(","):
                if channel in self.channels:
                    out.append(Delivery(channel, str(event), json.loads(str(payload))))
        return out

    def close(self) -> None:
        logging.getLogger("rtbridge.console").removeHandler(self.handler)


@dataclass
class ConsoleTarget:
    backend: BaseBackend

    def listen(self, channels: list[str]) -> ConsoleListener:
        handler = _Records()
        logging.getLogger("rtbridge.console").addHandler(handler)
        logging.getLogger("rtbridge.console").setLevel(logging.INFO)
        return ConsoleListener(handler, channels)


def console_target(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield ConsoleTarget(load_backend("console"))
