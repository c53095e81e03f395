"""Headless Chromium on a self-hosted node over Redis: a node restart is resumed from history, a wiped Redis reloads."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application
from django.test import override_settings

from rtbridge.server import Server
from tests.services import RedisServer
from tests.testapp.models import TodoItem, TodoList

from .conftest import SETTINGS, clear_finders
from .test_live_browser import TIMEOUT, logged_in, open_page, rows, wait_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# What the page records: every continuity hook, and each load of the live list.
INSTRUMENT = """() => {
  window.events = [];
  void rt.onGap((channel, info) => events.push(["gap", info.recovered]));
  void rt.onRecovered((channel, info) => events.push(["recovered", info.reason]));
  void rt.onResubscribed((channel, info) => events.push(["resubscribed", info.recovered]));
  window.loads = 0;
  const refetch = live.refetch.bind(live);
  live.refetch = () => (window.loads++, refetch());
}"""


class Node:
    """A self-hosted node (and Django) on Redis; ``stop()`` then ``start()`` restarts it on its port."""

    def __init__(self, redis_url: str, prefix: str, app: Any) -> None:
        self.options = {"redis_url": redis_url, "prefix": prefix, "wsgi_app": app}
        self.server = Server(port=0, **self.options).start()
        self.http_url = self.server.http_url

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = Server(port=self.server.port, **self.options).start()


@pytest.fixture
def redis_site(fresh_redis: RedisServer) -> Iterator[tuple[Node, RedisServer]]:
    """A node on the ``redis`` backend (history on, the default) and its ``redis-server``."""
    prefix = f"t{secrets.token_hex(4)}:"
    settings = {
        **SETTINGS,
        "RTBRIDGE_BACKEND": "redis",
        "RTBRIDGE_OPTIONS": {"url": fresh_redis.url, "prefix": prefix},
    }
    with override_settings(**settings):
        clear_finders()
        node = Node(fresh_redis.url, prefix, StaticFilesHandler(get_wsgi_application()))
        try:
            yield node, fresh_redis
        finally:
            node.stop()
            clear_finders()


@pytest.fixture
def ann() -> Iterator[User]:
    yield User.objects.create_user("ann")


def open_live_list(
    browser: Any, node: Node, ann: User, errors: list[str]
) -> tuple[Any, Any, TodoList]:
    groceries = TodoList.objects.create(name="ann groceries", owner=ann)
    TodoItem.objects.create(todo_list=groceries, text="milk")
    context = logged_in(browser, node, ann)
    page = open_page(context, f"{node.http_url}/live/?list={groceries.pk}", errors)
    page.wait_for_function("document.body.dataset.live === 'ready'", timeout=TIMEOUT)
    assert rows(page) == ["milk"]
    page.evaluate(INSTRUMENT)
    return context, page, groceries


def texts(todo_list: TodoList) -> list[str]:
    return [item.text for item in TodoItem.objects.filter(todo_list=todo_list).order_by("id")]


def test_a_node_restart_while_items_are_saved_is_resumed_from_history_without_a_reload(
    redis_site: tuple[Node, RedisServer], browser: Any, ann: User
) -> None:
    node, _redis = redis_site
    errors: list[str] = []
    context, page, groceries = open_live_list(browser, node, ann, errors)
    try:
        node.stop()  # the page's socket gets 1001; saves go on through Redis meanwhile
        page.wait_for_function(
            "document.getElementById('state').textContent === 'reconnecting'", timeout=TIMEOUT
        )
        TodoItem.objects.create(todo_list=groceries, text="eggs")
        TodoItem.objects.create(todo_list=groceries, text="jam")
        node.start()
        wait_rows(page, ["milk", "eggs", "jam"])
        page.wait_for_function("window.events.length >= 2", timeout=TIMEOUT)
        page.wait_for_timeout(200)
        assert page.evaluate("window.events") == [
            ["recovered", "reconnect"],
            ["resubscribed", True],
        ]
        assert page.evaluate("window.loads") == 0, "recovered from history: no reload"
        TodoItem.objects.create(todo_list=groceries, text="tea")
        wait_rows(page, ["milk", "eggs", "jam", "tea"])
        assert rows(page) == texts(groceries)
        # A reconnect attempt while the node was down is refused (the page retries): fine.
        assert [e for e in errors if "1001" not in e and "ERR_CONNECTION_REFUSED" not in e] == []
    finally:
        context.close()


def test_a_redis_restarted_empty_is_recovered_false_and_the_live_list_reloads_to_the_database(
    redis_site: tuple[Node, RedisServer], browser: Any, ann: User
) -> None:
    node, redis_server = redis_site
    errors: list[str] = []
    context, page, groceries = open_live_list(browser, node, ann, errors)
    try:
        redis_server.stop()
        # Saved while Redis is down: the publish fails, so no position tells the page.
        TodoItem.objects.filter(todo_list=groceries).update(text="milk (changed unseen)")
        redis_server.start()  # empty: every channel's history and epoch are gone
        page.wait_for_function(
            "window.events.some(([hook, recovered]) => hook === 'gap' && recovered === false)",
            timeout=TIMEOUT,
        )
        wait_rows(page, ["milk (changed unseen)"])
        assert page.evaluate("window.loads") >= 1, "recovered false: the list reloads by itself"
        TodoItem.objects.create(todo_list=groceries, text="bread")  # the new epoch, live
        wait_rows(page, ["milk (changed unseen)", "bread"])
        assert rows(page) == texts(groceries)
    finally:
        context.close()
