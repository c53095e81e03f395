"""The deployment recipe: two nodes behind a real nginx running docs/nginx/rtbridge.conf.

Chromium opens a page through nginx (over [::1], so the client's address differs from the
proxy's 127.0.0.1), the nodes log the real client address, and a rolling restart of both
nodes keeps the page live.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtbridge.backends.redis import RedisBackend
from rtbridge.messages import Message
from tests.services import RedisServer, chromium, free_port, missing_service, wait_for_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "docs" / "nginx" / "rtbridge.conf"
#: The ports written in the recipe, replaced by free ones (the only change to the file).
RECIPE_PORTS = {"nginx": 8080, "node1": 8001, "node2": 8002}


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        missing_service("nginx not found (apt-get install nginx, or `make system-deps` as root)")
    return found  # type: ignore[return-value]


def recipe_with_ports(ports: dict[str, int]) -> str:
    text = RECIPE.read_text()
    for name, written in RECIPE_PORTS.items():
        pattern = rf"(?<=:){written}\b"
        assert re.search(pattern, text), f"{RECIPE} no longer has port {written}"
        text = re.sub(pattern, str(ports[name]), text)
    return text


class Nginx:
    """nginx in the foreground with a prefix directory of its own."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="rtbridge-nginx-"))
        (self.directory / "rtbridge.conf").write_text(recipe_with_ports(ports))
        self.error_log = self.directory / "error.log"
        temp = {
            name: self.directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")
        }
        (self.directory / "nginx.conf").write_text(
            "\n".join(
                [
                    "daemon off;",
                    "worker_processes 1;",
                    f"pid {self.directory / 'nginx.pid'};",
                    f"error_log {self.error_log} info;",
                    "events { worker_connections 256; }",
                    "http {",
                    f"    access_log {self.directory / 'access.log'};",
                    f"    client_body_temp_path {temp['body']};",
                    f"    proxy_temp_path {temp['proxy']};",
                    f"    fastcgi_temp_path {temp['fastcgi']};",
                    f"    uwsgi_temp_path {temp['uwsgi']};",
                    f"    scgi_temp_path {temp['scgi']};",
                    f"    include {self.directory / 'rtbridge.conf'};",
                    "}",
                ]
            )
        )
        binary = nginx_binary()
        self.process = subprocess.Popen(
            [binary, "-p", str(self.directory), "-e", str(self.error_log), "-c", "nginx.conf"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(ports["nginx"])
        except TimeoutError:
            self.stop()
            raise AssertionError(f"nginx did not start:\n{self.error_log.read_text()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


class Node:
    """``rtbridge serve --with-django`` on a fixed port, with its JSON log in a file."""

    def __init__(self, port: int, redis_url: str, log: Path) -> None:
        self.port = port
        self.log = log
        env = {**os.environ, "RTBRIDGE_DEPLOY_REDIS": redis_url}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rtbridge",
                    "serve",
                    "--settings",
                    "tests.deploy.settings",
                    "--with-django",
                    "--port",
                    str(port),
                    "-v",
                    "3",
                    "--log-format",
                    "json",
                ],
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(port, timeout=20)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")
        ]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def deployment(fresh_redis: RedisServer) -> Iterator[dict[str, Any]]:
    ports = {name: free_port() for name in RECIPE_PORTS}
    logs = Path(tempfile.mkdtemp(prefix="rtbridge-nodes-"))
    nodes: dict[str, Node] = {}
    nginx = None
    try:
        for name in ("node1", "node2"):
            nodes[name] = Node(ports[name], fresh_redis.url, logs / f"{name}.log")
            wait_until(nodes[name].ready, 20, f"{name} /readyz")
        nginx = Nginx(ports)
        yield {"ports": ports, "nodes": nodes, "nginx": nginx, "redis": fresh_redis, "logs": logs}
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes.values():
            node.stop()
        shutil.rmtree(logs, ignore_errors=True)


def test_two_nodes_behind_nginx_survive_a_rolling_restart(deployment: dict[str, Any]) -> None:
    ports, nodes = deployment["ports"], deployment["nodes"]
    backend = RedisBackend(url=deployment["redis"].url)
    published = iter(range(1, 10_000))

    def page_gets_new_messages(page: Any, timeout: float = 20) -> None:
        # Publish until one arrives: a message sent while the page reconnects may be missed
        # (continuity is another feature), but a live page gets the next ones.
        deadline = time.monotonic() + timeout
        while True:
            number = next(published)
            backend.publish(Message("deploy", "tick", {"n": number}))
            try:
                page.wait_for_function(f"window.received.includes({number})", timeout=1000)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise

    with chromium() as browser:
        page = browser.new_page()
        response = page.goto(f"http://[::1]:{ports['nginx']}/live/")
        assert response is not None and response.status == 200, page.content()
        page.wait_for_function("document.getElementById('state').textContent === 'connected'")
        page_gets_new_messages(page)
        # The node the page reached logged the browser's address, not nginx's.
        opened = [
            event
            for node in nodes.values()
            for event in node.events()
            if event["event"] == "socket.opened"
        ]
        assert [event["peer"] for event in opened] == ["::1"], opened
        # Rolling restart: one node at a time goes (SIGTERM drains it: 1001, the page
        # reconnects through nginx to the other), comes back, and is ready before the next.
        for name in ("node1", "node2"):
            node = nodes[name]
            assert node.stop() == 0
            page_gets_new_messages(page)
            # nginx OSS: the stopped node refuses the connection and nginx passes the
            # request to the other node (proxy_next_upstream error); max_fails=0, so the
            # node is used again as soon as it is back.
            fresh = browser.new_page()
            response = fresh.goto(f"http://[::1]:{ports['nginx']}/live/")
            assert response is not None and response.status == 200
            fresh.wait_for_function("document.getElementById('state').textContent === 'connected'")
            fresh.close()
            nodes[name] = Node(node.port, deployment["redis"].url, node.log)
            wait_until(nodes[name].ready, 20, f"{name} /readyz after its restart")
            page_gets_new_messages(page)
        assert page.evaluate("document.getElementById('state').textContent") == "connected"
        page.close()
    errors = deployment["nginx"].error_log.read_text()
    assert "Connection refused" in errors and "while connecting to upstream" in errors
    # The probes stay on the nodes' own ports: nginx refuses them from outside.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{ports['nginx']}/metrics", timeout=5)
    assert refused.value.code == 403
