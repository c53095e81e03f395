"""The loopback fakes answer the vendors' own SDKs the way the real services do."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fakes.pubnub import FakePubNub


@pytest.fixture
def firebase_app(fake_firebase: FakeFirebase) -> Iterator[Any]:
    import firebase_admin

    url = f"http://{fake_firebase.host}?ns={fake_firebase.namespace}"
    app = firebase_admin.initialize_app(None, {"databaseURL": url}, name="fake-check")
    yield app
    firebase_admin.delete_app(app)


def test_firebase_rest_subset_with_firebase_admin(
    fake_firebase: FakeFirebase, firebase_app: Any
) -> None:
    from firebase_admin import db

    ref = db.reference("/fakecheck", app=firebase_app)
    ref.set({"a": 1, "b": {"c": 2}, "d": 3, "e": [1, 2]})
    pushed = ref.child("list").push({"x": 1})
    ref.update({"b/c": 5, "d": None, "n/m": {".sv": "timestamp"}})
    assert ref.child("b").get() == {"c": 5}
    assert ref.child("d").get() is None
    assert isinstance(ref.child("n/m").get(), int)
    assert ref.child("e").get() == [1, 2]
    assert ref.child("list").get() == {pushed.key: {"x": 1}}
    assert ref.get(shallow=True) == {"a": True, "b": True, "e": True, "list": True, "n": True}
    keys = db.reference("/fakecheck/keys", app=firebase_app)
    keys.set({k: i for i, k in enumerate("abcde")})
    assert list(keys.order_by_key().limit_to_last(2).get()) == ["d", "e"]
    assert list(keys.order_by_key().start_at("b").end_at("c").get()) == ["b", "c"]
    assert list(keys.order_by_value().limit_to_first(1).get()) == ["a"]
    ref.delete()
    assert fake_firebase.get("fakecheck") is None


def test_pubnub_get_publish_time_and_long_poll(fake_pubnub: FakePubNub) -> None:
    from pubnub.pnconfiguration import PNConfiguration
    from pubnub.pubnub import PubNub

    config = PNConfiguration()
    config.publish_key, config.subscribe_key = fake_pubnub.publish_key, fake_pubnub.subscribe_key
    config.user_id, config.origin, config.ssl = "checker", fake_pubnub.host, False
    config.enable_subscribe, config.disable_config_locking = False, False
    client = PubNub(config)
    assert int(client.time().sync().result) > 0
    base = f"http://{fake_pubnub.host}/v2/subscribe/{fake_pubnub.subscribe_key}/fake~check/0"
    with urllib.request.urlopen(f"{base}?tt=0&uuid=x", timeout=5) as reply:
        handshake = json.loads(reply.read())
    assert handshake["m"] == []
    polled: list[Any] = []

    def poll() -> None:
        url = f"{base}?tt={handshake['t']['t']}&tr=1&uuid=x"
        with urllib.request.urlopen(url, timeout=10) as reply:
            polled.append(json.loads(reply.read()))

    waiter = threading.Thread(target=poll)
    waiter.start()
    message = {"text": "a/b?c&d=é #1"}
    client.publish().channel("fake~check").message(message).sync()  # GET, message in the path
    waiter.join(10)
    assert polled and [m["d"] for m in polled[0]["m"]] == [message]
    assert polled[0]["m"][0]["c"] == "fake~check"


def test_pubnub_access_manager_needs_the_secret_key_and_a_bound_token(
    fake_pubnub: FakePubNub,
) -> None:
    from pubnub.models.consumer.v3.channel import Channel
    from pubnub.pnconfiguration import PNConfiguration
    from pubnub.pubnub import PubNub

    def client(secret: str | None) -> Any:
        config = PNConfiguration()
        config.publish_key, config.subscribe_key = "demo-pub", "demo-sub"
        config.secret_key = secret
        config.user_id, config.origin, config.ssl = "server", fake_pubnub.host, False
        config.disable_config_locking = False
        return PubNub(config)

    fake_pubnub.secret_key = "right"
    grant = client("right").grant_token().channels([Channel.id("room").read()]).ttl(5)
    token = grant.authorized_uuid("page-1").sync().result.token
    parsed = client("right").parse_token(token)
    assert parsed["authorized_uuid"] == "page-1"
    assert parsed["resources"]["channels"]["room"]["read"] is True
    with pytest.raises(Exception, match="403"):
        client("wrong").grant_token().channels([Channel.id("room").read()]).ttl(5).sync()

    def status(path: str) -> int:
        url = f"http://{fake_pubnub.host}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    quoted = urllib.parse.quote(token, safe="")
    assert status(f"/v2/subscribe/demo-sub/room/0?uuid=page-1&auth={quoted}") == 200
    assert status(f"/v2/subscribe/demo-sub/room,other/0?uuid=page-1&auth={quoted}") == 403
    assert status(f"/v2/subscribe/demo-sub/room/0?uuid=page-2&auth={quoted}") == 403
    body = urllib.parse.quote(json.dumps({"event": "x"}))
    assert status(f"/publish/demo-pub/demo-sub/0/room/0/{body}?uuid=page-1&auth={quoted}") == 403
    assert status("/v2/presence/sub-key/demo-sub/channel/room?uuid=page-1") == 403
    assert status(f"/v2/presence/sub-key/demo-sub/channel/room?uuid=page-1&auth={quoted}") == 200
