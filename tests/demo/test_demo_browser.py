"""``rtbridge demo`` in two Chromium windows: every change shows in the other within a second.

The demo runs as a real subprocess (``python -m rtbridge demo``, what ``rtbridge demo`` runs)
on a free port with a temporary data directory: on the embedded default (``local``), on
``--backend redis`` with a separate rtbridge server process, and over the hosted transports'
loopback servers (soketi, the fake PubNub and Realtime Database). Ann and Ben each get a
browser context (their own cookies); Ann adds, edits, toggles, moves and deletes, Ben sees it;
both edit one item and see each other; then the demo is stopped and started again and both
pages reconnect and resync. The screenshot in ``docs/images/`` is taken here
(``RTBRIDGE_UPDATE_SCREENSHOT=1 pytest tests/demo`` refreshes it).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import RedisServer, chromium, free_port, wait_for_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# Every run saves the screenshot under tests/artifacts/ (ignored by git); with
# RTBRIDGE_UPDATE_SCREENSHOT=1 it also replaces the one the README shows.
SCREENSHOT = ROOT / "tests" / "artifacts" / "demo-two-windows.png"
README_SCREENSHOT = ROOT / "docs" / "images" / "demo-two-windows.png"
#: A change must reach the other window within this many milliseconds (issue 8).
LIVE_MS = 1000
#: The same over the hosted transports' loopback servers: their SDKs publish from a
#: background thread and PubNub's client long-polls, so allow more on a loaded machine.
HOSTED_LIVE_MS = 2500
#: Each window's size (the screenshot shows two side by side).
WIDTH, HEIGHT = 860, 430


class Demo:
    """``rtbridge demo`` as a subprocess; ``stop()``/``start()`` keep the port and the data."""

    def __init__(self, data_dir: Path, extra: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.extra = extra
        self.env = env or {}
        #: The --backend given (local by default).
        self.backend = extra[extra.index("--backend") + 1] if "--backend" in extra else "local"
        #: A hosted transport keeps the pages' connection while the demo restarts.
        self.hosted = self.backend in ("pusher", "pubnub", "firebase")
        self.process: subprocess.Popen[str] | None = None
        self.output = ""
        #: The demo's own redis-server (``--backend redis``), restarted with the demo.
        self.redis: RedisServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "rtbridge", "demo", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.extra]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"the demo did not start:\n{self.output}") from None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        assert process.stdout is not None
        self.output += process.stdout.read()
        assert process.returncode == 0, f"the demo exited with {process.returncode}:\n{self.output}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (one per module)."""
    with chromium() as launched:
        yield launched


