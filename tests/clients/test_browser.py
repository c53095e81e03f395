"""Headless Chromium loads a page served by Django and receives a message published from Python."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application
from django.test import override_settings

import rtbridge

from .conftest import SETTINGS, clear_finders

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("page_path", ["/module/", "/classic/"])
def test_page_receives_a_message_published_from_python(
    site: Any, browser: Any, page_path: str
) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    try:
        page.goto(site.http_url + page_path)
        page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=10_000)
        assert page.text_content("#state") == "connected"
        assert page.evaluate("typeof window.RTBridge.connect") == "function"

        rtbridge.publish("todo.todoitem;todo_list_id=2", "created", {"id": 1, "text": "other"})
        rtbridge.publish("todo.todoitem;todo_list_id=1", "created", {"id": 2, "text": "milk"})
        rtbridge.publish("todo.todolist.1", "renamed", {"name": "Groceries"})
        page.wait_for_function("window.received.length === 1", timeout=10_000)
        page.wait_for_function("document.title === 'Groceries'", timeout=10_000)
        assert page.evaluate("window.received") == [["created", {"id": 2, "text": "milk"}]]
        assert errors == []
    finally:
        page.close()


def test_sender_is_excluded_by_socket_id(site: Any, browser: Any) -> None:
    page = browser.new_page()
    try:
        page.goto(site.http_url + "/module/")
        page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=10_000)
        socket_id = page.evaluate("window.rt.socketId()")
        assert socket_id
        rtbridge.publish(
            "todo.todoitem;todo_list_id=1", "created", {"text": "mine"}, exclude=socket_id
        )
        rtbridge.publish("todo.todoitem;todo_list_id=1", "created", {"text": "theirs"})
        page.wait_for_function("window.received.length >= 1", timeout=10_000)
        page.wait_for_timeout(100)
        assert page.evaluate("window.received.map(([, data]) => data.text)") == ["theirs"]
        assert page.text_content("#log") == "created: theirs"
    finally:
        page.close()


def test_page_reconnects_and_resubscribes_after_the_server_restarts(browser: Any) -> None:
    from rtbridge.server import Server

    with override_settings(**SETTINGS):
        clear_finders()
        app = StaticFilesHandler(get_wsgi_application())
        server = Server(port=0, wsgi_app=app).start()
        page = browser.new_page()
        try:
            page.goto(server.http_url + "/module/")
            page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=10_000)
            # "void": Playwright would call a function the expression returns (the remover).
            page.evaluate(
                "window.resubscribed = []; void rt.onResubscribed(c => resubscribed.push(c))"
            )
            port = server.port
            server.stop()  # the page's socket gets close code 1001
            page.wait_for_function(
                "document.getElementById('state').textContent === 'reconnecting'", timeout=10_000
            )
            server = Server(port=port, wsgi_app=app).start()
            page.wait_for_function(
                "window.resubscribed.includes('todo.todoitem;todo_list_id=1')", timeout=20_000
            )
            assert page.text_content("#state") == "connected"
            rtbridge.publish("todo.todoitem;todo_list_id=1", "created", {"id": 1, "text": "back"})
            page.wait_for_function("window.received.length >= 1", timeout=10_000)
            page.wait_for_timeout(100)
            assert page.evaluate("window.received") == [["created", {"id": 1, "text": "back"}]]
        finally:
            page.close()
            server.stop()
            clear_finders()
