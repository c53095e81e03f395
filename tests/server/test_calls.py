"""Router calls over the socket: the session user, the same replies as HTTP, never on the loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient
from django.test import override_settings

import rtbridge
from rtbridge import routers
from rtbridge.messages import Message
from rtbridge.publishers import reset_backend
from rtbridge.server import Server
from tests.server.helpers import Client
from tests.testapp.models import TodoItem, TodoList

# The server's worker threads must see what the test wrote: no wrapping transaction.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", password="pw")


@pytest.fixture
def lists(ann: User) -> dict[str, TodoList]:
    bob = User.objects.create_user("bob", password="pw")
    with rtbridge.suppress():
        return {
            "ann": TodoList.objects.create(name="ann's", owner=ann),
            "bob": TodoList.objects.create(name="bob's", owner=bob),
        }


@pytest.fixture
def http(ann: User) -> HttpClient:
    """Ann logged in over HTTP; her session cookie also opens the socket."""
    client = HttpClient()
    client.force_login(ann)
    return client


def session_headers(http: HttpClient) -> dict[str, str]:
    return {"Cookie": f"sessionid={http.cookies['sessionid'].value}"}


def over_http(http: HttpClient, route: str, verb: str, args: dict[str, Any]) -> tuple[int, Any]:
    response = http.post(
        f"/rtbridge/data/{route}/{verb}", json.dumps(args), content_type="application/json"
    )
    return response.status_code, response.json()


async def over_socket(
    client: Client, route: str, verb: str, args: dict[str, Any] | None = None
) -> tuple[int, Any]:
    fields: dict[str, Any] = {"route": route, "verb": verb}
    if args is not None:
        fields["args"] = args
    answer = await call_frame(client, **fields)
    assert answer["op"] == "reply", answer
    return answer["status"], answer["body"]


async def call_frame(client: Client, **fields: Any) -> dict[str, Any]:
    """Send a call and return its answer (reply or error)."""
    client._next_id += 1
    request_id = client._next_id
    await client.send({"op": "call", "id": request_id, **fields})
    skipped: list[dict[str, Any]] = []
    while True:
        frame = await client.recv(timeout=10)
        if frame.get("id") == request_id:
            client._backlog.extend(skipped)
            return frame
        skipped.append(frame)


def sync(function: Callable[..., Any], *args: Any) -> Any:
    """Run a database helper in a thread: the test's event loop is not a place for queries."""
    return asyncio.get_running_loop().run_in_executor(None, function, *args)


async def test_each_verb_as_the_session_user_gives_the_http_replies(
    server: Server, http: HttpClient, lists: dict[str, TodoList]
) -> None:
    client = await Client.open(server.url, additional_headers=session_headers(http))
    mine = lists["ann"].pk
    status, created = await over_socket(
        client, "todo-item", "create", {"todo_list_id": mine, "text": "milk"}
    )
    assert status == 201
    item_id = created["data"]["id"]
    assert await sync(lambda: TodoItem.objects.get(pk=item_id).text) == "milk"
    for verb, args in (
        ("get_list", {"todo_list_id": mine}),
        ("get_single", {"id": item_id}),
        ("get_single", {"id": 999}),  # 404, not 403
        ("get_list", {"todo_list_id": mine, "page": 7}),  # page out of range
        ("create", {"todo_list_id": mine, "text": ""}),  # per-field errors
        ("create", {"todo_list_id": lists["bob"].pk, "text": "x"}),  # someone else's list
        ("nope", {}),  # unknown verb
    ):
        assert await over_socket(client, "todo-item", verb, args) == await sync(
            over_http, http, "todo-item", verb, args
        ), verb
    assert await over_socket(client, "nowhere", "get_list") == await sync(
        over_http, http, "nowhere", "get_list", {}
    )
    status, updated = await over_socket(
        client, "todo-item", "update", {"id": item_id, "done": True}
    )
    assert (status, updated["data"]["done"]) == (200, True)
    assert await sync(over_http, http, "todo-item", "get_single", {"id": item_id}) == (
        200,
        {"data": {**created["data"], "done": True, "label": "milk ✓"}},
    )
    assert await over_socket(client, "todo-item", "clear_done", {"todo_list_id": mine}) == (
        200,
        {"data": {"deleted": 1}},
    )
    await sync(lambda: TodoItem.objects.create(todo_list_id=mine, text="eggs"))
    eggs = await sync(lambda: TodoItem.objects.get(text="eggs").pk)
    assert await over_socket(client, "todo-item", "delete", {"id": eggs}) == (
        200,
        {"data": {"id": eggs}},
    )
    assert await sync(lambda: TodoItem.objects.count()) == 0
    await client.close()


