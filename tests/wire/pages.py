"""A Node page running the rtbridge JS client over a vendor SDK, its auth calls answered by Django.

``Page`` starts ``member_hosted.mjs``; when the page POSTs to the auth endpoint, the test thread
answers through Django's test client (logged in as the page's user), so the vendor's own server
then judges the answer Django gave: the endpoint, the backend's ``auth_response`` and the vendor
SDK run end to end.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from django.test import Client

from tests.wire.servers import WIRE_DIR, node_or_skip

Line = dict[str, Any]


def logged_in(username: str) -> Client:
    """Return a Django test client logged in as a new user ``username``."""
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_user(username))
    return client


#: Answer an auth request instead of Django: (request body) → (status, body).
Forger = Callable[[dict[str, Any]], tuple[int, Any]]


class Page:
    """One browser page (a Node process) and the Django session it talks to."""

    def __init__(
        self,
        config: dict[str, Any],
        client: Client,
        *,
        forge: Forger | None = None,
    ) -> None:
        package = {"pusher": "pusher-js", "pubnub": "pubnub"}.get(config["backend"], "firebase")
        node = node_or_skip(package)
        self.client = client
        self.forge = forge
        self.lines: queue.Queue[Line] = queue.Queue()
        self.seen: list[Line] = []
        self.errors: list[str] = []
        self.auth_answers: list[tuple[int, Any]] = []
        #: Answers to the page's other calls to Django (the history endpoint), in order.
        self.other_answers: list[tuple[int, Any]] = []
        #: The bodies of the page's auth requests (``socket_id``, ``channel_name``), oldest first.
        self.auth_requests: list[dict[str, Any]] = []
        argument = {"config": config}
        self.process = subprocess.Popen(
            [node, str(WIRE_DIR / "member_hosted.mjs"), json.dumps(argument)],
            cwd=WIRE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line.rstrip())

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def _answer(self, request: dict[str, Any]) -> None:
        body = request["body"]
        path = urlparse(request["url"]).path
        # Only auth calls are forged and recorded as such; the client's other calls (the
        # history endpoint, which fills holes and resumes) always reach Django.
        is_auth = path.endswith("/auth")
        if is_auth:
            self.auth_requests.append(body)
        if is_auth and self.forge is not None:
            status, answer = self.forge(body)
        else:
            response = self.client.post(path, data=body, content_type="application/json")
            status, answer = response.status_code, response.json()
        (self.auth_answers if is_auth else self.other_answers).append((status, answer))
        self.send(id=request["id"], status=status, body=answer)

    def expect(self, key: str, timeout: float = 15.0, **match: Any) -> Line:
        """Return the next line with ``key`` (and ``match``'s values), answering auth calls."""
        for line in self.seen:
            if key in line and all(line.get(k) == v for k, v in match.items()):
                self.seen.remove(line)
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no {key!r} line {match} within {timeout}s; seen {self.seen[-8:]}; "
                    f"stderr {self.errors[-8:]}"
                )
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if "fetch" in line:
                self._answer(line["fetch"])
                continue
            if key in line and all(line.get(k) == v for k, v in match.items()):
                return line
            self.seen.append(line)

    def quiet(self, key: str, seconds: float, **match: Any) -> None:
        """Assert that no ``key`` line arrives for ``seconds`` (auth calls are still answered)."""
        try:
            line = self.expect(key, timeout=seconds, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {line}")

    def join(self, channel: str) -> Line:
        """Join a presence channel and return its ``here`` line (after ``ready``)."""
        self.send(cmd="join", channel=channel)
        self.expect("ready", channel=channel)
        return self.expect("here", channel=channel)

    def close(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
