"""A Tornado server on 127.0.0.1 run in its own thread, with request records and fault injection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import tornado.httpserver
import tornado.web

from tests.services import free_port


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status`` (or hang ``delay`` seconds)."""

    status: int | None = None
    delay: float = 0.0
    times: int = 1
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    path_prefix: str = "/"
    body: str = '{"error": "injected fault"}'
    #: Matching requests to let through before the fault starts.
    after: int = 0
    #: A ``time.monotonic()`` deadline: match every request until then (``times`` ignored).
    until: float | None = None

    @classmethod
    def for_seconds(cls, seconds: float, **options: Any) -> Fault:
        """Return a fault that answers every matching request for the next ``seconds``."""
        return cls(until=time.monotonic() + seconds, **options)


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    body: bytes
    status: int = 0


@dataclass
class LoopbackServer:
    """Run ``make_app()`` on a free port in a background thread until :meth:`stop`."""

    port: int = field(default_factory=free_port)
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: ``ssl.SSLContext`` to serve HTTPS (e.g. with a test CA's certificate), else HTTP.
    ssl_context: Any = None

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def make_app(self) -> tornado.web.Application:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            try:
                server = tornado.httpserver.HTTPServer(
                    self.make_app(), ssl_options=self.ssl_context
                )
                server.listen(self.port, address="127.0.0.1")
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            await self._stopped.wait()
            server.stop()
            await self.on_stop()
            await asyncio.wait_for(server.close_all_connections(), 5)

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]

    async def on_stop(self) -> None:
        """Release pending requests (long polls, sockets) so the server can close."""

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
        self._thread = None

    def call(self, function: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run a coroutine on the server's loop from a test thread and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(function(), self._loop).result(10)

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in list(self.faults):
                if method in fault.methods and path.startswith(fault.path_prefix):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    if fault.until is not None:
                        if time.monotonic() < fault.until:
                            return fault
                        self.faults.remove(fault)
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def matching(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]


class FakeHandler(tornado.web.RequestHandler):
    """Records each request and applies injected faults before the real handler runs."""

    server: LoopbackServer

    def initialize(self, server: LoopbackServer) -> None:
        self.server = server

    async def prepare(self) -> None:
        request = self.request
        record = Recorded(request.method or "", request.path, request.query, request.body)
        self.record = record
        self.server.requests.append(record)
        fault = self.server.take_fault(record.method, record.path)
        if fault is None:
            return
        if fault.delay:
            # Hang, but notice when the client gives up, so no handler outlives its test.
            deadline = time.monotonic() + fault.delay
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                stream = getattr(request.connection, "stream", None)
                if stream is not None and stream.closed():
                    raise tornado.web.Finish()
        if fault.status is not None:
            self.set_status(fault.status)
            self.set_header("Content-Type", "application/json")
            # Vendors answer errors with CORS headers too, so a browser SDK sees the status.
            self.set_header("Access-Control-Allow-Origin", "*")
            self.finish(fault.body)

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Any:
        # Record before the answer leaves, so a test that got the answer sees the status.
        if not self.record.status:
            self.record.status = self.get_status()
        return super().finish(chunk)

    def check_xsrf_cookie(self) -> None:
        pass