async def test_anonymous_and_forged_sessions_get_login_required(
    server: Server, lists: dict[str, TodoList]
) -> None:
    for headers in ({}, {"Cookie": "sessionid=forged"}):
        client = await Client.open(server.url, additional_headers=headers)
        status, body = await over_socket(client, "todo-item", "get_list", {})
        assert (status, body["error"]["code"]) == (401, "login_required")
        # Public reads still work for the anonymous user.
        status, body = await over_socket(client, "todo-list", "get_single", {"id": lists["ann"].pk})
        assert (status, body["data"]["name"]) == (200, "ann's")
        await client.close()


async def test_bad_call_frames_and_rate_limit(make_server: Callable[..., Server]) -> None:
    server = make_server(options={"call_rate": 3})
    client = await Client.open(server.url)
    for fields, code in (
        ({"verb": "get_list"}, 4409),
        ({"route": "todo-item", "verb": 5}, 4409),
        ({"route": "todo-item", "verb": "get_list", "args": [1]}, 4409),
    ):
        answer = await call_frame(client, **fields)
        assert (answer["op"], answer["code"]) == ("error", code)
    for _ in range(6):
        await client.send({"op": "call", "id": 50, "route": "nowhere", "verb": "x"})
    answers = [await client.recv_op("reply") for _ in range(3)]
    assert all(a["status"] == 404 for a in answers)
    limited = await client.recv_op("error")
    assert (limited["code"], limited["detail"]) == (4430, "rate_limited")
    await client.close()


class SlowRouter(routers.BaseRouter):
    route_name = "slow-test"
    started = threading.Event()

    @routers.verb
    def wait(self, seconds: float) -> dict[str, float]:
        SlowRouter.started.set()
        time.sleep(seconds)
        return {"slept": seconds}


@pytest.fixture
def slow_route() -> Iterator[None]:
    routers.register(SlowRouter)
    SlowRouter.started.clear()
    yield
    routers.unregister("slow-test")


async def test_a_slow_call_never_blocks_the_loop(server: Server, slow_route: None) -> None:
    caller, other = await Client.open(server.url), await Client.open(server.url)
    await other.subscribe("room")
    slow = asyncio.ensure_future(over_socket(caller, "slow-test", "wait", {"seconds": 1.5}))
    await sync(SlowRouter.started.wait, 5)
    started = time.monotonic()
    assert (await other.request("ping"))["op"] == "pong"
    server.publish(Message("room", "while-calling", 1))
    assert (await other.messages(1))[0]["event"] == "while-calling"
    # A second socket's call runs in parallel in another thread.
    second = await Client.open(server.url)
    assert await over_socket(second, "slow-test", "wait", {"seconds": 0}) == (
        200,
        {"data": {"slept": 0}},
    )
    assert time.monotonic() - started < 1.0
    assert not slow.done()
    assert await slow == (200, {"data": {"slept": 1.5}})
    for client in (caller, other, second):
        await client.close()


async def test_a_write_over_the_socket_skips_the_caller(
    server: Server, http: HttpClient, lists: dict[str, TodoList]
) -> None:
    with override_settings(RTBRIDGE_BACKEND="local"):
        reset_backend()
        try:
            caller = await Client.open(server.url, additional_headers=session_headers(http))
            other = await Client.open(server.url)
            channel = "testapp.todoitem"
            await caller.subscribe(channel)
            await other.subscribe(channel)
            status, _ = await over_socket(
                caller, "todo-item", "create", {"todo_list_id": lists["ann"].pk, "text": "milk"}
            )
            assert status == 201
            frame = await other.recv_op("message")
            assert (frame["event"], frame["seq"], frame["data"]["text"]) == ("created", 1, "milk")
            skip = await caller.recv_op("skip")
            epoch = frame["epoch"]
            assert skip == {"op": "skip", "channel": channel, "offset": 1, "epoch": epoch, "seq": 1}
            await caller.close()
            await other.close()
        finally:
            reset_backend()


async def test_any_origin_never_lends_the_session_to_a_foreign_page(
    make_server: Callable[..., Server], http: HttpClient, lists: dict[str, TodoList]
) -> None:
    server = make_server(allowed_origins="*")
    cookie = session_headers(http)
    foreign = await Client.open(
        server.url,
        additional_headers=cookie,
        origin="https://evil.example",
    )
    status, body = await over_socket(foreign, "todo-item", "get_list", {})
    assert (status, body["error"]["code"]) == (401, "login_required")
    same = await Client.open(
        server.url,
        additional_headers=cookie,
        origin=server.http_url,
    )
    assert (await over_socket(same, "todo-item", "get_list", {}))[0] == 200
    for client in (foreign, same):
        await client.close()
