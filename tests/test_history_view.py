"""``POST /rtbridge/history``: authorized like subscribing, positions checked, CSRF, answers.

The backend is Pusher (in sync mode) against the loopback Pusher API stand-in, with the
``"database"`` and the ``"redis"`` history store: what it published is what the endpoint
replays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

import rtbridge
from rtbridge.publishers import get_backend
from tests.testapp.models import TodoList
from tests.wire.fakes.pusher import FakePusherAPI
from tests.wire.fixtures import fake_pusher_api

__all__ = ["fake_pusher_api"]

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/rtbridge/history"


@pytest.fixture(params=["database", "redis"])
def hosted(
    request: pytest.FixtureRequest, settings: Any, fake_pusher_api: FakePusherAPI
) -> Iterator[None]:
    settings.RTBRIDGE_BACKEND = "pusher"
    settings.RTBRIDGE_OPTIONS = {
        "app_id": "1",
        "key": "k",
        "secret": "s",
        "host": "127.0.0.1",
        "port": fake_pusher_api.port,
        "ssl": False,
        "mode": "sync",
    }
    settings.RTBRIDGE_HISTORY = {"size": 5, "ttl": 600, "store": request.param}
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        settings.RTBRIDGE_REDIS = {"url": server.url, "prefix": f"view{time.time_ns()}:"}
    yield
    rtbridge.publishers.reset_backend()


def ask(client: Client, channel: str, since: Any = None, **extra: Any) -> Any:
    body = {"channel": channel, "since": since, **extra}
    return client.post(URL, body, content_type="application/json")


def top(channel: str) -> dict[str, Any]:
    answer = ask(Client(), channel)
    assert answer.status_code == 200, answer.content
    return answer.json()  # type: ignore[no-any-return]


def logged_in(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.create_user(username))
    return client


def test_a_public_channel_replays_what_was_missed(hosted: None) -> None:
    for n in range(3):
        rtbridge.publish("chat.room", "said", {"n": n, "text": "héllo"})
    rtbridge.publish("chat.room", "said", {"n": 3}, exclude="1.2")
    current = top("chat.room")
    assert current == {
        "channel": "chat.room",
        "offset": 4,
        "epoch": current["epoch"],
        "messages": [],
    }
    answer = ask(Client(), "chat.room", {"offset": 2, "epoch": current["epoch"]})
    assert answer.status_code == 200
    assert answer.json() == {
        "channel": "chat.room",
        "recovered": True,
        "offset": 4,
        "epoch": current["epoch"],
        "messages": [
            {"offset": 3, "event": "said", "data": {"n": 2, "text": "héllo"}, "exclude": None},
            {"offset": 4, "event": "said", "data": {"n": 3}, "exclude": "1.2"},
        ],
    }


def test_another_epoch_or_a_trimmed_position_is_not_recovered(hosted: None) -> None:
    for n in range(8):
        rtbridge.publish("chat.room", "said", {"n": n})
    epoch = top("chat.room")["epoch"]
    trimmed = ask(Client(), "chat.room", {"offset": 2, "epoch": epoch}).json()
    assert trimmed == {
        "channel": "chat.room",
        "recovered": False,
        "offset": 8,
        "epoch": epoch,
        "messages": [],
    }
    kept = ask(Client(), "chat.room", {"offset": 3, "epoch": epoch}).json()
    assert kept["recovered"] is True and [m["offset"] for m in kept["messages"]] == [4, 5, 6, 7, 8]
    other = ask(Client(), "chat.room", {"offset": 8, "epoch": "notthisone"}).json()
    assert (other["recovered"], other["offset"], other["epoch"]) == (False, 8, epoch)


@pytest.mark.parametrize(
    ("since", "error"),
    [
        ({"offset": 9, "epoch": "<current>"}, "beyond the last offset of 'chat.room' (2)"),
        ({"offset": -1, "epoch": "e"}, "since.offset=-1 is not valid"),
        ({"offset": "1", "epoch": "e"}, "since.offset='1' is not valid"),
        ({"offset": True, "epoch": "e"}, "since.offset=True is not valid"),
        ({"offset": 1.5, "epoch": "e"}, "since.offset=1.5 is not valid"),
        ({"offset": 1, "epoch": "a/b"}, "since.epoch='a/b' is not valid"),
        ({"offset": 1, "epoch": 7}, "since.epoch=7 is not valid"),
        ({"offset": 1}, "is not a position"),
        ({"offset": 1, "epoch": "e", "seq": 1}, "is not a position"),
        ([1, "e"], "is not a position"),
    ],
)
def test_forged_positions_answer_400(hosted: None, since: Any, error: str) -> None:
    rtbridge.publish("chat.room", "said", 1)
    rtbridge.publish("chat.room", "said", 2)
    if isinstance(since, dict) and since.get("epoch") == "<current>":
        since = {**since, "epoch": top("chat.room")["epoch"]}
    answer = ask(Client(), "chat.room", since)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_position"
    assert error in answer.json()["error"]["message"]


def test_bad_requests(hosted: None) -> None:
    client = Client()
    assert client.get(URL).status_code == 405
    missing = client.post(URL, {"since": None}, content_type="application/json")
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "bad_request")
    not_json = client.post(URL, "{", content_type="application/json")
    assert not_json.json()["error"]["code"] == "bad_request"
    invalid = ask(client, "chat room")
    assert (invalid.status_code, invalid.json()["error"]["code"]) == (400, "invalid_channel")
    socket = ask(client, "chat.room", socket_id="no spaces")
    assert (socket.status_code, socket.json()["error"]["code"]) == (400, "bad_request")
    assert ask(client, "chat.room", socket_id="123.456").status_code == 200


def test_model_filter_channels_need_a_declared_filter(hosted: None) -> None:
    refused = ask(Client(), "testapp.todoitem;text=milk")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "undeclared_filter"
    assert ask(Client(), "testapp.todoitem;todo_list_id=1").status_code == 200
    assert ask(Client(), "testapp.todoitem;done=true;todo_list_id=1").status_code == 200
    # Not a model's channel: any public name is readable, as it is subscribable.
    assert ask(Client(), "chat.room;x=1").status_code == 200


def test_protected_channels_follow_the_rules_now(hosted: None) -> None:
    owned = TodoList.objects.create(name="ann's list")
    channel = f"private-testapp.todolist.{owned.pk}"
    rtbridge.publish(channel, "renamed", {"name": "secret"})
    anonymous = ask(Client(), channel)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (403, "login_required")
    other = ask(logged_in("bob"), channel)
    assert (other.status_code, other.json()["error"]["code"]) == (403, "forbidden")
    ann = logged_in("ann")
    granted = ask(ann, channel)
    assert granted.status_code == 200
    epoch = granted.json()["epoch"]
    answer = ask(ann, channel, {"offset": 0, "epoch": epoch}).json()
    assert [m["data"] for m in answer["messages"]] == [{"name": "secret"}]
    # Revoked: the rule says no from now on, so her history is refused too.
    TodoList.objects.filter(pk=owned.pk).update(name="taken away")
    revoked = ask(ann, channel, {"offset": 0, "epoch": epoch})
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (403, "forbidden")
    assert "secret" not in revoked.content.decode()
    no_rule = ask(ann, "private-nobody.knows")
    assert (no_rule.status_code, no_rule.json()["error"]["code"]) == (403, "no_rule")


def test_csrf_is_checked_like_the_auth_endpoint(hosted: None) -> None:
    client = Client(enforce_csrf_checks=True)
    refused = client.post(URL, {"channel": "chat.room"}, content_type="application/json")
    assert refused.status_code == 403
    # What a page does: the CSRF cookie's secret in the X-CSRFToken header.
    secret = "rtbridgeTestCsrfSecret0123456789"
    client.cookies["csrftoken"] = secret
    wrong = client.post(
        URL,
        {"channel": "chat.room"},
        content_type="application/json",
        headers={"X-CSRFToken": "x" * 32},
    )
    assert wrong.status_code == 403
    answer = client.post(
        URL,
        {"channel": "chat.room"},
        content_type="application/json",
        headers={"X-CSRFToken": secret},
    )
    assert answer.status_code == 200


def test_client_config_names_the_endpoint_only_with_history(hosted: None, settings: Any) -> None:
    assert get_backend().client_config()["historyEndpoint"] == "/rtbridge/history"
    settings.RTBRIDGE_HISTORY = None
    assert "historyEndpoint" not in get_backend().client_config()


def test_with_history_off_every_resume_is_not_recovered(hosted: None, settings: Any) -> None:
    settings.RTBRIDGE_HISTORY = {"enabled": False}
    rtbridge.publish("chat.room", "said", 1)
    answer = ask(Client(), "chat.room", {"offset": 1, "epoch": "anything"})
    assert answer.status_code == 200
    assert answer.json() == {
        "channel": "chat.room",
        "recovered": False,
        "offset": 0,
        "epoch": "",
        "messages": [],
    }


def test_the_rtbridge_server_backends_resume_on_their_socket(settings: Any) -> None:
    settings.RTBRIDGE_BACKEND = "locmem"
    answer = ask(Client(), "chat.room", {"offset": 1, "epoch": "e"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "not_supported")
