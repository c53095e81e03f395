"""Presence, whispers and channel auth of the Pusher adapter over the real pusher-js and soketi.

Two Node processes (``member.mjs``) join one presence channel through the rtbridge client; the
auth endpoint they call is played by a loopback HTTP server answering with the Python
``pusher`` SDK's standard signatures (what ``PusherBackend.auth_response`` returns).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pusher
import pytest

from rtbridge.backends.pusher import PusherBackend
from tests.wire.servers import NODE_MODULES, PUSHER_APP, Soketi, node_or_skip

MEMBER = Path(__file__).resolve().parents[2] / "rtbridge/clients/js/test/harness/member.mjs"
CHANNEL = "presence-testapp.todoitem.7"


@pytest.fixture(scope="module")
def soketi() -> Iterator[Soketi]:
    """A soketi of this module's own, with client events (whispers) enabled."""
    node_or_skip("pusher-js")
    saved = os.environ.get("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES")
    os.environ["SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES"] = "true"
    server = Soketi()
    try:
        server.start()
    finally:
        if saved is None:
            os.environ.pop("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", None)
        else:
            os.environ["SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES"] = saved
    try:
        yield server
    finally:
        server.stop()


class AuthEndpoint:
    """A loopback stand-in for Django's auth endpoint answering like ``PusherBackend``.

    The user is named by the ``X-Test-User`` header; ``private-forbidden*`` channels are
    refused with rtbridge's JSON error. Every request is kept in ``requests``.
    """

    def __init__(self, soketi: Soketi) -> None:
        self.signer = pusher.Pusher(**soketi.options)
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = self.headers["X-Test-User"]
                endpoint.requests.append({"body": body, "csrf": self.headers["X-CSRFToken"]})
                status, answer = endpoint.answer(user, body["socket_id"], body["channel_name"])
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rtbridge/auth"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, user: str, socket_id: str, channel: str) -> tuple[int, dict[str, Any]]:
        if channel.startswith("private-forbidden"):
            error = {"code": "forbidden", "message": "The rule refused.", "channel": channel}
            return 403, {"error": error}
        if not channel.startswith(("private-", "presence-")):
            # The page signing in as its user (pusher-js signin()), as PusherBackend answers it.
            return 200, dict(self.signer.authenticate_user(socket_id, {"id": user}))
        member = {"user_id": user, "user_info": {"name": user}}
        custom = member if channel.startswith("presence-") else None
        return 200, dict(self.signer.authenticate(channel, socket_id, custom))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Member:
    """``member.mjs`` for one user: JSON lines in, commands out."""

    def __init__(self, node: str, config: dict[str, Any]) -> None:
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.process = subprocess.Popen(
            [node, str(MEMBER), json.dumps(config), CHANNEL, str(NODE_MODULES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            assert self.process.stderr is not None
            raise AssertionError(f"nothing from member.mjs: {self.process.stderr.read()}") from None

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def auth(soketi: Soketi) -> Iterator[AuthEndpoint]:
    endpoint = AuthEndpoint(soketi)
    try:
        yield endpoint
    finally:
        endpoint.close()


def test_pusher_presence_whispers_and_auth_through_the_real_sdk(
    soketi: Soketi, auth: AuthEndpoint
) -> None:
    node = node_or_skip("pusher-js")
    base = PusherBackend(**soketi.options).client_config()

    def config(user: str) -> dict[str, Any]:
        return {
            **base,
            "authEndpoint": auth.url,
            "csrfToken": "csrf-" + user,
            "headers": {"X-Test-User": user},
        }

    ann = Member(node, config("ann"))
    bob: Member | None = None
    try:
        assert ann.next() == {"here": [{"id": "ann", "info": {"name": "ann"}}]}
        hello = ann.next()
        assert hello.get("ready"), hello
        # The page first signs in as its Django user (Pusher user authentication, so that
        # revoke() can terminate its connections) and authorizes the presence channel, in either order.
        channels = [request["body"]["channel_name"] for request in auth.requests]
        assert sorted(channels) == sorted(["rtbridge-user", CHANNEL]), channels
        assert auth.requests[channels.index(CHANNEL)] == {
            "body": {"socket_id": hello["socketId"], "channel_name": CHANNEL},
            "csrf": "csrf-ann",
        }

        bob = Member(node, config("bob"))
        here = bob.next()
        assert sorted(m["id"] for m in here["here"]) == ["ann", "bob"]
        assert bob.next().get("ready")
        assert ann.next() == {"joining": {"id": "bob", "info": {"name": "bob"}}}

        bob.send(cmd="whisper", event="typing", data={"field": "text"})
        assert bob.next() == {"whispered": True}
        heard = ann.next()
        assert heard["whisper"] == {"event": "typing", "data": {"field": "text"}, "user_id": "bob"}

        bob.send(cmd="private", channel="private-forbidden.1")
        lines = sorted([bob.next(), bob.next()], key=lambda line: "reported" in line)
        refused, reported = lines[0], lines[1]["reported"]
        assert (refused["code"], refused["status"]) == ("forbidden", 403), lines
        assert reported == refused, "the channel's ready and onError get the endpoint's error"

        bob.send(cmd="leave")
        assert bob.next() == {"left": True}
        assert ann.next() == {"leaving": {"id": "bob", "info": {"name": "bob"}}}
        assert PUSHER_APP["key"] == base["key"]
    finally:
        ann.close()
        if bob is not None:
            bob.close()
