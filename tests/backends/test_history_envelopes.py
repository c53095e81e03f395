"""Each hosted backend's envelope with positions (built, no I/O), and the size it accounts for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtbridge import conf
from rtbridge.backends.pubnub import SEND_TIME_ALLOWANCE
from rtbridge.backends.pusher import PUSHER_POSITION_BYTES, PusherBackend
from rtbridge.exceptions import NotSupported, PayloadTooLarge, PublishError
from rtbridge.history import EPOCH_LENGTH, MAX_OFFSET, HistoryStore, Position, Replay
from rtbridge.messages import Message
from rtbridge.publishers import load_backend

WIDEST = Position(MAX_OFFSET, "E" * EPOCH_LENGTH)


class CountingStore(HistoryStore):
    """Hands out offsets from a counter per channel (the real stores are tested elsewhere)."""

    def __init__(self, settings: conf.HistorySettings | None = None) -> None:
        super().__init__(settings or conf.HistorySettings(True, 10, 60.0, "tests"))
        self.tops: dict[str, int] = {}

    def append(self, messages: Any) -> list[dict[str, Position]]:
        positions = []
        for message in messages:
            assigned = {}
            for name in message.channels:
                self.tops[name] = self.tops.get(name, 0) + 1
                assigned[name] = Position(self.tops[name], "epochepoch12")
            positions.append(assigned)
        return positions

    def replay(self, channel: str, since: Position | None) -> Replay:
        return Replay(channel, self.tops.get(channel, 0), "epochepoch12", None)


class RecordingPusher:
    """Stands in for the ``pusher.Pusher`` client: records what it is asked to send."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, str]]] = []

    def trigger_batch(self, entries: list[dict[str, str]], already_encoded: bool) -> dict[str, Any]:
        assert already_encoded
        self.batches.append(entries)
        return {}


def pusher(**options: Any) -> PusherBackend:
    return PusherBackend(app_id="1", key="k", secret="s", mode="sync", **options)


def sent_entries(backend: PusherBackend, calls: list[Any]) -> list[dict[str, str]]:
    recorder = RecordingPusher()
    backend._client = recorder
    for call in calls:
        call.send()
    return [entry for batch in recorder.batches for entry in batch]


def test_pusher_wraps_data_with_the_position_of_each_channel() -> None:
    backend = pusher()
    message = Message(["a", "b"], "said", {"text": "é"}, exclude="1.2")
    positions = [{"a": Position(7, "epochA"), "b": Position(1, "epochB")}]
    sent = sent_entries(backend, backend.build_calls([message], positions))
    assert sent == [
        {
            "channel": "a",
            "name": "said",
            "data": '{"data":{"text":"é"},"offset":7,"epoch":"epochA"}',
            "socket_id": "1.2",
        },
        {
            "channel": "b",
            "name": "said",
            "data": '{"data":{"text":"é"},"offset":1,"epoch":"epochB"}',
            "socket_id": "1.2",
        },
    ]
    for entry in sent:
        assert json.loads(entry["data"])["data"] == {"text": "é"}


def test_pusher_without_positions_sends_the_data_as_it_is() -> None:
    backend = pusher()
    calls = backend.build_calls([Message("a", "said", {"n": 1})])
    assert [call.label for call in calls] == ["trigger_batch(1 events)"]
    assert sent_entries(backend, calls)[0]["data"] == '{"n":1}'


def test_pusher_sends_a_wide_message_as_batch_entries_when_positions_differ() -> None:
    backend = pusher()
    channels = [f"c{i}" for i in range(25)]
    message = Message(channels, "fan", 1)
    plain = backend.build_calls([message])
    assert [call.label for call in plain] == ["trigger(25 channels)"]
    positioned = backend.build_calls([message], [{name: Position(1, "e") for name in channels}])
    assert [call.label for call in positioned] == ["trigger_batch(10 events)"] * 2 + [
        "trigger_batch(5 events)"
    ]
    assert [entry["channel"] for entry in sent_entries(backend, positioned)] == channels


def test_the_size_limit_shrinks_by_what_positions_add() -> None:
    assert (
        len('{"data":,"offset":9223372036854775807,"epoch":"EEEEEEEEEEEE"}')
        == PUSHER_POSITION_BYTES
    )
    backend = pusher()
    assert backend.max_payload_bytes == 10240
    backend.use_history(CountingStore())
    assert backend.max_payload_bytes == 10240 - PUSHER_POSITION_BYTES
    backend.use_history(None)
    assert backend.max_payload_bytes == 10240
    body = {"event": "e" * 64, "data": None, "exclude": "x" * 100}
    with_position = {**body, "offset": MAX_OFFSET, "epoch": WIDEST.epoch}
    # PubNub's size check counts what the SDK sends (json.dumps defaults) plus an allowance
    # for the position, which must cover the widest one.
    assert len(json.dumps(with_position)) - len(json.dumps(body)) <= SEND_TIME_ALLOWANCE


def test_load_backend_hands_hosted_backends_the_configured_store(settings: Any) -> None:
    settings.RTBRIDGE_HISTORY = {"store": "tests.backends.test_history_envelopes.CountingStore"}
    backend = load_backend("pusher", app_id="1", key="k", secret="s")
    try:
        assert isinstance(backend.history_store, CountingStore)  # type: ignore[attr-defined]
        with pytest.raises(PayloadTooLarge):
            Message("a", "e", "x" * 10200, max_bytes=backend.max_payload_bytes)
    finally:
        backend.close()
    settings.RTBRIDGE_HISTORY = None
    off = load_backend("pusher", app_id="1", key="k", secret="s")
    assert off.history_store is None and off.max_payload_bytes == 10240  # type: ignore[attr-defined]
    local = load_backend("locmem")
    with pytest.raises(NotSupported):
        local.use_history(CountingStore())
    with pytest.raises(NotSupported, match="resume on their socket"):
        local.read_history("a", None)


def test_pubnub_and_firebase_put_offset_and_epoch_next_to_event_and_data() -> None:
    from rtbridge.backends import firebase as firebase_module
    from rtbridge.backends import pubnub as pubnub_module

    message = Message("a", "said", [1, 2], exclude="sock")
    assert pubnub_module._envelope(message, [1, 2], Position(3, "ep")) == {
        "event": "said",
        "data": [1, 2],
        "exclude": "sock",
        "offset": 3,
        "epoch": "ep",
    }
    assert pubnub_module._envelope(message, [1, 2], None) == {
        "event": "said",
        "data": [1, 2],
        "exclude": "sock",
    }
    value = firebase_module._envelope(message, [1, 2], Position(3, "ep"))
    assert value == {
        "event": "said",
        "data": [1, 2],
        "ts": {".sv": "timestamp"},
        "exclude": "sock",
        "offset": 3,
        "epoch": "ep",
    }
    # On the wire: tests/wire/test_history_wire.py.


def test_a_store_failure_fails_the_batch_before_any_vendor_call() -> None:
    class Down(CountingStore):
        def append(self, messages: Any) -> list[dict[str, Position]]:
            raise PublishError("history store down", retryable=True)

    backend = pusher()
    backend.use_history(Down())
    recorder = RecordingPusher()
    backend._client = recorder
    with pytest.raises(PublishError, match="history store down"):
        backend.publish(Message("a", "e", 1))
    silent = pusher(fail_silently=True)
    silent.use_history(Down())
    silent._client = recorder
    silent.send([Message("a", "e", 1)])
    assert silent.failed_count == 1
    assert recorder.batches == [], "nothing reaches the vendor without a position"
