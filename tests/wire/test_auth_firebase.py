"""Firebase: custom tokens from Django's endpoint, the Auth emulator, the rules enforced by the fake.

The firebase JS SDK (inside the rtbridge JS client, set up as docs/js.md shows: the client calls
``initializeApp`` with ``client_config()``) signs in with the token Django's endpoint returns,
at the real Firebase Auth emulator (``firebase-tools``); the fake database evaluates
``database_rules()`` for every socket read and write, so a page without the channel in its
claims is refused by the database itself. Presence entries vanish through ``onDisconnect`` when
a page's socket drops.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

import rtbridge
from rtbridge.backends.firebase import FirebaseBackend, database_rules
from rtbridge.channel_names import encode_for_firebase
from rtbridge.publishers import get_backend
from rtbridge.tokens import Grant
from tests.testapp.models import TodoList
from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fixtures import auth_emulator, fake_firebase
from tests.wire.pages import Forger, Page, logged_in
from tests.wire.servers import AuthEmulator

__all__ = ["auth_emulator", "fake_firebase"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def firebase_settings(
    fake_firebase: FakeFirebase,
    auth_emulator: AuthEmulator,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    # The Admin SDK signs nothing and revokes at the emulator with this variable set.
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", auth_emulator.host)
    fake_firebase.rules = database_rules("rtbridge")
    settings.RTBRIDGE_BACKEND = "firebase"
    settings.RTBRIDGE_OPTIONS = {
        "database_url": fake_firebase.database_url,
        "emulator_host": fake_firebase.host,
        # Any string does for the emulator; Firebase wants the project's Web API key.
        "api_key": "demo-api-key",
    }
    yield get_backend().client_config()
    get_backend().close()


@pytest.fixture
def open_page(fake_firebase: FakeFirebase, firebase_settings: dict[str, Any]) -> Iterator[Any]:
    opened: list[Page] = []

    def open_page(
        client: Client, forge: Forger | None = None, config: dict[str, Any] | None = None
    ) -> Page:
        page = Page(config or firebase_settings, client, forge=forge)
        opened.append(page)
        return page

    yield open_page
    for page in opened:
        page.close()


def members_after_join(page: Page, channel: str, expected: set[str]) -> dict[str, Any]:
    """Join and return the members of the first ``here`` (id → info); they must be ``expected``.

    The page itself is in its first ``here`` even though the listener can fire before the
    page's own entry is written.
    """
    members = {m["id"]: m["info"] for m in page.join(channel)["here"]}
    assert set(members) == expected
    return members


def test_private_channel_with_django_token_receives(
    open_page: Any, fake_firebase: FakeFirebase
) -> None:
    ann = logged_in("ann")
    first = TodoList.objects.create(name="ann-1").pk
    second = TodoList.objects.create(name="ann-2").pk
    page = open_page(ann)
    for pk in (first, second):
        page.send(cmd="private", channel=f"private-testapp.todolist.{pk}")
        page.expect("ready", channel=f"private-testapp.todolist.{pk}")
    # The newest sign-in still covers the first channel (one sign-in per page). The page is
    # ready once its listener is attached; the database socket's auth request with the new ID
    # token may still be on its way to the fake then, so wait for it (the messages below
    # prove the listen was accepted under the new claims).
    expected = {
        "rtb": {
            f"private-testapp~todolist~{first}": True,
            f"private-testapp~todolist~{second}": True,
        }
    }
    deadline = time.monotonic() + 10
    while fake_firebase.sign_ins[-1][1] != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    uid, claims = fake_firebase.sign_ins[-1]
    assert uid == str(User.objects.get(username="ann").pk)
    assert claims == expected
    for pk in (first, second):
        channel = f"private-testapp.todolist.{pk}"
        rtbridge.publish(channel, "updated", {"pk": pk})
        rtbridge.flush(5)
        assert page.expect("message", channel=channel)["data"] == {"pk": pk}
    page.quiet("error", 0.3)


@pytest.mark.parametrize("forgery", ["no token", "token for another channel"])
def test_the_database_refuses_a_page_without_the_claim(forgery: str, open_page: Any) -> None:
    channel = "private-testapp.todolist.1"
    backend = get_backend()
    assert isinstance(backend, FirebaseBackend)

    def forge(body: dict[str, Any]) -> tuple[int, Any]:
        if forgery == "no token":
            return 200, {}
        return 200, backend.auth_response(body["socket_id"], Grant("private-other.1", "1"))

    page = open_page(Client(), forge)
    page.send(cmd="private", channel=channel)
    error = page.expect("error")
    assert "permission" in str(error).lower(), error
    rtbridge.publish(channel, "updated", {"leak": True})
    rtbridge.flush(5)
    page.quiet("message", 0.5)


def test_presence_here_join_whisper_and_leave_on_disconnect(
    open_page: Any, fake_firebase: FakeFirebase
) -> None:
    channel = "presence-testapp.todoitem.7"
    ann_page, bob_page = open_page(logged_in("ann")), open_page(logged_in("bob"))
    ann_id = str(User.objects.get(username="ann").pk)
    bob_id = str(User.objects.get(username="bob").pk)

    here = members_after_join(ann_page, channel, {ann_id})
    assert here == {ann_id: {"id": int(ann_id), "name": "ann"}}
    assert fake_firebase.sign_ins[-1][1]["rtm"] == {"presence-testapp~todoitem~7": ann_id}

    here = members_after_join(bob_page, channel, {ann_id, bob_id})
    assert set(here) == {ann_id, bob_id}
    assert ann_page.expect("joining", channel=channel)["joining"]["id"] == bob_id

    ann_page.send(cmd="whisper", channel=channel, event="typing", data={"field": "text"})
    assert bob_page.expect("whisper", channel=channel)["data"] == {"field": "text"}

    # Bob's page dies without a word: the database runs his onDisconnect removal.
    bob_page.close(kill=True)
    assert ann_page.expect("leaving", channel=channel, timeout=10)["leaving"]["id"] == bob_id
    entries = fake_firebase.get("rtbridge/presence/presence-testapp~todoitem~7")
    assert list(entries) == [ann_id]
    ann_page.quiet("error", 0.2)


def test_two_tabs_of_one_user_are_one_member(open_page: Any) -> None:
    channel = "presence-testapp.todoitem.8"
    bob = logged_in("bob")
    ann_page, bob_tab, bob_other_tab = open_page(logged_in("ann")), open_page(bob), open_page(bob)
    ann_id = str(User.objects.get(username="ann").pk)
    bob_id = str(User.objects.get(username="bob").pk)
    members_after_join(ann_page, channel, {ann_id})
    members_after_join(bob_tab, channel, {ann_id, bob_id})
    assert ann_page.expect("joining", channel=channel)["joining"]["id"] == bob_id
    members_after_join(bob_other_tab, channel, {ann_id, bob_id})
    ann_page.quiet("joining", 0.5)
    bob_tab.send(cmd="leave", channel=channel)
    ann_page.quiet("leaving", 0.5)
    bob_other_tab.close(kill=True)
    assert ann_page.expect("leaving", channel=channel, timeout=10)["leaving"]["id"] == bob_id


def test_the_documented_set_up_without_an_api_key_says_which_setting_is_missing(
    open_page: Any, firebase_settings: dict[str, Any]
) -> None:
    config = {key: value for key, value in firebase_settings.items() if key != "apiKey"}
    page = open_page(logged_in("ann"), config=config)
    channel = f"private-testapp.todolist.{TodoList.objects.create(name='ann-1').pk}"
    page.send(cmd="private", channel=channel)
    refused = page.expect("refused", channel=channel)
    assert (
        refused["code"] == "missing_api_key" and 'RTBRIDGE_OPTIONS["api_key"]' in refused["message"]
    )


def test_the_hourly_id_token_refresh_keeps_the_grants(
    open_page: Any, fake_firebase: FakeFirebase
) -> None:
    page = open_page(logged_in("ann"))
    channel = f"private-testapp.todolist.{TodoList.objects.create(name='ann-1').pk}"
    page.send(cmd="private", channel=channel)
    page.expect("ready", channel=channel)
    signed_in = len(fake_firebase.sign_ins)
    # Tokens are issued with one-second times: a refresh within the sign-in's second would give
    # the very same token, which the SDK does not hand on.
    time.sleep(1.1)
    # An hour on: the Auth SDK refreshes the ID token at the emulator and hands it to the
    # database connection, which authenticates again (the fake re-evaluates the listens).
    page.send(cmd="clock", minutes=59.8)
    assert "refreshed" in page.expect("clock", timeout=20)
    deadline = time.monotonic() + 10
    while len(fake_firebase.sign_ins) == signed_in and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_firebase.sign_ins) > signed_in, "the database never got the refreshed token"
    assert fake_firebase.sign_ins[-1][1]["rtb"] == {encode_for_firebase(channel): True}
    rtbridge.publish(channel, "updated", {"after": "refresh"})
    rtbridge.flush(5)
    assert page.expect("message", channel=channel)["data"] == {"after": "refresh"}
    page.quiet("error", 0.3)


def test_revoke_cuts_the_page_off_at_its_next_authentication(
    open_page: Any, fake_firebase: FakeFirebase
) -> None:
    ann = logged_in("ann")
    ann_id = str(User.objects.get(username="ann").pk)
    channel = f"private-testapp.todolist.{TodoList.objects.create(name='ann-1').pk}"
    page = open_page(ann)
    page.send(cmd="private", channel=channel)
    page.expect("ready", channel=channel)
    time.sleep(1.1)  # a revocation in the sign-in's second would not be after it (auth_time)
    rtbridge.revoke(ann_id, channel)
    assert fake_firebase.get(f"rtbridge/revoked/{ann_id}") is not None
    # Documented: cut off at the page's next authentication, at the latest the ID-token
    # refresh within the hour (driven here by the page's clock).
    page.send(cmd="clock", minutes=59.8)
    page.expect("clock", timeout=20)
    error = page.expect("error", timeout=10)
    assert "permission" in str(error).lower(), error
    rtbridge.publish(channel, "updated", {"leak": True})
    rtbridge.flush(5)
    page.quiet("message", 0.5)
