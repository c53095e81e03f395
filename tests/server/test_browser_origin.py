"""A real browser against the Origin check: allowed pages connect, a foreign page gets no socket."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from rtbridge.server import Server
from tests.services import chromium

pytestmark = pytest.mark.browser

# Resolves to the op of the first frame ("welcome"), or "refused" when no socket opens.
OPEN_SOCKET = """(url) => new Promise((resolve) => {
    const socket = new WebSocket(url);
    socket.onmessage = (event) => { resolve(JSON.parse(event.data).op); socket.close(); };
    socket.onerror = () => resolve("refused");
})"""


def page_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app serving one blank page, so the browser has an http:// origin."""
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<!doctype html><title>page</title>"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (one per module)."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def factory(**kwargs: Any) -> Server:
        server = Server(wsgi_app=page_app, **kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


def open_socket_from(browser: Any, page_url: str, socket_url: str) -> str:
    page = browser.new_page()
    try:
        page.goto(page_url)
        return str(page.evaluate(OPEN_SOCKET, socket_url))
    finally:
        page.close()


def test_browser_origins(browser: Any, servers: Callable[..., Server]) -> None:
    friend = servers()
    stranger = servers()
    sockets = servers(allowed_origins=[friend.http_url])
    # The listed origin connects; another port on the same host is another origin.
    assert open_socket_from(browser, friend.http_url + "/", sockets.url) == "welcome"
    assert open_socket_from(browser, stranger.http_url + "/", sockets.url) == "refused"
    # A page served by the socket's own server is same-origin, listed or not.
    assert open_socket_from(browser, sockets.http_url + "/", sockets.url) == "welcome"
    assert sockets.hub.stats.refused == 1


def test_allowed_hosts_rule_in_a_browser(
    browser: Any, servers: Callable[..., Server], settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["localhost"]
    settings.RTBRIDGE_ALLOWED_ORIGINS = None
    page_server = servers()
    sockets = servers()
    page_on_localhost = f"http://localhost:{page_server.port}/"
    page_on_ip = f"http://127.0.0.1:{page_server.port}/"
    # The socket's own Host must pass ALLOWED_HOSTS too, as Django checks every request.
    socket_on_localhost = sockets.url.replace("127.0.0.1", "localhost")
    assert open_socket_from(browser, page_on_localhost, socket_on_localhost) == "welcome"
    assert open_socket_from(browser, page_on_ip, socket_on_localhost) == "refused"
    assert open_socket_from(browser, page_on_localhost, sockets.url) == "refused"
