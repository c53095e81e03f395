"""``RTBRIDGE_SERVER["public_url"]`` is a base URL: the page connects to it plus the socket path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

import rtbridge
from rtbridge.server import Server

pytestmark = pytest.mark.browser


@pytest.fixture
def socket_node() -> Iterator[Server]:
    """A second server, sockets only: where public_url sends the page (not the page's host)."""
    server = Server(port=0).start()
    yield server
    server.stop()


@pytest.mark.parametrize("form", ["base", "base/", "full"])
def test_the_page_connects_to_public_url_plus_the_path(
    site: Any, socket_node: Server, browser: Any, form: str
) -> None:
    base = f"ws://127.0.0.1:{socket_node.port}"
    public_url = {"base": base, "base/": f"{base}/", "full": f"{base}/rtbridge/ws"}[form]
    with override_settings(RTBRIDGE_SERVER={"public_url": public_url}):
        page = browser.new_page()
        try:
            page.goto(site.http_url + "/module/")
            # Before the fix the page connected to ws://host:port/ (404) and retried forever.
            page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=10_000)
            assert page.evaluate("window.rt.config.url") == f"{base}/rtbridge/ws"
            assert len(socket_node.hub.connections) == 1
            assert len(site.hub.connections) == 0
            rtbridge.publish("todo.todoitem;todo_list_id=1", "created", {"id": 1, "text": "milk"})
            page.wait_for_function("window.received.length === 1", timeout=10_000)
        finally:
            page.close()