@pytest.fixture(params=["local", "redis", "pusher", "pubnub", "firebase"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Demo]:
    """The demo on the embedded default, on Redis with a separate rtbridge server process, or
    on Pusher's protocol (soketi, with pusher-js from ``tests/wire/node_modules``)."""
    extra: list[str] = []
    env: dict[str, str] = {}
    redis_server = None
    if request.param == "redis":
        redis_server = request.getfixturevalue("fresh_redis")
        extra = ["--backend", "redis", "--redis-url", redis_server.url]
        extra += ["--server-port", str(free_port())]
    elif request.param == "pusher":
        from tests.wire.servers import NODE_MODULES, PUSHER_APP, node_or_skip, shared_soketi

        node_or_skip("pusher-js")
        soketi = shared_soketi(request.config)
        extra = ["--backend", "pusher"]
        env = {
            "PUSHER_APP_ID": PUSHER_APP["app_id"],
            "PUSHER_KEY": PUSHER_APP["key"],
            "PUSHER_SECRET": PUSHER_APP["secret"],
            "PUSHER_HOST": "127.0.0.1",
            "PUSHER_PORT": str(soketi.port),
            "PUSHER_SSL": "false",
            "RTBRIDGE_DEMO_PUSHER_JS": str(NODE_MODULES / "pusher-js/dist/web/pusher.min.js"),
        }
    elif request.param == "pubnub":
        from tests.wire.servers import NODE_MODULES, node_or_skip, shared_fake_pubnub

        node_or_skip("pubnub")
        pubnub = shared_fake_pubnub(request.config)
        extra = ["--backend", "pubnub"]
        env = {
            "PUBNUB_PUBLISH_KEY": pubnub.publish_key,
            "PUBNUB_SUBSCRIBE_KEY": pubnub.subscribe_key,
            "PUBNUB_ORIGIN": pubnub.host,
            "PUBNUB_SSL": "false",
            "RTBRIDGE_DEMO_PUBNUB_JS": str(NODE_MODULES / "pubnub/dist/web/pubnub.min.js"),
        }
    elif request.param == "firebase":
        from tests.wire.servers import NODE_MODULES, node_or_skip, shared_fake_firebase

        node_or_skip("firebase")
        firebase = shared_fake_firebase(request.config)
        extra = ["--backend", "firebase"]
        modules = NODE_MODULES / "firebase"
        env = {
            "FIREBASE_DATABASE_URL": firebase.database_url,
            "FIREBASE_DATABASE_EMULATOR_HOST": firebase.host,
            "RTBRIDGE_DEMO_FIREBASE_JS": " ".join(
                str(modules / f"firebase-{name}.js") for name in ("app", "database", "auth")
            ),
        }
    demo = Demo(tmp_path / "data", extra, env)
    demo.redis = redis_server
    demo.start()
    try:
        yield demo
    finally:
        demo.stop()


@pytest.fixture
def windows(browser: Any) -> Iterator[list[Any]]:
    """The browser contexts a test opens, closed after it."""
    contexts: list[Any] = []
    yield contexts
    for context in contexts:
        context.close()


def log_in(windows: list[Any], browser: Any, demo: Demo, username: str) -> Any:
    """Open a window of its own (cookies included) and log in with the one-click button."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    windows.append(context)
    page = context.new_page()
    page.errors = []
    page.live_ms = HOSTED_LIVE_MS if demo.hosted else LIVE_MS
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(demo.url + "/")
    assert "/login/" in page.url
    page.click(f"button[data-username={username}]")
    wait_ready(page)
    return page


def wait_ready(page: Any, timeout: float = 10_000) -> None:
    page.wait_for_function(
        # Null-safe: right after the login click the new document may have no body yet.
        "document.body?.dataset.ready === 'yes' && "
        "document.querySelector('#state')?.dataset.state === 'connected'",
        timeout=timeout,
    )


def within_a_second(page: Any, script: str, arg: Any = None) -> float:
    """Wait until ``script`` is true on ``page``; return the milliseconds it took."""
    start = time.monotonic()
    page.wait_for_function(script, arg=arg, timeout=page.live_ms)
    return (time.monotonic() - start) * 1000


ITEM_TEXTS = "[...document.querySelectorAll('li.item .item-text')].map(i => i.value)"


def texts_in(list_name: str) -> str:
    return (
        "[...document.querySelectorAll('section.list')].filter(s => "
        f"s.querySelector('.list-name').value === {list_name!r})"
        ".flatMap(s => [...s.querySelectorAll('.item-text')].map(i => i.value))"
    )


def item_id(page: Any, text: str) -> str:
    return page.evaluate(
        "(t) => [...document.querySelectorAll('li.item')].find("
        "li => li.querySelector('.item-text').value === t)?.dataset.itemId",
        text,
    )


def save_screenshot(browser: Any, ann: Any, ben: Any) -> None:
    """Compose both windows side by side into one PNG (in the browser: no imaging library)."""
    # The same pixels on every run (no animation frame or hover state), so re-running the
    # tests leaves the committed image unchanged.
    for window in (ann, ben):
        window.add_style_tag(
            content="*, *::before, *::after {animation: none !important; transition: none !important}"
        )
        window.mouse.move(0, 0)
    shots = [
        base64.b64encode(page.screenshot(animations="disabled")).decode() for page in (ann, ben)
    ]
    page = browser.new_page(viewport={"width": 2 * WIDTH + 72, "height": HEIGHT + 88})
    frames = "".join(
        f"<figure><figcaption><i></i><i></i><i></i><span>{who} — 127.0.0.1</span></figcaption>"
        f'<img src="data:image/png;base64,{shot}"></figure>'
        for who, shot in zip(("Ann's window", "Ben's window"), shots, strict=True)
    )
    page.set_content(
        "<style>body{margin:0;padding:24px;display:flex;gap:24px;background:#dfe3ee;"
        "font:13px system-ui,sans-serif}figure{margin:0;border-radius:10px;overflow:hidden;"
        "box-shadow:0 8px 28px rgba(20,24,40,.18);background:#fff}figcaption{display:flex;"
        "align-items:center;gap:6px;padding:9px 12px;background:#eceef4;color:#555}"
        "figcaption i{width:11px;height:11px;border-radius:50%;background:#f25f58}"
        "figcaption i+i{background:#fbbe2e}figcaption i+i+i{background:#38c149}"
        "figcaption span{margin-left:10px}img{display:block}</style>" + frames
    )
    page.wait_for_function("[...document.images].every(i => i.complete)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    if os.environ.get("RTBRIDGE_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.write_bytes(SCREENSHOT.read_bytes())
    page.close()


def test_two_windows_stay_in_step(
    browser: Any, windows: list[Any], demo: Demo, request: pytest.FixtureRequest
) -> None:
    ann = log_in(windows, browser, demo, "ann")
    ben = log_in(windows, browser, demo, "ben")
    assert ann.text_content("header .me strong") == "Ann"
    assert ben.text_content("header .me strong") == "Ben"
    config = ann.evaluate("JSON.parse(document.getElementById('rtbridge-config').textContent)")
    if demo.hosted:
        assert config["backend"] == demo.backend and "secret" not in json.dumps(config)
    elif "--server-port" in demo.extra:
        # The pages talk to the separate rtbridge server process, not to the Django one.
        server_port = demo.extra[demo.extra.index("--server-port") + 1]
        assert config["backend"] == "redis"
        assert config["url"] == f"ws://127.0.0.1:{server_port}/rtbridge/ws"
    else:
        assert config["backend"] == "local" and config["url"] is None
    timings: dict[str, float] = {}

    # Add: Ann types an item into Groceries; Ben's Groceries column gets it.
    groceries_add = ann.locator("section.list").nth(0).locator(".add-item input")
    assert ann.locator("section.list").nth(0).locator(".list-name").input_value() == "Groceries"
    groceries_add.fill("Oat milk")
    groceries_add.press("Enter")
    timings["add"] = within_a_second(ben, f"{texts_in('Groceries')}.includes('Oat milk')")
    ann.wait_for_function(f"{texts_in('Groceries')}.includes('Oat milk')", timeout=ann.live_ms)
    oat = item_id(ann, "Oat milk")
    assert oat and item_id(ben, "Oat milk") == oat
    ann_item = ann.locator(f"li.item[data-item-id='{oat}']")
    ben_item = ben.locator(f"li.item[data-item-id='{oat}']")

    # Edit the text inline.
    ann_item.locator(".item-text").fill("Oat milk (2 l)")
    ann_item.locator(".item-text").press("Enter")
    timings["edit"] = within_a_second(
        ben,
        f"document.querySelector(\"li.item[data-item-id='{oat}'] .item-text\").value === 'Oat milk (2 l)'",
    )

    # Toggle done.
    ann_item.locator(".item-done").check()
    timings["toggle"] = within_a_second(
        ben, f"document.querySelector(\"li.item[data-item-id='{oat}'] .item-done\").checked"
    )
    assert "done" in (ben_item.get_attribute("class") or "")

    # Move to another list (the select; drag-and-drop does the same call).
    this_week = ann.evaluate(
        "[...document.querySelectorAll('section.list')].find(s => "
        "s.querySelector('.list-name').value === 'This week').dataset.listId"
    )
    ann_item.locator(".item-move").select_option(this_week)
    timings["move"] = within_a_second(
        ben,
        f"{texts_in('This week')}.includes('Oat milk (2 l)') && "
        f"!{texts_in('Groceries')}.includes('Oat milk (2 l)')",
    )
    # The mover's own page loads the moved item once its list sees it arrive.
    ann.wait_for_function(
        f"{texts_in('This week')}.includes('Oat milk (2 l)')", timeout=ann.live_ms
    )

    # Presence: both edit the same item; each sees the other, and it clears on blur.
    # (Not on Firebase here: its presence needs custom tokens, signed with service-account
    # credentials or by the Auth emulator, and neither is available to the tests.)
    if demo.backend != "firebase":
        ann_item.locator(".item-text").focus()
        ben_item.locator(".item-text").focus()
        ben.wait_for_function(
            f"document.querySelector(\"li.item[data-item-id='{oat}'] .item-presence\").textContent"
            " === 'Ann is also editing this item'",
            timeout=5000,
        )
        ann.wait_for_function(
            f"document.querySelector(\"li.item[data-item-id='{oat}'] .item-presence\").textContent"
            " === 'Ben is also editing this item'",
            timeout=5000,
        )
        assert ben_item.locator(".item-presence").is_visible()
        if request.node.callspec.params["demo"] == "local":
            save_screenshot(browser, ann, ben)
        # Ann saves (Enter leaves the field): Ben's notice clears, and the field he is typing
        # in is not overwritten; once he leaves it unchanged, it shows Ann's text.
        ann_item.locator(".item-text").fill("Oat milk (3 l)")
        ann_item.locator(".item-text").press("Enter")
        timings["presence cleared"] = within_a_second(
            ben, f"document.querySelector(\"li.item[data-item-id='{oat}'] .item-presence\").hidden"
        )
        ben.wait_for_function(
            f"document.querySelector(\"li.item[data-item-id='{oat}']\").row.text === 'Oat milk (3 l)'",
            timeout=ben.live_ms,
        )
        assert ben_item.locator(".item-text").input_value() == "Oat milk (2 l)"
        ben_item.locator(".item-text").blur()
        assert ben_item.locator(".item-text").input_value() == "Oat milk (3 l)"

    # Delete.
    ann_item.locator(".item-delete").click()
    timings["delete"] = within_a_second(
        ben, f"!document.querySelector(\"li.item[data-item-id='{oat}']\")"
    )

    # Lists: add one and rename it; drag an item onto it by its handle.
    ann.locator("#add-list input").fill("Weekend")
    ann.locator("#add-list input").press("Enter")
    has_list = "(name) => [...document.querySelectorAll('.list-name')].some(i => i.value === name)"
    timings["add list"] = within_a_second(ben, has_list, "Weekend")
    ann.wait_for_function(has_list, arg="Weekend", timeout=ann.live_ms)
    weekend = ann.evaluate(
        "[...document.querySelectorAll('section.list')].find(s => "
        "s.querySelector('.list-name').value === 'Weekend').dataset.listId"
    )
    name_field = ann.locator(f"section.list[data-list-id='{weekend}'] .list-name")
    name_field.fill("Weekend plans")
    name_field.press("Enter")
    timings["rename list"] = within_a_second(ben, has_list, "Weekend plans")
    milk = item_id(ann, "Milk")
    # Wide enough to show both columns: a drag cannot scroll the board on its way.
    ann.set_viewport_size({"width": 1400, "height": HEIGHT})
    ann.locator(f"li.item[data-item-id='{milk}'] .handle").drag_to(
        ann.locator(f"section.list[data-list-id='{weekend}']")
    )
    ann.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    timings["drag to list"] = within_a_second(
        ben,
        f"{texts_in('Weekend plans')}.includes('Milk') && !{texts_in('Groceries')}.includes('Milk')",
    )

    # Restart: both pages notice, reconnect, and resync (a row written while the demo was
    # down shows up, and changes after the restart arrive live again). A hosted transport
    # keeps its connection meanwhile: there only the changes after the restart are checked.
    demo.stop()
    if demo.redis is not None:
        # Redis restarts too, empty (no persistence), as a whole stack restarting does: every
        # channel's epoch changes, so the pages refetch. With Redis kept, they would resume
        # from its history and, rightly, not refetch: the row below is written behind
        # rtbridge's back (no publish), which no history can know about.
        demo.redis.stop()
        demo.redis.start()
    if not demo.hosted:
        for page in (ann, ben):
            page.wait_for_function(
                "document.querySelector('#state').dataset.state !== 'connected'", timeout=10_000
            )
        with sqlite3.connect(demo.data_dir / "db.sqlite3") as db:
            groceries_id = db.execute(
                "SELECT id FROM todo_todolist WHERE name = 'Groceries'"
            ).fetchone()[0]
            db.execute(
                "INSERT INTO todo_todoitem (todo_list_id, text, done) "
                "VALUES (?, 'Written while down', 0)",
                (groceries_id,),
            )
    demo.start()
    for page in (ann, ben):
        # The page's reconnect backoff is capped at 5 s; allow a few attempts on a slow machine.
        wait_ready(page, timeout=20_000)
        if not demo.hosted:
            page.wait_for_function(f"{ITEM_TEXTS}.includes('Written while down')", timeout=10_000)
    ben_add = ben.locator("section.list").nth(1).locator(".add-item input")
    ben_add.fill("After the restart")
    ben_add.press("Enter")
    timings["add after restart"] = within_a_second(
        ann, f"{texts_in('This week')}.includes('After the restart')"
    )

    assert all(ms <= ann.live_ms for ms in timings.values()), timings
    assert ann.errors == [] and ben.errors == [], (ann.errors, ben.errors)
