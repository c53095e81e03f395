"""The backend contract: every backend passes the same suite (add a backend with one line)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from rtbridge.messages import Message
from tests.contract import Delivery, Target

#: backend name → "module:factory"; the factory is a generator taking the pytest request.
CONTRACT_TARGETS: dict[str, str] = {
    "locmem": "tests.contract_targets:locmem_target",
    "dummy": "tests.contract_targets:dummy_target",
    "console": "tests.contract_targets:console_target",
    "redis": "tests.server.contract_target:redis_target",
    "local": "tests.server.contract_target:local_target",
    "pusher": "tests.wire.contract_target:pusher_target",
    "pubnub": "tests.wire.contract_target:pubnub_target",
    "firebase": "tests.wire.contract_target:firebase_target",
}


@pytest.fixture(params=sorted(CONTRACT_TARGETS))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    module, _, name = CONTRACT_TARGETS[request.param].partition(":")
    factory = import_string(f"{module}.{name}")
    generator = factory(request)
    value = next(generator)
    try:
        yield value
    finally:
        value.backend.flush(5)
        value.backend.close()
        next(generator, None)


@contextmanager
def listening(target: Target, channels: list[str]) -> Iterator[Any]:
    listener = target.listen(channels)
    try:
        yield listener
    finally:
        if listener is not None:
            listener.close()


def _wait(target: Target, listener: Any, count: int) -> list[Delivery]:
    target.backend.flush(5)
    return listener.received(count, timeout=5.0)


def test_publish_reaches_a_subscriber(target: Target) -> None:
    with listening(target, ["contract.one"]) as listener:
        target.backend.publish(Message("contract.one", "hello", {"n": 1, "s": "é"}))
        if listener is None:
            return
        assert _wait(target, listener, 1) == [Delivery("contract.one", "hello", {"n": 1, "s": "é"})]


def test_one_message_on_many_channels(target: Target) -> None:
    channels = [f"contract.many.{i}" for i in range(3)]
    with listening(target, channels) as listener:
        target.backend.publish(Message(channels, "fan", [1, 2]))
        if listener is None:
            return
        got = _wait(target, listener, 3)
        assert sorted(d.channel for d in got) == channels
        assert {(d.event, json.dumps(d.data)) for d in got} == {("fan", "[1, 2]")}


def test_publish_many_keeps_order_per_channel(target: Target) -> None:
    with listening(target, ["contract.order"]) as listener:
        target.backend.publish_many([Message("contract.order", "n", i) for i in range(20)])
        if listener is None:
            return
        assert [d.data for d in _wait(target, listener, 20)] == list(range(20))


def test_apublish_and_apublish_many(target: Target) -> None:
    async def run() -> None:
        await target.backend.apublish(Message("contract.async", "a", 1))
        await target.backend.apublish_many(
            [Message("contract.async", "b", 2), Message("contract.async", "c", 3)]
        )

    with listening(target, ["contract.async"]) as listener:
        asyncio.run(run())
        if listener is None:
            return
        assert [d.event for d in _wait(target, listener, 3)] == ["a", "b", "c"]


def test_exclude_is_accepted(target: Target) -> None:
    with listening(target, ["contract.exclude"]) as listener:
        target.backend.publish(Message("contract.exclude", "x", None, exclude="123.456"))
        if listener is None:
            return
        # The listener has another socket id, so it still receives the message.
        assert _wait(target, listener, 1)[0].event == "x"


def test_client_config_is_public_json(target: Target) -> None:
    config = target.backend.client_config()
    assert config["backend"] == target.backend.alias
    text = json.dumps(config)
    for secret_name in ("secret", "secret_key", "password", "credentials"):
        value = getattr(target.backend, secret_name, None)
        if isinstance(value, str) and value:
            assert value not in text, f"client_config() leaks {secret_name}"


def test_open_close_and_context_manager(target: Target) -> None:
    backend = target.backend
    backend.open()
    backend.open()
    backend.close()
    backend.close()
    with backend as entered:
        assert entered is backend


def test_unknown_option_names_class_and_key(target: Target) -> None:
    backend_class = type(target.backend)
    with pytest.raises(ImproperlyConfigured) as info:
        backend_class(no_such_option=1)  # type: ignore[call-arg]
    assert backend_class.__name__ in str(info.value)
    assert "'no_such_option'" in str(info.value)
