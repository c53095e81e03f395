"""The JS adapters over the vendors' real SDKs, configured by the Python backends' ``client_config()``.

Pusher goes through soketi, PubNub and Firebase through the loopback fakes of the wire tests;
the SDKs come from ``tests/wire/node_modules`` (``cd tests/wire && npm ci``).
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtbridge.backends.base import BaseBackend
from rtbridge.backends.firebase import FirebaseBackend
from rtbridge.backends.pubnub import PubNubBackend
from rtbridge.backends.pusher import PusherBackend
from rtbridge.messages import Message
from tests.wire.servers import (
    NODE_MODULES,
    node_or_skip,
    shared_fake_firebase,
    shared_fake_pubnub,
    shared_soketi,
)

LISTEN = Path(__file__).resolve().parents[2] / "rtbridge/clients/js/test/harness/listen.mjs"
SDK_PACKAGES = {"pusher": "pusher-js", "pubnub": "pubnub", "firebase": "firebase"}


def make_backend(name: str, config: pytest.Config) -> BaseBackend:
    if name == "pusher":
        return PusherBackend(**shared_soketi(config).options)
    if name == "pubnub":
        pubnub = shared_fake_pubnub(config)
        return PubNubBackend(
            publish_key=pubnub.publish_key,
            subscribe_key=pubnub.subscribe_key,
            origin=pubnub.host,
            ssl=False,
        )
    firebase = shared_fake_firebase(config)
    return FirebaseBackend(database_url=firebase.database_url, emulator_host=firebase.host)


class Listener:
    """``listen.mjs`` running the rtbridge client in Node; JSON lines arrive on a queue."""

    def __init__(self, node: str, config: dict[str, Any], subscriptions: list[Any]) -> None:
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.process = subprocess.Popen(
            [node, str(LISTEN), json.dumps(config), json.dumps(subscriptions), str(NODE_MODULES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            assert self.process.stderr is not None
            raise AssertionError(f"nothing from listen.mjs: {self.process.stderr.read()}") from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(params=["pusher", "pubnub", "firebase"])
def hosted(request: pytest.FixtureRequest) -> Iterator[tuple[BaseBackend, str]]:
    node = node_or_skip(SDK_PACKAGES[request.param])
    backend = make_backend(request.param, request.config)
    try:
        yield backend, node
    finally:
        backend.close()


def test_adapter_receives_filtered_events_and_skips_the_sender(
    hosted: tuple[BaseBackend, str],
) -> None:
    backend, node = hosted
    listener = Listener(node, backend.client_config(), [["todo.todoitem", {"todo_list__id": 1}]])
    try:
        hello = listener.next()
        assert hello.get("ready"), hello
        socket_id = hello["socketId"]
        assert socket_id
        channel = "todo.todoitem;todo_list_id=1"
        backend.publish(Message([channel], "created", {"id": 1, "text": "mine"}, exclude=socket_id))
        backend.publish(Message(["todo.todoitem;todo_list_id=2"], "created", {"id": 2}))
        backend.publish(Message([channel], "created", {"id": 3, "text": "milk"}))
        backend.publish(Message([channel], "updated", {"id": 3, "done": True}))
        backend.flush(10)
        received = [listener.next(), listener.next()]
        assert received == [
            {"channel": channel, "event": "created", "data": {"id": 3, "text": "milk"}},
            {"channel": channel, "event": "updated", "data": {"id": 3, "done": True}},
        ]
        assert listener.lines.empty()
    finally:
        listener.close()
