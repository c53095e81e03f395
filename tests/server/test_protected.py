"""Protected channels on one node: tokens, presence, whispers, revocation and skip frames."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from unittest import mock

import pytest
from django.core import signing
from django.test import override_settings

import rtbridge
from rtbridge.messages import Message
from rtbridge.publishers import reset_backend
from rtbridge.server import Server
from tests.server.helpers import Client, join, member_ids, token

PRIVATE = "private-testapp.todolist.1"
PRESENCE = "presence-testapp.todoitem.7"


async def refusal(client: Client, channel: str, auth: str | None) -> str:
    """Subscribe with ``auth``; assert a 4403 and return its detail."""
    fields = {"channel": channel} if auth is None else {"channel": channel, "auth": auth}
    answer = await client.request("subscribe", **fields)
    assert (answer["op"], answer["code"]) == ("error", 4403), answer
    return str(answer["detail"])


async def test_welcome_lists_the_features(server: Server) -> None:
    client = await Client.open(server.url)
    assert client.welcome["features"] == ["auth", "presence", "whisper", "call", "revoke"]
    await client.close()


async def test_bad_tokens_are_refused_with_a_detail(server: Server) -> None:
    client = await Client.open(server.url)
    other = await Client.open(server.url)
    good = token(client.socket_id, PRIVATE)
    # No token (what an anonymous user who was refused by the auth endpoint would try).
    assert await refusal(client, PRIVATE, None) == "missing"
    assert await refusal(client, PRIVATE, "") == "missing"
    # A forged signature: the payload is kept, the signature is not ours.
    payload, timestamp, _signature = good.rsplit(":", 2)
    assert await refusal(client, PRIVATE, f"{payload}:{timestamp}:forged") == "bad_signature"
    assert await refusal(client, PRIVATE, good[:-2] + "xx") == "bad_signature"
    # Issued two hours ago (the lifetime is one).
    with mock.patch.object(
        signing.TimestampSigner,
        "timestamp",
        lambda self: signing.b62_encode(int(time.time()) - 7200),
    ):
        expired = token(client.socket_id, PRIVATE)
    assert await refusal(client, PRIVATE, expired) == "expired"
    # Another socket's token, and a token for another channel.
    assert await refusal(client, PRIVATE, token(other.socket_id, PRIVATE)) == "wrong_socket"
    wrong = token(client.socket_id, "private-testapp.todolist.2")
    assert await refusal(client, PRIVATE, wrong) == "wrong_channel"
    # A private- token on the matching presence- channel, and a presence token without member.
    private_twin = token(client.socket_id, "private-testapp.todoitem.7")
    assert await refusal(client, PRESENCE, private_twin) == "wrong_channel"
    no_member = signing.dumps(
        {"s": client.socket_id, "c": PRESENCE, "u": "1"}, salt="rtbridge.subscription.v1"
    )
    assert await refusal(client, PRESENCE, no_member) == "wrong_channel"
    assert server.hub.channel_count() == 0
    # Nothing published on the channel leaks to the refused socket; the good token works.
    # (The message still took offset 1: positions are given at publish time.)
    server.publish(Message(PRIVATE, "secret", 1))
    answer = await client.request("subscribe", channel=PRIVATE, auth=good)
    assert (answer["op"], answer["offset"]) == ("ack", 1)
    server.publish(Message(PRIVATE, "visible", 2))
    assert [f["event"] for f in await client.messages(1)] == ["visible"]
    await client.close()
    await other.close()


async def test_bad_tokens_count_as_abuse(server: Server) -> None:
    client = await Client.open(server.url)
    for _ in range(9):
        await refusal(client, PRIVATE, "nonsense")
    await client.send({"op": "subscribe", "id": 99, "channel": PRIVATE, "auth": "x"})
    assert (await client.closed())[0] == 4001


async def test_presence_members_join_and_leave_per_user(server: Server) -> None:
    ann_tab1, ann_tab2, bob = [await Client.open(server.url) for _ in range(3)]
    first = await join(ann_tab1, PRESENCE, "1")
    assert first["members"] == [{"id": "1", "info": {"id": 1, "name": "user1"}}]
    assert member_ids(await join(bob, PRESENCE, "2")) == ["1", "2"]
    joined = await ann_tab1.recv_op("presence")
    assert (joined["action"], joined["member"]["id"]) == ("join", "2")
    # Ann's second tab: no join for anyone, the list still has Ann once.
    assert member_ids(await join(ann_tab2, PRESENCE, "1")) == ["1", "2"]
    await ann_tab1.close()  # Ann still has a tab: no leave
    await bob.request("ping")
    await ann_tab2.request("unsubscribe", channel=PRESENCE)  # her last one: leave
    left = await bob.recv_op("presence")
    assert (left["action"], left["member"]) == (
        "leave",
        {"id": "1", "info": {"id": 1, "name": "user1"}},
    )
    # Bob never got a join or leave of his own, nor a second one of Ann's.
    await bob.request("ping")
    assert not [f for f in bob._backlog if f["op"] == "presence"]
    # Subscribing again answers a fresh list and tells nobody.
    assert member_ids(await join(bob, PRESENCE, "2")) == ["2"]
    await ann_tab2.close()
    await bob.close()


async def test_whispers(server: Server) -> None:
    ann, bob, carol = [await Client.open(server.url) for _ in range(3)]
    for client, user in ((ann, "1"), (bob, "2")):
        await join(client, PRESENCE, user)
    answer = await ann.request("whisper", channel=PRESENCE, event="typing", data={"f": "text"})
    assert answer == {"op": "ack", "id": 2, "channel": PRESENCE}
    relayed = await bob.recv_op("whisper")
    assert relayed == {
        "op": "whisper",
        "channel": PRESENCE,
        "event": "typing",
        "data": {"f": "text"},
        "user_id": "1",
    }
    # Not on a public channel, even a subscribed one; not on a protected one not subscribed.
    await carol.subscribe("todo.todoitem")
    public = await carol.request("whisper", channel="todo.todoitem", event="typing", data=1)
    assert public["code"] == 4403
    foreign = await carol.request("whisper", channel=PRESENCE, event="typing", data=1)
    assert foreign["code"] == 4403
    # Bad event names and data too large.
    bad = await ann.request("whisper", channel=PRESENCE, event="a b", data=1)
    assert bad["code"] == 4409
    big = await ann.request("whisper", channel=PRESENCE, event="big", data="x" * 5000)
    assert big["code"] == 4413
    # The sender never gets its own whisper back.
    await ann.request("ping")
    assert not [f for f in ann._backlog if f["op"] == "whisper"]
    for client in (ann, bob, carol):
        await client.close()


async def test_whisper_flood_is_rate_limited_then_closed(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(options={"whisper_rate": 5})
    flooder, listener = await Client.open(server.url), await Client.open(server.url)
    await join(flooder, PRIVATE)
    await join(listener, PRIVATE, "2")
    for number in range(40):
        await flooder.send(
            {"op": "whisper", "id": 100 + number, "channel": PRIVATE, "event": "e", "data": number}
        )
    answers = []
    code, _reason = None, ""
    try:
        while True:
            frame = await flooder.recv()
            if frame.get("id", 0) >= 100:
                answers.append(frame)
    except Exception:
        code, _reason = await flooder.closed()
    acks = [a for a in answers if a["op"] == "ack"]
    limited = [a for a in answers if a["op"] == "error"]
    assert 5 <= len(acks) <= 6  # the burst, plus what refilled while sending
    assert limited and all(a["code"] == 4430 for a in limited)
    assert len(limited) == 10  # abuse_threshold errors in a row, then close
    assert code == 4001
    received = [await listener.recv_op("whisper") for _ in acks]
    assert [f["data"] for f in received] == [a["id"] - 100 for a in acks]
    await listener.close()


@pytest.fixture
def local_backend() -> Iterator[None]:
    """Use the ``local`` backend (publish and revoke into the servers of this process)."""
    with override_settings(RTBRIDGE_BACKEND="local"):
        reset_backend()
        yield
    reset_backend()


async def test_revoke_ends_subscriptions_and_refuses_old_tokens(
    server: Server, local_backend: None
) -> None:
    ann, ann_tab2, bob = [await Client.open(server.url) for _ in range(3)]
    old_token = token(ann.socket_id, PRESENCE, "1")
    answer = await ann.request("subscribe", channel=PRESENCE, auth=old_token)
    assert answer["op"] == "ack"
    await join(ann_tab2, PRESENCE, "1")
    await join(bob, PRESENCE, "2")
    await join(ann, PRIVATE, "1")
    rtbridge.revoke("1", PRESENCE)
    for tab in (ann, ann_tab2):
        assert await tab.recv_op("revoked") == {
            "op": "revoked",
            "channel": PRESENCE,
            "reason": "access revoked",
        }
    left = await bob.recv_op("presence")
    assert (left["action"], left["member"]["id"]) == ("leave", "1")
    # No more messages for Ann on that channel; her other subscription is untouched.
    server.publish(Message([PRESENCE, PRIVATE], "after", 1))
    assert [f["channel"] for f in await ann.messages(1)] == [PRIVATE]
    assert [f["channel"] for f in await bob.messages(1)] == [PRESENCE]
    # The token issued before the revocation is refused for the rest of its lifetime.
    assert await refusal(ann, PRESENCE, old_token) == "revoked"
    # Tokens have whole-second timestamps: one signed in a later second is accepted.
    await asyncio.sleep(1.05)
    assert (await join(ann, PRESENCE, "1"))["op"] == "ack"
    for client in (ann, ann_tab2, bob):
        await client.close()


async def test_excluded_sender_gets_a_skip_frame(server: Server) -> None:
    sender, other = await Client.open(server.url), await Client.open(server.url)
    await sender.subscribe("room")
    await other.subscribe("room")
    server.publish(Message("room", "first", 1))
    server.publish(Message("room", "mine", 2, exclude=sender.socket_id))
    server.publish(Message("room", "third", 3))
    frames = [await sender.recv(), await sender.recv(), await sender.recv()]
    assert [(f["op"], f["offset"]) for f in frames] == [
        ("message", 1),
        ("skip", 2),
        ("message", 3),
    ]
    epoch = frames[0]["epoch"]
    assert frames[1] == {"op": "skip", "channel": "room", "offset": 2, "epoch": epoch, "seq": 2}
    assert [f["offset"] for f in await other.messages(3)] == [1, 2, 3]
    await sender.close()
    await other.close()


def test_features_follow_what_django_provides(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.apps import apps

    from rtbridge.server.app import available_features

    assert available_features() == ("auth", "presence", "whisper", "call", "revoke")
    monkeypatch.setattr(apps, "ready", False)
    assert available_features() == ("auth", "presence", "whisper", "revoke")


async def test_a_server_without_django_offers_no_features(
    make_server: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rtbridge.server.app.available_features", lambda: ())
    server = make_server()
    client = await Client.open(server.url)
    assert client.welcome["features"] == []
    refused = await client.request("subscribe", channel=PRIVATE, auth=token("x", PRIVATE))
    assert refused["code"] == 4403 and "SECRET_KEY" in refused["reason"]
    answer = await client.request("call", route="todo-item", verb="get_list")
    assert answer["code"] == 4404
    await client.close()
