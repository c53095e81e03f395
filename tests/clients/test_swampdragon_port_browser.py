"""Headless Chromium: the talk's todo app ported from SwampDragon, driven as its page drove it.

The page loads an item and sends it back whole after ticking it (SwampDragon's
``$dragon.update(route, item)``), then with AngularJS's ``$$hashKey`` on it, then calls a router
whose SwampDragon-era hook crashes; each error the page sees names the problem. The calls go
over the self-hosted socket (its welcome offers ``call``); the HTTP path gives the same bodies
(tests/test_swampdragon_compat.py, tests/server/test_calls.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import rtbridge
from rtbridge import routers
from tests.testapp.models import TodoItem, TodoList
from tests.testapp.swampdragon_port import ROUTERS, TalkTodoItemSerializer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 20_000

TICK_AND_SEND_BACK = """async ({id, extra}) => {
  const item = await window.rt.getSingle("talk-todo-item", {id});
  item.done = true;
  try {
    return {reply: await window.rt.call("talk-todo-item", "update", {...item, ...extra})};
  } catch (error) {
    return {code: error.code, status: error.status, message: error.message, fields: error.fields};
  }
}"""


class CrashingRouter(rtbridge.ModelRouter):
    """SwampDragon's docs looked objects up by kwargs['pk']; rtbridge passes the client's id=."""

    route_name = "talk-crashing"
    model = TodoItem
    serializer_class = TalkTodoItemSerializer

    def get_object(self, **kwargs: Any) -> TodoItem:
        return TodoItem.objects.get(pk=kwargs["pk"])


@pytest.fixture
def talk_routes() -> Iterator[None]:
    for router_class in (*ROUTERS, CrashingRouter):
        routers.register(router_class)
    yield
    for router_class in (*ROUTERS, CrashingRouter):
        routers.unregister(router_class.route_name)


def test_the_ported_page_sends_items_back_whole_and_sees_each_error_named(
    site: Any, browser: Any, talk_routes: None
) -> None:
    with rtbridge.suppress():
        milk = TodoItem.objects.create(todo_list=TodoList.objects.create(name="talk"), text="milk")
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{site.http_url}/live/")
        page.wait_for_function("window.rt && window.rt.state === 'connected'", timeout=TIMEOUT)
        assert page.evaluate("window.rt.transport.canCall()"), "the calls must go over the socket"

        # The whole item comes back: done is written, the read-only keys are named, not refused.
        sent = page.evaluate(TICK_AND_SEND_BACK, {"id": milk.pk, "extra": {}})
        assert sent == {
            "reply": {"data": {"id": milk.pk, "done": True}, "read_only": ["todo_list_id", "text"]}
        }, sent
        milk.refresh_from_db()
        assert (milk.done, milk.text) == (True, "milk")

        # AngularJS's $$hashKey: refused, and the message the page shows says what and why.
        refused = page.evaluate(
            TICK_AND_SEND_BACK, {"id": milk.pk, "extra": {"$$hashKey": "object:3"}}
        )
        assert (refused["status"], refused["code"]) == (422, "invalid")
        assert list(refused["fields"]) == ["$$hashKey"]
        assert (
            "talk-todo-item/update failed: 422 invalid: Some values are not valid: $$hashKey: "
            in (refused["message"])
        )
        assert "AngularJS adds it to the objects it renders" in refused["message"]

        # A hook that crashes: the page learns which call failed, never a traceback.
        crashed = page.evaluate(
            """async (id) => {
              try { await window.rt.getSingle("talk-crashing", {id}); return null; }
              catch (error) { return {code: error.code, status: error.status, message: error.message}; }
            }""",
            milk.pk,
        )
        assert (crashed["status"], crashed["code"]) == (500, "server_error")
        assert "talk-crashing.get_single failed on the server" in crashed["message"]
        assert "Traceback" not in crashed["message"]
        assert errors == []
    finally:
        context.close()
