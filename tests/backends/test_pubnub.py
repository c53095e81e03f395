"""PubNubBackend: the message envelope, per-channel order, concurrency, limits and faults on the wire."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtbridge.backends.pubnub import (
    PUBLIC_CHANNELS_PATTERN,
    PUBNUB_MESSAGE_LIMIT,
    SEND_TIME_ALLOWANCE,
    PubNubBackend,
    sdk_message_size,
)
from rtbridge.channel_names import encode_for_pubnub
from rtbridge.exceptions import InvalidChannelName, PayloadRefused, PayloadTooLarge, PublishError
from rtbridge.messages import Message
from tests.services import free_port
from tests.wire.fakes.base import Fault
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.fixtures import fake_pubnub
from tests.wire.servers import NodeListener, check_js_client_drops_only_its_own_excluded_messages

__all__ = ["fake_pubnub"]


@pytest.fixture
def make_backend(fake_pubnub: FakePubNub) -> Iterator[Any]:
    created: list[PubNubBackend] = []

    def make(**options: Any) -> PubNubBackend:
        options = {
            "publish_key": fake_pubnub.publish_key,
            "subscribe_key": fake_pubnub.subscribe_key,
            "origin": fake_pubnub.host,
            "ssl": False,
            "retry_backoff": 0.01,
            **options,
        }
        backend = PubNubBackend(**options)
        created.append(backend)
        return backend

    yield make
    for backend in created:
        backend.close()


def publishes(server: FakePubNub) -> list[Any]:
    return [r for r in list(server.requests) if r.path.startswith("/publish/")]


# Configuration -----------------------------------------------------------------------------


def test_missing_and_invalid_options_are_named() -> None:
    with pytest.raises(ImproperlyConfigured, match="subscribe_key"):
        PubNubBackend(publish_key="p")
    with pytest.raises(ImproperlyConfigured, match="user_id=''"):
        PubNubBackend(publish_key="p", subscribe_key="s", user_id="")
    with pytest.raises(ImproperlyConfigured, match="concurrency=0"):
        PubNubBackend(publish_key="p", subscribe_key="s", concurrency=0)


def test_client_config_has_no_publish_or_secret_key() -> None:
    backend = PubNubBackend(publish_key="pub-1", subscribe_key="sub-1", secret_key="sec-1")
    # accessManager: every subscribe needs a token, so pages ask for one before the first.
    assert backend.client_config() == {
        "backend": "pubnub",
        "subscribeKey": "sub-1",
        "accessManager": True,
    }
    assert "accessManager" not in PubNubBackend(publish_key="p", subscribe_key="s").client_config()
    local = PubNubBackend(publish_key="p", subscribe_key="s", origin="127.0.0.1:9", ssl=False)
    assert local.client_config() == {
        "backend": "pubnub",
        "subscribeKey": "s",
        "origin": "127.0.0.1:9",
        "ssl": False,
    }


def test_the_sdk_is_imported_only_when_sending() -> None:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'; "
        "django.setup(); import sys, rtbridge; "
        "from rtbridge.backends.pubnub import PubNubBackend; "
        "PubNubBackend(publish_key='p', subscribe_key='s').client_config(); "
        "print('pubnub' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# On the wire ---------------------------------------------------------------------------------


def test_the_js_sdk_receives_the_envelope_in_order(
    fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    backend = make_backend()
    name = "todo.item;list_id=7"
    config = {
        "subscribeKey": fake_pubnub.subscribe_key,
        "origin": fake_pubnub.host,
        "channels": [[name, encode_for_pubnub(name)]],
    }
    listener = NodeListener("listen_pubnub.mjs", config)
    try:
        backend.publish(Message(name, "created", {"id": 1, "title": "é"}))
        backend.publish_many([Message(name, "n", i) for i in range(20)])
        backend.flush(5)
        got = listener.received(21)
    finally:
        listener.close()
    assert got[0].event == "created" and got[0].data == {"id": 1, "title": "é"}
    assert [d.data for d in got[1:]] == list(range(20))


def test_each_message_is_one_post_per_channel_with_the_documented_body(
    fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    backend = make_backend(mode="sync")
    before = len(publishes(fake_pubnub))
    backend.publish(Message(["env.a", "env.b"], "updated", {"id": 2}, exclude="sock-1"))
    sent = publishes(fake_pubnub)[before:]
    assert [r.method for r in sent] == ["POST", "POST"]
    assert sorted(r.path.split("/")[5] for r in sent) == ["env~a", "env~b"]
    expected = {"event": "updated", "data": {"id": 2}, "exclude": "sock-1"}
    assert fake_pubnub.received("env~a") == [expected]
    assert fake_pubnub.received("env~b") == [expected]
    assert json.loads(sent[0].body) == expected


def test_channels_are_published_concurrently(fake_pubnub: FakePubNub, make_backend: Any) -> None:
    fake_pubnub.inject(Fault(delay=0.2, times=16, path_prefix="/publish/"))
    backend = make_backend(mode="sync", concurrency=8)
    start = time.monotonic()
    backend.publish(Message([f"fan.{i}" for i in range(16)], "e", 1))
    elapsed = time.monotonic() - start
    assert elapsed < 16 * 0.2 / 3, elapsed  # about 2 rounds of 8, not 16 in a row
    assert all(fake_pubnub.received(f"fan~{i}") for i in range(16))


def test_a_retry_resumes_after_the_last_publish_that_succeeded(
    fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    fake_pubnub.inject(Fault(status=503, times=1, after=1, path_prefix="/publish/"))
    backend = make_backend(batch_window=0.05)
    backend.publish_many([Message("resume", "n", i) for i in range(3)])
    backend.flush(5)
    assert [m["data"] for m in fake_pubnub.received("resume")] == [0, 1, 2]
    assert backend.failed_count == 0


#: Realistic data that the SDK's ``json.dumps`` makes 1.5 to 6 times larger than compact UTF-8.
NEAR_LIMIT_DATA = {
    "cjk": lambda n: {"title": ("中文标题" * (n // 4 + 1))[:n]},
    "emoji": lambda n: {"note": ("ok 😀🎉" * (n // 5 + 1))[:n]},
    "accents": lambda n: {"name": ("Ærøskøbing é à ü" * (n // 16 + 1))[:n]},
    "dense ints": lambda n: {"ids": [7] * n},
}


def largest_accepted(backend: PubNubBackend, make: Any, channel: str) -> int:
    """Return the largest n whose ``make(n)`` passes ``check_message`` (bisection)."""
    low, high = 1, 40_000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            backend.check_message(Message(channel, "e", make(middle), exclude="s" * 100))
        except PayloadTooLarge:
            high = middle - 1
        else:
            low = middle
    return low


@pytest.mark.parametrize("kind", list(NEAR_LIMIT_DATA))
def test_near_limit_non_ascii_and_dense_data_go_out_or_are_refused_up_front(
    kind: str, fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    backend = make_backend(mode="sync")
    make = NEAR_LIMIT_DATA[kind]
    channel = "size.near;list=7"
    n = largest_accepted(backend, make, channel)
    fitting = Message(channel, "e", make(n), exclude="s" * 100)
    # The compact UTF-8 size is far below what the SDK sends (the undercount of issue 14).
    assert fitting.size < PUBNUB_MESSAGE_LIMIT * 0.9
    before = len(publishes(fake_pubnub))
    backend.publish(fitting)
    sent = publishes(fake_pubnub)[before:]
    assert [r.status for r in sent] == [200]
    assert fake_pubnub.received(encode_for_pubnub(channel))[-1]["data"] == make(n)
    # rtbridge measured exactly the bytes PubNub counts (body + channel in the path).
    body = json.loads(sent[0].body)
    counted = len(sent[0].body) + len(sent[0].path.split("/")[5])
    assert sdk_message_size(body, encode_for_pubnub(channel)) == counted
    assert PUBNUB_MESSAGE_LIMIT - SEND_TIME_ALLOWANCE - 40 < counted <= PUBNUB_MESSAGE_LIMIT

    over = Message(channel, "e", make(n + 1), exclude="s" * 100)
    with pytest.raises(PayloadTooLarge, match="as PubNub counts it") as info:
        backend.publish(over)
    assert info.value.limit == PUBNUB_MESSAGE_LIMIT and info.value.size > PUBNUB_MESSAGE_LIMIT
    assert len(publishes(fake_pubnub)) == before + 1, "refused before any request"


def test_pubnubs_400_message_too_large_is_payload_refused_not_retried(
    fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    backend = make_backend(mode="sync", max_attempts=3)
    # Past rtbridge's own check (as a message from another publisher could be): PubNub judges.
    huge = Message("size.forced", "e", {"title": "中" * 6000})
    before = len(publishes(fake_pubnub))
    with pytest.raises(PayloadRefused, match="too large") as info:
        backend.dispatcher.submit([huge])
    assert isinstance(info.value, PayloadTooLarge) and isinstance(info.value, PublishError)
    assert info.value.status == 400 and not info.value.retryable
    assert [r.status for r in publishes(fake_pubnub)[before:]] == [400], "not retried"


def test_presence_suffix_channels_are_refused(make_backend: Any) -> None:
    from rtbridge.tokens import Grant

    backend = make_backend(mode="sync")
    with pytest.raises(InvalidChannelName, match="-pnpres.*presence events"):
        backend.publish(Message(["ok", "room-pnpres"], "e", 1))
    with pytest.raises(InvalidChannelName, match="-pnpres"):
        backend.auth_response("tab-1", Grant("private-room-pnpres", "1"))


# Faults --------------------------------------------------------------------------------------


def test_wrong_publish_key_is_a_400_without_retry(
    fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    backend = make_backend(publish_key="wrong", mode="sync")
    before = len(publishes(fake_pubnub))
    with pytest.raises(PublishError) as info:
        backend.publish(Message("c", "e", 1))
    assert info.value.status == 400 and "400" in str(info.value)
    assert len(publishes(fake_pubnub)) == before + 1


def test_5xx_is_retried_then_counted(fake_pubnub: FakePubNub, make_backend: Any) -> None:
    fake_pubnub.inject(Fault(status=502, times=2, path_prefix="/publish/"))
    backend = make_backend()
    backend.publish(Message("retry", "e", 1))
    backend.flush(5)
    assert fake_pubnub.received("retry") == [{"event": "e", "data": 1, "exclude": None}]
    fake_pubnub.inject(Fault(status=500, times=3, path_prefix="/publish/"))
    failing = make_backend(max_attempts=3)
    failing.publish(Message("retry", "e", 2))
    failing.flush(5)
    assert failing.failed_count == 1
    assert failing.dispatcher.last_error is not None
    assert failing.dispatcher.last_error.status == 500


def test_a_hanging_server_is_cut_off_by_the_timeout(
    fake_pubnub: FakePubNub, make_backend: Any
) -> None:
    fake_pubnub.inject(Fault(delay=3.0, times=2, path_prefix="/publish/"))
    backend = make_backend(mode="sync", timeout=1, max_attempts=2)
    start = time.monotonic()
    with pytest.raises(PublishError, match="unreachable") as info:
        backend.publish(Message("c", "e", 1))
    assert info.value.retryable
    assert time.monotonic() - start < 2 * 1 + 0.8


def test_server_down_never_blocks_the_request(make_backend: Any) -> None:
    down = f"127.0.0.1:{free_port()}"
    background = make_backend(origin=down, max_attempts=2)
    start = time.perf_counter()
    background.publish(Message("c", "e", 1))
    assert time.perf_counter() - start < 0.05  # not the 0.5 s+ a send would take
    background.flush(10)
    assert background.failed_count == 1
    sync = make_backend(origin=down, mode="sync", max_attempts=2, timeout=1)
    with pytest.raises(PublishError, match="unreachable"):
        sync.publish(Message("c", "e", 1))


def test_the_rtbridge_js_client_drops_only_its_own_excluded_messages(
    make_backend: Any,
) -> None:
    check_js_client_drops_only_its_own_excluded_messages(make_backend())


# Access Manager --------------------------------------------------------------------------------


def test_without_secret_key_the_answer_has_no_token(make_backend: Any) -> None:
    from rtbridge.tokens import Grant

    backend = make_backend()
    member = {"id": "7", "info": {}}
    answer = backend.auth_response("tab-1", Grant("presence-a.b", "7", member))
    assert answer == {"channel": "presence-a~b", "channel_data": member}


def test_token_ttl_and_whispers_options(make_backend: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="token_ttl=0.*minutes"):
        make_backend(token_ttl=0)
    assert "publishKey" not in make_backend().client_config()
    config = make_backend(client_whispers=True).client_config()
    assert config["publishKey"] == "demo-pub"


def test_tokens_are_per_user_and_connection(make_backend: Any, fake_pubnub: FakePubNub) -> None:
    from django.core.cache import cache

    from rtbridge.tokens import Grant

    cache.clear()
    fake_pubnub.secret_key = "sec"
    backend = make_backend(secret_key="sec", token_ttl=5)

    def channels(answer: dict[str, Any]) -> dict[str, Any]:
        parsed = backend.client.parse_token(answer["token"])
        assert parsed["ttl"] == 5
        # Every token reads every public channel (Access Manager wants a token for them too).
        assert {k: v["read"] for k, v in parsed["patterns"]["channels"].items()} == {
            PUBLIC_CHANNELS_PATTERN: True
        }
        return {name: p["write"] for name, p in parsed["resources"]["channels"].items()}

    public = backend.auth_response("tab-1", Grant("news", "1"))
    assert public["channel"] == "news" and channels(public) == {}
    backend.auth_response("tab-1", Grant("private-a", "1"))
    ann = backend.auth_response("tab-1", Grant("presence-b", "1", {"id": "1", "info": {}}))
    assert channels(ann) == {"private-a": False, "presence-b": False, "presence-b-pnpres": False}
    # A public channel asked later gets a token that still covers the protected ones.
    assert set(channels(backend.auth_response("tab-1", Grant("sports", "1")))) == {
        "private-a",
        "presence-b",
        "presence-b-pnpres",
    }
    # Another user naming Ann's connection does not inherit her channels.
    mallory = backend.auth_response("tab-1", Grant("private-c", "2"))
    assert channels(mallory) == {"private-c": False}
    assert backend.client.parse_token(mallory["token"])["authorized_uuid"] == "tab-1"


def test_the_fake_evaluates_the_public_pattern_and_names_only_refused_channels(
    make_backend: Any, fake_pubnub: FakePubNub
) -> None:
    from rtbridge.tokens import Grant

    fake_pubnub.secret_key = "sec"
    backend = make_backend(secret_key="sec")
    token = backend.auth_response("tab-2", Grant("private-a", "1"))["token"]
    base = f"http://{fake_pubnub.host}/v2/subscribe/{fake_pubnub.subscribe_key}"

    def subscribe(channels: str) -> tuple[int, Any]:
        url = f"{base}/{channels}/0?uuid=tab-2&auth={quote(token, safe='')}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert subscribe("news,sports~results,private-a")[0] == 200
    status, body = subscribe("news,private-b,presence-c,private-a")
    assert status == 403 and body["message"] == "Forbidden"
    assert body["payload"] == {"channels": ["presence-c", "private-b"]}


def test_a_refused_grant_is_a_publish_error(make_backend: Any, fake_pubnub: FakePubNub) -> None:
    from rtbridge.tokens import Grant

    fake_pubnub.secret_key = "the-real-secret"
    backend = make_backend(secret_key="a-wrong-secret")
    with pytest.raises(PublishError, match="Access Manager refused a token for private-a.*403"):
        backend.auth_response("tab-9", Grant("private-a", "9"))


def test_revoke_cancels_the_users_tokens_and_drops_the_channel(
    make_backend: Any, fake_pubnub: FakePubNub
) -> None:
    from django.core.cache import cache

    from rtbridge.tokens import Grant

    cache.clear()
    with pytest.raises(NotImplementedError, match="without secret_key"):
        make_backend().revoke("7", "private-room")
    fake_pubnub.secret_key = "sec"
    backend = make_backend(secret_key="sec", mode="sync")
    first = backend.auth_response("tab-7", Grant("private-room", "7"))["token"]
    second = backend.auth_response("tab-8", Grant("private-room", "7"))["token"]
    other = backend.auth_response("tab-9", Grant("private-room", "8"))["token"]
    backend.revoke("7", "private-room")
    for token, uuid in ((first, "tab-7"), (second, "tab-8")):
        assert fake_pubnub.check_token(token, uuid, {"private-room": 1}) == "Token is revoked"
    assert fake_pubnub.check_token(other, "tab-9", {"private-room": 1}) is None
    # A new token for the revoked user no longer names the channel unless granted again.
    renewed = backend.auth_response("tab-7", Grant("news", "7"))["token"]
    assert "private-room" not in backend.client.parse_token(renewed)["resources"]["channels"]


def test_guard_close_releases_the_sdk_http_client_through_its_public_handler(
    make_backend: Any,
) -> None:
    """Guard for the pubnub SDK: ``PubNub.get_request_handler()`` and the handler's ``close()``.

    ``PubNubBackend.close()`` relies on both (``_close_http_client``) to stop the SDK's HTTP
    client and watchdog thread. If this fails after an SDK upgrade, adapt that function and
    the bound in pyproject.toml's ``pubnub`` extra.
    """
    from pubnub.pubnub import PubNub

    assert hasattr(PubNub, "get_request_handler"), "PubNub.get_request_handler() is gone"
    backend = make_backend(mode="sync")
    backend.publish(Message("c", "e", 1))
    handler = backend.client.get_request_handler()
    assert callable(getattr(type(handler), "close", None)), (
        f"the SDK's default request handler {type(handler).__name__} has no close(): "
        "PubNubBackend.close() can no longer release its HTTP client"
    )
    closed: list[bool] = []
    real_close = handler.close

    def spy() -> None:
        closed.append(True)
        real_close()

    handler.close = spy
    backend.close()
    assert closed == [True]


@pytest.mark.django_db(transaction=True)
def test_a_model_change_pubnub_would_refuse_becomes_a_refetch(
    settings: Any, fake_pubnub: FakePubNub
) -> None:
    """Compact JSON under PubNub's limit, ASCII-escaped JSON over it: the mixin sends refetch."""
    from tests.testapp.models import TodoItem, TodoList

    settings.RTBRIDGE_BACKEND = "pubnub"
    settings.RTBRIDGE_OPTIONS = {
        "publish_key": fake_pubnub.publish_key,
        "subscribe_key": fake_pubnub.subscribe_key,
        "origin": fake_pubnub.host,
        "ssl": False,
        "mode": "sync",
    }
    todo_list = TodoList.objects.create(name="l")
    text = "漢" * 9000  # 27,000 bytes of UTF-8; 54,000 as the SDK's \\uXXXX escapes
    item = TodoItem.objects.create(todo_list=todo_list, text=text)
    channel = encode_for_pubnub(f"testapp.todoitem.{item.pk}")
    (sent,) = fake_pubnub.received(channel)
    assert sent["event"] == "refetch"
    assert sent["data"] == {"id": item.pk, "event": "created"}
    # Where it still fits (a short text), the data itself goes out.
    item.text = "漢" * 100
    item.save()
    assert fake_pubnub.received(channel)[-1]["event"] == "updated"
