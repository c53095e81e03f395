"""PubNub: Access Manager tokens from Django's endpoint, presence per user, in the fake PubNub.

The fake enforces Access Manager v3 as PubNub does when the keyset has a secret key: the pubnub
JS SDK (inside the rtbridge JS client) is refused on a protected channel without a token and
receives with the token Django's endpoint handed out.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client

import rtbridge
from rtbridge.channel_names import encode_for_pubnub
from rtbridge.publishers import get_backend
from tests.testapp.models import TodoList
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.fixtures import fake_pubnub
from tests.wire.pages import Page, logged_in

__all__ = ["fake_pubnub"]

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "sec-demo"


@pytest.fixture
def pubnub_settings(fake_pubnub: FakePubNub, settings: Any) -> Iterator[dict[str, Any]]:
    fake_pubnub.secret_key = SECRET
    fake_pubnub.presence_timeout = 2.0
    settings.RTBRIDGE_BACKEND = "pubnub"
    settings.RTBRIDGE_OPTIONS = {
        "publish_key": fake_pubnub.publish_key,
        "subscribe_key": fake_pubnub.subscribe_key,
        "secret_key": SECRET,
        "origin": fake_pubnub.host,
        "ssl": False,
        "client_whispers": True,
    }
    yield get_backend().client_config()
    get_backend().close()


def subscribe_status(server: FakePubNub, channel: str, **query: str) -> int:
    arguments = "&".join(f"{key}={value}" for key, value in {"uuid": "u1", **query}.items())
    url = f"http://{server.host}/v2/subscribe/{server.subscribe_key}/{channel}/0?{arguments}"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_token_opens_exactly_the_granted_channels(
    pubnub_settings: dict[str, Any], pages: list[Page], fake_pubnub: FakePubNub
) -> None:
    ann = logged_in("ann")
    first = TodoList.objects.create(name="ann-1").pk
    second = TodoList.objects.create(name="ann-2").pk
    page = Page(pubnub_settings, ann)
    pages.append(page)
    for pk in (first, second):
        page.send(cmd="private", channel=f"private-testapp.todolist.{pk}")
        page.expect("ready", channel=f"private-testapp.todolist.{pk}")
    # The page asks with its PubNub user id (stable per device), not its per-load socket id.
    user_id = page.auth_requests[-1]["socket_id"]
    status, answer = page.auth_answers[-1]
    assert status == 200 and answer["channel"] == encode_for_pubnub(
        f"private-testapp.todolist.{second}"
    )
    token = get_backend().client.parse_token(answer["token"])  # type: ignore[attr-defined]
    assert token["authorized_uuid"] == user_id
    granted = token["resources"]["channels"]
    # The newest token still covers the first channel: PubNub keeps one token per client.
    assert set(granted) == {
        encode_for_pubnub(f"private-testapp.todolist.{first}"),
        encode_for_pubnub(f"private-testapp.todolist.{second}"),
    }
    assert all(p["read"] and p["write"] for p in granted.values())

    for pk in (first, second):
        channel = f"private-testapp.todolist.{pk}"
        rtbridge.publish(channel, "updated", {"pk": pk})
        rtbridge.flush(5)
        assert page.expect("message", channel=channel)["data"] == {"pk": pk}

    # The same token, another uuid, another channel or no token at all: refused by the server.
    encoded = encode_for_pubnub(f"private-testapp.todolist.{first}")
    uuid = token["authorized_uuid"]
    quoted = quote(answer["token"], safe="")
    assert subscribe_status(fake_pubnub, encoded, uuid=uuid, auth=quoted) == 200
    assert subscribe_status(fake_pubnub, encoded, uuid="someone-else", auth=quoted) == 403
    assert (
        subscribe_status(fake_pubnub, "private-testapp~todolist~999", uuid=uuid, auth=quoted) == 403
    )
    assert subscribe_status(fake_pubnub, encoded, uuid=uuid) == 403


@pytest.mark.parametrize("forgery", ["no token", "garbage token"])
def test_pubnub_refuses_a_page_without_a_valid_token(
    forgery: str, pubnub_settings: dict[str, Any], pages: list[Page]
) -> None:
    channel = "private-testapp.todolist.1"

    def forge(body: dict[str, Any]) -> tuple[int, Any]:
        answer: dict[str, Any] = {"channel": encode_for_pubnub(channel)}
        if forgery == "garbage token":
            answer["token"] = "qEF2AmF0GmV5"
        return 200, answer

    page = Page(pubnub_settings, Client(), forge=forge)
    pages.append(page)
    page.send(cmd="private", channel=channel)
    refused = page.expect("refused", channel=channel)
    assert refused["status"] == 403 or refused["code"] == 403, refused
    rtbridge.publish(channel, "updated", {"leak": True})
    rtbridge.flush(5)
    page.quiet("message", 0.5)


def test_presence_per_user_here_join_leave_and_timeout(
    pubnub_settings: dict[str, Any], pages: list[Page], fake_pubnub: FakePubNub
) -> None:
    channel = "presence-testapp.todoitem.7"
    ann_client, bob_client = logged_in("ann"), logged_in("bob")
    ann_id = str(User.objects.get(username="ann").pk)
    bob_id = str(User.objects.get(username="bob").pk)
    ann_page = Page(pubnub_settings, ann_client)
    pages.append(ann_page)
    here = ann_page.join(channel)["here"]
    assert here == [{"id": ann_id, "info": {"id": int(ann_id), "name": "ann"}}]
    answer = ann_page.auth_answers[-1][1]
    assert answer["channel_data"] == {"id": ann_id, "info": {"id": int(ann_id), "name": "ann"}}

    bob_page = Page(pubnub_settings, bob_client)
    pages.append(bob_page)
    here = bob_page.join(channel)["here"]
    assert sorted(m["id"] for m in here) == sorted([ann_id, bob_id])
    assert ann_page.expect("joining", channel=channel)["joining"]["id"] == bob_id

    # A second tab of Bob's is the same member: no second join.
    bob_tab = Page(pubnub_settings, bob_client)
    pages.append(bob_tab)
    bob_tab.join(channel)
    ann_page.quiet("joining", 1.0)

    # Whispers (client_whispers=True): published by the page, received by the others.
    ann_page.send(cmd="whisper", channel=channel, event="typing", data={"field": "text"})
    assert bob_page.expect("whisper", channel=channel)["data"] == {"field": "text"}

    # Bob's tabs go: one leaves cleanly, the other crashes (timeout); Bob leaves once.
    bob_page.send(cmd="leave", channel=channel)
    ann_page.quiet("leaving", 1.0)
    bob_tab.close(kill=True)
    assert ann_page.expect("leaving", channel=channel, timeout=10)["leaving"]["id"] == bob_id
    encoded = encode_for_pubnub(channel)
    assert json.dumps(sorted(fake_pubnub.occupants.get(encoded, {}))) != "[]"


def test_an_expired_token_is_renewed_through_the_endpoint(
    pubnub_settings: dict[str, Any], pages: list[Page], fake_pubnub: FakePubNub
) -> None:
    ann = logged_in("ann")
    channel = f"private-testapp.todolist.{TodoList.objects.create(name='ann-1').pk}"
    page = Page(pubnub_settings, ann)
    pages.append(page)
    page.send(cmd="private", channel=channel)
    page.expect("ready", channel=channel)
    asked = len(page.auth_answers)

    fake_pubnub.expire_tokens()
    # The next subscribe request is refused (403, token expired); the client asks Django
    # again and subscribes with the new token. Messages published meanwhile may be missed
    # (PubNub replays nothing to a new handshake), so publish until one arrives after that.
    for n in range(20):
        rtbridge.publish(channel, "updated", {"n": n})
        rtbridge.flush(5)
        try:
            page.expect("message", channel=channel, timeout=0.5)
        except AssertionError:
            continue
        if len(page.auth_answers) > asked:
            break
    else:
        log = [
            (r.method, r.path, r.status)
            for r in fake_pubnub.requests
            if not r.path.startswith("/publish")
        ][-6:]
        raise AssertionError(f"no message after a renewal: {page.seen[-5:]}; requests {log}")
    assert page.auth_answers[-1][0] == 200


def test_with_access_manager_public_and_private_channels_both_keep_receiving(
    pubnub_settings: dict[str, Any], pages: list[Page], fake_pubnub: FakePubNub
) -> None:
    """Issue 14: with a secret key PubNub wants a token for public channels too, and refuses a
    multiplexed subscribe as a whole, so a public channel without one also stopped the private
    one (403 on ``news,private-...``), while the page reported both ready."""
    assert pubnub_settings["accessManager"] is True
    start = len(fake_pubnub.requests)
    ann = logged_in("ann")
    private = f"private-testapp.todolist.{TodoList.objects.create(name='ann-1').pk}"
    page = Page(pubnub_settings, ann)
    pages.append(page)
    page.send(cmd="channel", channel="news")
    page.expect("ready", channel="news")
    page.send(cmd="private", channel=private)
    page.expect("ready", channel=private)
    assert [r["channel_name"] for r in page.auth_requests] == ["news", private]
    for n in range(3):
        rtbridge.publish("news", "updated", {"n": n})
        rtbridge.publish(private, "updated", {"n": n})
        rtbridge.flush(5)
        assert page.expect("message", channel="news")["data"] == {"n": n}
        assert page.expect("message", channel=private)["data"] == {"n": n}
    requests = fake_pubnub.requests[start:]
    subscribes = [r for r in requests if r.path.startswith("/v2/subscribe/")]
    assert subscribes and all(r.status != 403 for r in subscribes), fake_pubnub.refusals[-3:]


def test_ready_waits_for_pubnubs_answer_and_a_refusal_spares_the_other_channels(
    pubnub_settings: dict[str, Any], pages: list[Page], fake_pubnub: FakePubNub
) -> None:
    ann = logged_in("ann")
    private = f"private-testapp.todolist.{TodoList.objects.create(name='ann-1').pk}"
    forged = "private-testapp.todolist.999"

    def forge(body: dict[str, Any]) -> tuple[int, Any]:
        # Django grants, but the answer carries a token for another channel: PubNub refuses.
        response = ann.post(
            "/rtbridge/auth",
            data={**body, "channel_name": private},
            content_type="application/json",
        )
        return 200, {**response.json(), "channel": encode_for_pubnub(forged)}

    page = Page(pubnub_settings, ann)
    pages.append(page)
    page.send(cmd="private", channel=private)
    page.expect("ready", channel=private)
    page.forge = forge
    page.send(cmd="private", channel=forged)
    refused = page.expect("refused", channel=forged)
    assert refused["code"] == 403, refused
    page.quiet("ready", 0.5, channel=forged)
    rtbridge.publish(private, "updated", {"still": "here"})
    rtbridge.flush(5)
    assert page.expect("message", channel=private, timeout=10)["data"] == {"still": "here"}


def test_revoke_cuts_the_page_off_at_its_next_subscribe_request(
    pubnub_settings: dict[str, Any], pages: list[Page], fake_pubnub: FakePubNub
) -> None:
    ann = logged_in("ann")
    ann_id = str(User.objects.get(username="ann").pk)
    todo = TodoList.objects.create(name="ann-1")
    channel = f"private-testapp.todolist.{todo.pk}"
    page = Page(pubnub_settings, ann)
    pages.append(page)
    page.send(cmd="private", channel=channel)
    page.expect("ready", channel=channel)
    # The app stops granting (the rule reads the list's name), then revokes what Ann holds.
    todo.name = "bob-1"
    todo.save()
    rtbridge.revoke(ann_id, channel)
    # Documented: the open long-poll ends with the next message; the request after it is
    # refused (revoked token), the page asks Django, which refuses now: the channel ends.
    rtbridge.publish(channel, "updated", {"n": 1})
    rtbridge.flush(5)
    assert page.expect("error", timeout=15)["code"] == "forbidden"
    rtbridge.publish(channel, "updated", {"n": 2})
    rtbridge.flush(5)
    page.quiet("message", 1.0, channel=channel, data={"n": 2})
    assert "Token is revoked" in " ".join(fake_pubnub.refusals)
