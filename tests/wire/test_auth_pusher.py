"""Pusher: private and presence channels authorized by Django's endpoint, judged by soketi.

pusher-js (inside the rtbridge JS client) asks ``/rtbridge/auth``; Django's test client answers
as the page's user, and soketi checks the signature: a forged or misdirected answer is refused
by the server itself, not by the client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

import rtbridge
from rtbridge.backends.pusher import PusherBackend
from rtbridge.publishers import get_backend
from rtbridge.tokens import Grant
from tests.testapp.models import TodoList
from tests.wire.fixtures import soketi
from tests.wire.pages import Page, logged_in
from tests.wire.servers import Soketi

__all__ = ["soketi"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pusher_settings(soketi: Soketi, settings: Any) -> Iterator[dict[str, Any]]:
    settings.RTBRIDGE_BACKEND = "pusher"
    settings.RTBRIDGE_OPTIONS = soketi.options
    yield get_backend().client_config()
    get_backend().close()


def test_private_channel_is_authorized_by_django_and_delivers(
    pusher_settings: dict[str, Any], pages: list[Page]
) -> None:
    ann, bob = logged_in("ann"), logged_in("bob")
    channel = f"private-testapp.todolist.{TodoList.objects.create(name='ann-list').pk}"
    page = Page(pusher_settings, ann)
    pages.append(page)
    page.send(cmd="private", channel=channel)
    page.expect("ready", channel=channel)
    status, answer = page.auth_answers[-1]
    assert status == 200 and answer["auth"].startswith("app-key:") and "channel_data" not in answer

    rtbridge.publish(channel, "updated", {"id": 1})
    rtbridge.flush(5)
    assert page.expect("message", channel=channel)["data"] == {"id": 1}

    other = Page(pusher_settings, bob)
    pages.append(other)
    other.send(cmd="private", channel=channel)
    refused = other.expect("refused", channel=channel)
    assert (refused["status"], refused["code"]) == (403, "forbidden")


@pytest.mark.parametrize("forgery", ["bad signature", "another socket", "no auth"])
def test_soketi_refuses_a_forged_answer(
    forgery: str, pusher_settings: dict[str, Any], pages: list[Page]
) -> None:
    channel = "private-testapp.todolist.1"
    backend = get_backend()
    assert isinstance(backend, PusherBackend)

    def forge(body: dict[str, Any]) -> tuple[int, Any]:
        if body["channel_name"] == "rtbridge-user":
            return 200, {}  # the anonymous page's sign-in request: no sign-in
        if forgery == "bad signature":
            return 200, {"auth": "app-key:" + "0" * 64}
        if forgery == "another socket":
            return 200, backend.auth_response("1234.5678", Grant(channel, "1"))
        return 200, {}

    page = Page(pusher_settings, Client(), forge=forge)
    pages.append(page)
    page.send(cmd="private", channel=channel)
    refused = page.expect("refused", channel=channel)
    assert refused["code"] not in (None, "forbidden"), refused
    rtbridge.publish(channel, "updated", {"leak": True})
    rtbridge.flush(5)
    page.quiet("message", 0.5)


def test_presence_members_agree_and_follow_joins_and_leaves(
    pusher_settings: dict[str, Any], pages: list[Page]
) -> None:
    channel = "presence-testapp.todoitem.7"
    ann_page = Page(pusher_settings, logged_in("ann"))
    bob_page = Page(pusher_settings, logged_in("bob"))
    pages += [ann_page, bob_page]
    ann_id = str(User.objects.get(username="ann").pk)
    bob_id = str(User.objects.get(username="bob").pk)

    here = ann_page.join(channel)["here"]
    assert here == [{"id": ann_id, "info": {"id": int(ann_id), "name": "ann"}}]
    status, answer = ann_page.auth_answers[-1]
    assert status == 200 and '"user_id":' in answer["channel_data"].replace(" ", "")

    here = bob_page.join(channel)["here"]
    assert sorted(member["id"] for member in here) == sorted([ann_id, bob_id])
    joined = ann_page.expect("joining", channel=channel)["joining"]
    assert joined == {"id": bob_id, "info": {"id": int(bob_id), "name": "bob"}}

    bob_page.send(cmd="leave", channel=channel)
    assert ann_page.expect("leaving", channel=channel)["leaving"]["id"] == bob_id

    # Whispers reach the other member (Pusher client- events), never the sender.
    bob_page.join(channel)
    ann_page.expect("joining", channel=channel)
    ann_page.send(cmd="whisper", channel=channel, event="typing", data={"field": "text"})
    whisper = bob_page.expect("whisper", channel=channel)
    assert whisper["data"] == {"field": "text"}
    ann_page.quiet("whisper", 0.3)


def test_two_tabs_of_one_user_are_one_member(
    pusher_settings: dict[str, Any], pages: list[Page]
) -> None:
    channel = "presence-testapp.todoitem.8"
    bob = logged_in("bob")
    ann_page, bob_tab, bob_other_tab = (
        Page(pusher_settings, logged_in("ann")),
        Page(pusher_settings, bob),
        Page(pusher_settings, bob),
    )
    pages += [ann_page, bob_tab, bob_other_tab]
    bob_id = str(User.objects.get(username="bob").pk)
    ann_page.join(channel)
    bob_tab.join(channel)
    assert ann_page.expect("joining", channel=channel)["joining"]["id"] == bob_id
    assert len(bob_other_tab.join(channel)["here"]) == 2
    ann_page.quiet("joining", 0.5)
    bob_tab.send(cmd="leave", channel=channel)
    ann_page.quiet("leaving", 0.5)
    bob_other_tab.close()
    assert ann_page.expect("leaving", channel=channel)["leaving"]["id"] == bob_id


def test_whispers_above_pushers_rate_are_refused_with_a_clear_error(
    pusher_settings: dict[str, Any], pages: list[Page]
) -> None:
    channel = "presence-testapp.todoitem.9"
    ann_page, bob_page = (
        Page(pusher_settings, logged_in("ann")),
        Page(pusher_settings, logged_in("bob")),
    )
    pages += [ann_page, bob_page]
    ann_page.join(channel)
    bob_page.join(channel)
    ann_page.expect("joining", channel=channel)
    for n in range(12):
        ann_page.send(cmd="whisper", channel=channel, event="typing", data={"n": n})
    outcomes = [
        ann_page.expect("whispered", channel=channel, timeout=5) if n < 10 else None
        for n in range(10)
    ]
    refused = [ann_page.expect("refused", channel=channel) for _ in range(2)]
    assert len(outcomes) == 10 and all(r["code"] == "rate_limited" for r in refused), refused
    assert "10 whispers a second" in refused[0]["message"]
    got = [bob_page.expect("whisper", channel=channel)["data"]["n"] for _ in range(10)]
    assert got == list(range(10))
    bob_page.quiet("whisper", 0.5)


def test_revoke_ends_the_users_connections_and_django_decides_again(
    pusher_settings: dict[str, Any], pages: list[Page]
) -> None:
    ann = logged_in("ann")
    ann_id = str(User.objects.get(username="ann").pk)
    todo = TodoList.objects.create(name="ann-list")
    channel = f"private-testapp.todolist.{todo.pk}"
    page = Page(pusher_settings, ann)
    pages.append(page)
    page.send(cmd="channel", channel="news")
    page.expect("ready", channel="news")
    page.send(cmd="private", channel=channel)
    page.expect("ready", channel=channel)
    assert any(r["channel_name"] == "rtbridge-user" for r in page.auth_requests), "signed in"
    todo.name = "bob-list"  # the rule no longer grants it
    todo.save()
    rtbridge.revoke(ann_id, channel)
    # Documented: the connection ends within a second; the page connects again, public
    # channels come back and Django refuses the private one now.
    assert page.expect("error", timeout=15)["code"] == "forbidden"
    rtbridge.publish(channel, "updated", {"leak": True})
    rtbridge.publish("news", "updated", {"still": "public"})
    rtbridge.flush(5)
    assert page.expect("message", channel="news", timeout=10)["data"] == {"still": "public"}
    page.quiet("message", 0.5, channel=channel)
