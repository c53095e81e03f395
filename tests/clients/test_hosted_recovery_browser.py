"""Headless Chromium pages on Pusher, PubNub and Firebase lose nothing when the transport fails.

Each page runs the rtbridge JS client over the vendor's browser SDK (``hosted_pages.py``); Django
assigns positions with the ``"database"`` history store and serves the history endpoint. The
faults: soketi restarted mid-stream, a 150-message burst into PubNub's 100-per-response cap,
PubNub refusing every subscribe for 10 s, Firebase's socket dropped and refused for a while.
Every page must end with every message exactly once, in order, and say ``onGap`` never.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.wsgi import get_wsgi_application
from django.test import override_settings

import rtbridge
from tests.clients.hosted_pages import FIREBASE_CDN, NODE_MODULES
from tests.services import chromium
from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.fixtures import fake_firebase, fake_pubnub
from tests.wire.servers import Soketi, node_or_skip

__all__ = ["fake_firebase", "fake_pubnub"]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 30_000
CHANNEL = "stream.room"
HISTORY = {"store": "database", "size": 1000, "ttl": 600}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(allow_async_unsafe=True) as launched:
        yield launched


@pytest.fixture
def site() -> Iterator[Callable[..., Any]]:
    """Start the Django site for a backend: ``site(alias, options)`` returns its server."""
    from rtbridge.server import Server

    started: list[tuple[Any, Any]] = []

    def start(alias: str, options: dict[str, Any]) -> Any:
        overrides = override_settings(
            ROOT_URLCONF="tests.clients.hosted_pages",
            RTBRIDGE_BACKEND=alias,
            RTBRIDGE_OPTIONS=options,
            RTBRIDGE_HISTORY=HISTORY,
        )
        overrides.enable()
        server = Server(port=0, wsgi_app=get_wsgi_application()).start()
        started.append((server, overrides))
        return server

    yield start
    for server, overrides in reversed(started):
        server.stop()
        rtbridge.publishers.reset_backend()
        overrides.disable()


def open_page(browser: Any, server: Any) -> Any:
    """Open the hosted page on ``CHANNEL`` and wait until its subscription is live."""
    context = browser.new_context()

    def firebase_from_disk(route: Any) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        route.fulfill(path=str(NODE_MODULES / "firebase" / name), content_type="text/javascript")

    context.route(f"{FIREBASE_CDN}**", firebase_from_disk)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.http_url}/hosted/?channel={CHANNEL}")
    try:
        page.wait_for_function("document.body.dataset.subscribed === 'yes'", timeout=TIMEOUT)
    except Exception as exc:
        raise AssertionError(f"the page did not subscribe: {errors} {state(page)}") from exc
    page.errors = errors
    return page


def state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        "({received: window.received?.map(([d]) => d.n), states: window.states, gaps: window.gaps,"
        " recovered: window.recovered, errors: window.errors})"
    )


def wait(page: Any, condition: str) -> None:
    """Wait until the JS ``condition`` holds on the page; fail showing what the page saw."""
    try:
        page.wait_for_function(condition, timeout=TIMEOUT)
    except Exception as exc:
        raise AssertionError(f"no {condition!r}: the page has {state(page)}") from exc


def wait_all(page: Any, count: int) -> dict[str, Any]:
    """Wait until the page holds ``count`` messages; return what it saw."""
    wait(page, f"window.received.length >= {count}")
    time.sleep(0.5)  # nothing more (no duplicate) may follow
    return state(page)


def check_every_message_once_in_order(seen: dict[str, Any], count: int) -> None:
    assert seen["received"] == list(range(count)), seen
    assert seen["gaps"] == [], "nothing was lost for good, so onGap must not fire"


def publish(n: int) -> None:
    rtbridge.publish(CHANNEL, "n", {"n": n, "text": "héllo ☕"})


def test_pusher_page_recovers_every_message_after_soketi_restarts(
    browser: Any, site: Callable[..., Any]
) -> None:
    node_or_skip("@soketi/soketi")
    soketi = Soketi()
    soketi.start()
    try:
        server = site("pusher", {**soketi.options, "max_attempts": 2, "retry_backoff": 0.05})
        page = open_page(browser, server)
        for n in range(15):
            publish(n)
            time.sleep(0.05)
        rtbridge.flush(5)
        soketi.stop()  # the page's socket drops; publishes meanwhile fail and stay in history
        for n in range(15, 25):
            publish(n)
            time.sleep(0.05)
        rtbridge.flush(10)
        soketi.start()  # pusher-js reconnects by itself; the client resumes from history
        for n in range(25, 40):
            publish(n)
            time.sleep(0.05)
        rtbridge.flush(5)
        seen = wait_all(page, 40)
    finally:
        soketi.stop()
    check_every_message_once_in_order(seen, 40)
    assert "connected" in seen["states"][seen["states"].index("connected") + 1 :], seen["states"]


def pubnub_options(fake: FakePubNub) -> dict[str, Any]:
    return {
        "publish_key": fake.publish_key,
        "subscribe_key": fake.subscribe_key,
        "origin": fake.host,
        "ssl": False,
    }


def test_pubnub_page_gets_a_150_message_burst_whole(
    browser: Any, site: Callable[..., Any], fake_pubnub: FakePubNub
) -> None:
    fake_pubnub.coalesce = 2.0  # the burst lands in one subscribe response: 100 at most
    server = site("pubnub", pubnub_options(fake_pubnub))
    page = open_page(browser, server)
    for n in range(150):
        publish(n)
    rtbridge.flush(10)
    seen = wait_all(page, 150)
    assert sum(fake_pubnub.overflowed.values()) > 0, "the burst must have hit the cap"
    check_every_message_once_in_order(seen, 150)


def test_pubnub_page_is_not_connected_while_refused_and_gets_what_was_published(
    browser: Any, site: Callable[..., Any], fake_pubnub: FakePubNub
) -> None:
    server = site("pubnub", pubnub_options(fake_pubnub))
    page = open_page(browser, server)
    publish(0)
    wait(page, "window.received.length === 1")
    fake_pubnub.refuse(10, status=403)  # PubNub refuses every subscribe (Access Manager)
    wait(page, "document.getElementById('state').textContent !== 'connected'")
    publish(1)  # during the outage: its publish works, no page can receive it live
    rtbridge.flush(5)
    time.sleep(2)
    assert page.evaluate("document.getElementById('state').textContent") != "connected"
    seen = wait_all(page, 2)
    check_every_message_once_in_order(seen, 2)
    wait(page, "document.getElementById('state').textContent === 'connected'")


def test_firebase_page_recovers_what_was_published_while_its_socket_was_down(
    browser: Any, site: Callable[..., Any], fake_firebase: FakeFirebase
) -> None:
    server = site(
        "firebase",
        {"database_url": fake_firebase.database_url, "emulator_host": fake_firebase.host},
    )
    page = open_page(browser, server)
    for n in range(5):
        publish(n)
    rtbridge.flush(5)
    wait(page, "window.received.length === 5")
    assert fake_firebase.drop_sockets(refuse_for=3) >= 1
    for n in range(5, 10):
        publish(n)
    rtbridge.flush(5)
    seen = wait_all(page, 10)
    check_every_message_once_in_order(seen, 10)
