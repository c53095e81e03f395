"""Switching RTBRIDGE_BACKEND to a hosted backend keeps the model mixin and the JS client working."""

from __future__ import annotations

from typing import Any

import pytest

import rtbridge
from rtbridge.publishers import get_backend
from tests.testapp.models import TodoItem, TodoList
from tests.wire.servers import (
    NodeListener,
    shared_fake_firebase,
    shared_fake_pubnub,
    shared_soketi,
)

pytestmark = pytest.mark.django_db(transaction=True)


def backend_settings(alias: str, config: pytest.Config) -> dict[str, Any]:
    if alias == "pusher":
        return shared_soketi(config).options
    if alias == "pubnub":
        server = shared_fake_pubnub(config)
        return {
            "publish_key": server.publish_key,
            "subscribe_key": server.subscribe_key,
            "origin": server.host,
            "ssl": False,
        }
    firebase = shared_fake_firebase(config)
    return {"database_url": firebase.database_url, "emulator_host": firebase.host}


@pytest.mark.parametrize("alias", ["pusher", "pubnub", "firebase"])
def test_saves_reach_the_rtbridge_js_client(
    alias: str, settings: Any, request: pytest.FixtureRequest
) -> None:
    settings.RTBRIDGE_BACKEND = alias
    settings.RTBRIDGE_OPTIONS = backend_settings(alias, request.config)
    todo_list = TodoList.objects.create(name="Groceries")
    rtbridge.flush(5)
    channel = f"testapp.todoitem;todo_list_id={todo_list.pk}"
    listener = NodeListener(
        "listen_rtbridge.mjs", {"config": get_backend().client_config(), "channels": [channel]}
    )
    try:
        item = TodoItem.objects.create(todo_list=todo_list, text="milk")
        item.done = True
        item.save()
        limit = get_backend().max_payload_bytes
        big = TodoItem.objects.create(todo_list=todo_list, text="x" * ((limit or 20_000) + 10))
        rtbridge.flush(5)
        got = listener.received(3)
    finally:
        listener.close()
    assert [d.event for d in got[:2]] == ["created", "updated"]
    assert got[0].data["text"] == "milk" and got[0].data["id"] == item.pk
    if limit is None:  # Firebase: no size limit, the object itself arrives
        assert got[2].event == "created" and got[2].data["id"] == big.pk
    else:  # too big for Pusher (10 KB) and PubNub (32 KiB): clients are told to reload it
        assert (got[2].event, got[2].data) == ("refetch", {"id": big.pk, "event": "created"})
