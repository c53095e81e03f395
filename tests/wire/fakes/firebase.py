"""A loopback Firebase Realtime Database: the REST subset of firebase-admin, the JS SDK's WebSocket.

REST: ``GET/PUT/PATCH/POST/DELETE /<path>.json?ns=…`` with multi-path PATCH, ``shallow``,
``orderBy``/``limitToFirst``/``limitToLast``/``startAt``/``endAt`` and the ``{".sv":
"timestamp"}`` server value. WebSocket (``/.ws?v=5&ns=…``, what ``connectDatabaseEmulator``
speaks): the handshake, listen/unlisten with queries (``orderByKey``/``orderByChild``, start,
end, limit), put, merge, auth and stats; every listener gets the whole (query-filtered) value at
its path again after each write below or above it. ``onDisconnect`` operations (put, merge,
cancel) run when the socket closes.

Rules enforced, as the real database does them (Firebase docs, "Realtime Database Limits" and
"Understand Firebase Realtime Database Security Rules"):

* Data tree limits on every write (REST and socket): keys at most 768 bytes (UTF-8) without
  ``. $ # [ ] /`` or control characters, at most 32 levels from the root, each string at most
  10 MB (UTF-8); a write breaking one is refused **whole** (a multi-path PATCH with one bad
  path writes nothing): REST 400 ``{"error": ...}``, socket ``{"s": "invalid_data"}``.
* Security rules (``rules``, a ``database.rules.json`` dict): socket reads and writes are
  checked (``tests/wire/fakes/rules.py``) and refused with ``permission_denied``; a new
  ``auth`` on a socket (a sign-in or an ID-token refresh) ends the listens it may no longer
  read. REST requests are the Admin SDK's and bypass rules, as in Firebase.
* Auth: the socket's ``auth`` takes an ID token from the Firebase Auth emulator (unsigned,
  ``alg: none``; the emulator runs from ``firebase-tools``, see ``tests/wire/servers.py``), or
  ``owner`` (the Admin SDK's emulator credential); its claims become ``auth.token``. An
  expired ID token (``exp`` in the past) is refused with ``expired_token``.

Known divergences: no write-rate or concurrent-connection limits, no ``.indexOn`` warnings,
no transactions or priorities; the exact error texts of the limits are the fake's own; rules
are re-evaluated for live listens only when the socket authenticates again (the real database
also re-evaluates when the data a rule reads changes: see docs/backends.md).

Faults: :meth:`FakeFirebase.drop_sockets` closes every client socket (as a lost network does)
and, with ``refuse_for``, closes the SDK's reconnects right after the hello for that long (as
a database that is not ready); injected ``Fault``s whose ``path_prefix`` is ``/.ws`` do the
same. Divergence: the real database never closes that early on purpose, and the SDK's long-
polling fallback (``/.lp``) is not served.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Any

import tornado.web
import tornado.websocket

from .base import FakeHandler, Fault, LoopbackServer
from .rules import can_read, can_write

_MIN = object()
_MAX = object()


def _split(path: str) -> list[str]:
    return [part for part in path.strip("/").split("/") if part]


def _resolve_server_values(value: Any, now: int) -> Any:
    if isinstance(value, dict):
        if value.get(".sv") == "timestamp" and len(value) == 1:
            return now
        return {k: _resolve_server_values(v, now) for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): _resolve_server_values(v, now) for i, v in enumerate(value)}
    return value


def _prune(value: Any) -> Any:
    """Drop nulls and empty objects, as the database does."""
    if isinstance(value, dict):
        kept = {k: _prune(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    return value


def _export(value: Any) -> Any:
    """Turn objects with (mostly) integer keys back into arrays, as the database does."""
    if not isinstance(value, dict):
        return value
    out = {k: _export(v) for k, v in value.items()}
    if out and all(k.isdigit() for k in out):
        largest = max(int(k) for k in out)
        if largest < 2 * len(out):
            return [out.get(str(i)) for i in range(largest + 1)]
    return out


def _type_rank(value: Any) -> int:
    if value is None:
        return 0
    if value is False:
        return 1
    if value is True:
        return 2
    if isinstance(value, (int, float)):
        return 3
    if isinstance(value, str):
        return 4
    return 5


def _compare_values(a: Any, b: Any) -> int:
    if a is _MIN or b is _MAX:
        return 0 if a is b else -1
    if a is _MAX or b is _MIN:
        return 0 if a is b else 1
    rank_a, rank_b = _type_rank(a), _type_rank(b)
    if rank_a != rank_b:
        return -1 if rank_a < rank_b else 1
    if rank_a in (3, 4):
        return (a > b) - (a < b)
    return 0


def _compare_keys(a: Any, b: Any) -> int:
    if a is _MIN or b is _MAX:
        return 0 if a is b else -1
    if a is _MAX or b is _MIN:
        return 0 if a is b else 1
    a_int, b_int = _int_key(a), _int_key(b)
    if a_int is not None and b_int is not None:
        return (a_int > b_int) - (a_int < b_int)
    if a_int is not None:
        return -1
    if b_int is not None:
        return 1
    return (a > b) - (a < b)


def _int_key(key: str) -> int | None:
    if key.lstrip("-").isdigit() and len(key) < 11:
        return int(key)
    return None


@dataclass
class Query:
    """A query in wire form: index (``.key``, ``.value`` or a child path), bounds, limit."""

    index: str = ".priority"
    start: Any = None  # (value, name, inclusive) or None
    end: Any = None
    limit: int | None = None
    from_left: bool = True

    @classmethod
    def from_wire(cls, q: dict[str, Any]) -> Query:
        query = cls(index=q.get("i", ".priority"))
        if "sp" in q:
            query.start = (q["sp"], q.get("sn", _MIN), q.get("sin", True))
        if "ep" in q:
            query.end = (q["ep"], q.get("en", _MAX), q.get("ein", True))
        if "l" in q:
            query.limit = int(q["l"])
            query.from_left = q.get("vf", "l") == "l"
        return query

    @classmethod
    def from_rest(cls, args: dict[str, str]) -> Query | None:
        if "orderBy" not in args:
            return None
        order = json.loads(args["orderBy"])
        query = cls(index={"$key": ".key", "$value": ".value"}.get(order, order))
        if "startAt" in args:
            query.start = (json.loads(args["startAt"]), _MIN, True)
        if "endAt" in args:
            query.end = (json.loads(args["endAt"]), _MAX, True)
        if "equalTo" in args:
            value = json.loads(args["equalTo"])
            query.start, query.end = (value, _MIN, True), (value, _MAX, True)
        if "limitToFirst" in args:
            query.limit, query.from_left = int(args["limitToFirst"]), True
        if "limitToLast" in args:
            query.limit, query.from_left = int(args["limitToLast"]), False
        return query

    def _sort_value(self, key: str, child: Any) -> Any:
        if self.index == ".key":
            return key
        if self.index == ".value":
            return child
        if self.index == ".priority":
            return None
        node = child
        for part in _split(self.index):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def _compare(self, a: tuple[Any, Any], b: tuple[Any, Any]) -> int:
        if self.index == ".key":
            return _compare_keys(a[0], b[0])
        return _compare_values(a[0], b[0]) or _compare_keys(a[1], b[1])

    def apply(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        items = [((self._sort_value(k, v), k), k, v) for k, v in value.items()]

        def order(x: Any, y: Any) -> int:
            return self._compare(x[0], y[0])

        items.sort(key=cmp_to_key(order))
        if self.start is not None:
            bound = (self.start[0], self.start[1] if self.index != ".key" else self.start[0])
            inclusive = self.start[2]
            items = [
                item
                for item in items
                if (cmp := self._compare(item[0], bound)) > 0 or (cmp == 0 and inclusive)
            ]
        if self.end is not None:
            bound = (self.end[0], self.end[1] if self.index != ".key" else self.end[0])
            inclusive = self.end[2]
            items = [
                item
                for item in items
                if (cmp := self._compare(item[0], bound)) < 0 or (cmp == 0 and inclusive)
            ]
        if self.limit is not None:
            items = items[: self.limit] if self.from_left else items[-self.limit :]
        return {k: v for _, k, v in items} or None


@dataclass
class Listen:
    socket: DatabaseSocket
    path: str
    query: Query | None
    tag: int | None
    #: The query as the client sent it (``q``), to name the listen when revoking it.
    wire_query: Any = None


@dataclass
class FakeFirebase(LoopbackServer):
    namespace: str = "demo-rtbridge-default-rtdb"
    trees: dict[str, Any] = field(default_factory=dict)
    listens: list[Listen] = field(default_factory=list)
    #: Security rules for client sockets (None: everything allowed, like the emulator's default).
    rules: dict[str, Any] | None = None
    #: Socket authentications with an ID token, newest last: (uid, rtbridge's claims).
    sign_ins: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    project_id: str = "demo-rtbridge"

    def __post_init__(self) -> None:
        super().__post_init__()
        #: The client sockets open now.
        self.sockets: set[DatabaseSocket] = set()

    def reset(self) -> None:
        """Forget faults and rules set by a test."""
        self.faults.clear()
        self.rules = None

    def drop_sockets(self, refuse_for: float = 0.0) -> int:
        """Close every client socket; refuse new ones for ``refuse_for`` seconds. Return how many."""
        if refuse_for:
            self.inject(
                Fault.for_seconds(refuse_for, status=503, methods=("GET",), path_prefix="/.ws")
            )

        async def close() -> int:
            sockets = list(self.sockets)
            for socket in sockets:
                socket.close(1001, "dropped by the test")
            return len(sockets)

        return int(self.call(close))

    def make_app(self) -> tornado.web.Application:
        options = {"server": self}
        return tornado.web.Application(
            [
                (r"/\.ws", DatabaseSocket, options),
                (r"/(.*)\.json", RestHandler, options),
            ]
        )

    @property
    def database_url(self) -> str:
        return f"https://{self.namespace}.firebaseio.com"

    # The tree --------------------------------------------------------------------------

    def get(self, path: str, ns: str | None = None) -> Any:
        node = self.trees.get(ns or self.namespace)
        for part in _split(path):
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return copy.deepcopy(node)

    def set(self, path: str, value: Any, ns: str | None = None, *, notify: bool = True) -> None:
        ns = ns or self.namespace
        parts = _split(path)
        value = _prune(_resolve_server_values(value, int(time.time() * 1000)))
        if not parts:
            self.trees[ns] = value
        else:
            root = self.trees.get(ns)
            root = root if isinstance(root, dict) else {}
            trail = [root]
            for part in parts[:-1]:
                child = trail[-1].get(part)
                if not isinstance(child, dict):
                    child = trail[-1][part] = {}
                trail.append(child)
            if value is None:
                trail[-1].pop(parts[-1], None)
            else:
                trail[-1][parts[-1]] = value
            # Only the written path can have become empty: drop empty parents, as the database.
            for depth in range(len(trail) - 1, 0, -1):
                if trail[depth]:
                    break
                trail[depth - 1].pop(parts[depth - 1], None)
            self.trees[ns] = root or None
        if notify:
            self.changed(path, ns)

    def update(self, path: str, values: dict[str, Any], ns: str | None = None) -> None:
        for relative, value in values.items():
            self.set(f"{path.rstrip('/')}/{relative}", value, ns, notify=False)
        self.changed(path, ns or self.namespace)

    def changed(self, path: str, ns: str) -> None:
        for listen in list(self.listens):
            if listen.socket.ns != ns:
                continue
            a, b = _split(listen.path), _split(path)
            if a[: len(b)] == b or b[: len(a)] == a:
                listen.socket.send_data(listen)


class RestHandler(FakeHandler):
    server: FakeFirebase

    def _reply(self, value: Any, status: int = 200) -> None:
        if self.get_query_argument("print", "") == "silent":
            self.set_status(204)
            self.finish()
            return
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(_export(value)))

    def _ns(self) -> str:
        return self.get_query_argument("ns", self.server.namespace)

    def _body(self) -> Any:
        return json.loads(self.request.body or b"null")

    def get(self, path: str) -> None:
        value = self.server.get(path, self._ns())
        if self.get_query_argument("shallow", "") == "true" and isinstance(value, dict):
            value = {key: True for key in value}
        args = {key: self.get_query_argument(key) for key in self.request.query_arguments}
        query = Query.from_rest(args)
        if query is not None:
            value = query.apply(value)
        self._reply(value)

    def _refused(self, path: str, values: dict[str, Any]) -> bool:
        """Answer 400 and return True if a write breaks a data tree limit (nothing written)."""
        for relative, value in values.items():
            problem = tree_problem(f"{path}/{relative}", value)
            if problem is not None:
                self.set_status(400)
                self.finish({"error": problem})
                return True
        return False

    def put(self, path: str) -> None:
        value = self._body()
        if self._refused(path, {"": value}):
            return
        self.server.set(path, value, self._ns())
        self._reply(self.server.get(path, self._ns()))

    def patch(self, path: str) -> None:
        values = self._body()
        if not isinstance(values, dict):
            self.set_status(400)
            self.finish({"error": "Invalid data; couldn't parse JSON object."})
            return
        if self._refused(path, values):
            return
        self.server.update(path, values, self._ns())
        self._reply(values)

    def post(self, path: str) -> None:
        from rtbridge.backends.firebase import PushIdGenerator

        key = PushIdGenerator()()
        if self._refused(f"{path}/{key}", {"": self._body()}):
            return
        self.server.set(f"{path}/{key}", self._body(), self._ns())
        self._reply({"name": key})

    def delete(self, path: str) -> None:
        self.server.set(path, None, self._ns())
        self._reply(None)


class DatabaseSocket(tornado.websocket.WebSocketHandler):
    """The Realtime Database wire protocol v5, as much as the JS SDK needs for listeners."""

    server: FakeFirebase

    def initialize(self, server: FakeFirebase) -> None:
        self.server = server
        self.ns = server.namespace
        self._parts: list[str] = []
        self._expected = 0
        self.auth: dict[str, Any] | None = None
        self.on_disconnect: list[tuple[str, str, Any]] = []

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.server.sockets.add(self)
        self.ns = self.get_query_argument("ns", self.server.namespace)
        hello = {"ts": int(time.time() * 1000), "v": "5", "h": self.server.host, "s": "fake"}
        self._send({"t": "c", "d": {"t": "h", "d": hello}})
        # Only faults aimed at the socket: REST faults (path "/") must not be used up here.
        aimed = any(f.path_prefix.startswith("/.ws") for f in self.server.faults)
        if aimed and self.server.take_fault("GET", "/.ws") is not None:
            # Hello, then gone: refusing the upgrade instead would make the SDK remember a
            # "websocket failure" and fall back to long polling, which the fake lacks.
            self.close(1011, "unavailable (injected fault)")

    def on_message(self, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message
        if self._expected == 0 and text.isdigit():
            # A frame count announces a message split over several frames ("0" = keepalive).
            self._expected = int(text)
            self._parts = []
            return
        if self._expected:
            self._parts.append(text)
            if len(self._parts) < self._expected:
                return
            text, self._expected = "".join(self._parts), 0
        envelope = json.loads(text)
        if envelope.get("t") != "d":
            return
        request = envelope["d"]
        self._handle(request.get("r"), request.get("a"), request.get("b") or {})

    def _revoke_unreadable(self) -> None:
        """End this socket's listens the new auth may not read, as the database does."""
        rules = self.server.rules
        if rules is None or self.auth == {"admin": True}:
            return
        for listen in [x for x in self.server.listens if x.socket is self]:
            root = self.server.get("", self.ns)
            if listen.path.startswith("/.info") or can_read(
                rules, _split(listen.path), self.auth, root
            ):
                continue
            self.server.listens.remove(listen)
            body: dict[str, Any] = {"p": listen.path}
            if listen.wire_query is not None:
                body["q"] = [listen.wire_query]
            self._send({"t": "d", "d": {"a": "c", "b": body}})

    def _refuse(self, number: int | None) -> None:
        if number is not None:
            self._send({"t": "d", "d": {"r": number, "b": {"s": "permission_denied", "d": ""}}})

    def _may_write(self, path: str, value: Any, merge: bool = False) -> bool:
        rules = self.server.rules
        if rules is None or self.auth == {"admin": True}:
            return True
        if merge and isinstance(value, dict):
            return all(
                self._may_write(f"{path.rstrip('/')}/{key}", child) for key, child in value.items()
            )
        old = self.server.get(path, self.ns)
        new = _prune(_resolve_server_values(value, int(time.time() * 1000)))
        return can_write(rules, _split(path), self.auth, old, new, self.server.get("", self.ns))

    def _handle(self, number: int | None, action: str, body: dict[str, Any]) -> None:
        rules = self.server.rules
        if action in ("auth", "gauth"):
            self.auth = _decode_credential(body.get("cred"))
            if self.auth is None:
                self._send(
                    {"t": "d", "d": {"r": number, "b": {"s": "invalid_token", "d": "bad token"}}}
                )
                return
            expires = self.auth.get("token", {}).get("exp")
            if isinstance(expires, (int, float)) and expires < time.time():
                self.auth = None
                self._send(
                    {"t": "d", "d": {"r": number, "b": {"s": "expired_token", "d": "expired"}}}
                )
                self._revoke_unreadable()
                return
            if "uid" in self.auth:
                token = self.auth["token"]
                claims = {key: token[key] for key in ("rtb", "rtm") if key in token}
                self.server.sign_ins.append((self.auth["uid"], claims))
            reply = {"auth": self.auth, "expires": self.auth.get("token", {}).get("exp")}
            self._send({"t": "d", "d": {"r": number, "b": {"s": "ok", "d": reply}}})
            self._revoke_unreadable()
            return
        if action == "unauth":
            self.auth = None
        admin = self.auth == {"admin": True}
        if action in ("p", "o", "m", "om"):
            values = body.get("d") if action in ("m", "om") else {"": body.get("d")}
            for relative, value in (values or {}).items():
                if tree_problem(f"{body['p']}/{relative}", value) is not None:
                    self._send({"t": "d", "d": {"r": number, "b": {"s": "invalid_data", "d": ""}}})
                    return
        if action == "q" and rules is not None and not admin:
            root = self.server.get("", self.ns)
            readable = can_read(rules, _split(body["p"]), self.auth, root)
            if not readable:
                self._refuse(number)
                return
        if action in ("p", "o") and not self._may_write(body["p"], body.get("d")):
            self._refuse(number)
            return
        if action in ("m", "om") and not self._may_write(body["p"], body.get("d"), merge=True):
            self._refuse(number)
            return
        if action in ("o", "om"):
            self.on_disconnect.append((action, body["p"], body.get("d")))
        elif action == "oc":
            prefix = _split(body["p"])
            self.on_disconnect = [
                entry for entry in self.on_disconnect if _split(entry[1])[: len(prefix)] != prefix
            ]
        if action == "q":
            listen = Listen(
                self,
                body["p"],
                Query.from_wire(body["q"]) if body.get("q") else None,
                body.get("t"),
                body.get("q") or None,
            )
            self.server.listens.append(listen)
            self.send_data(listen)
        elif action == "n":
            self.server.listens[:] = [
                x
                for x in self.server.listens
                if not (x.socket is self and x.path == body["p"] and x.tag == body.get("t"))
            ]
        elif action == "p":
            self.server.set(body["p"], body.get("d"), self.ns)
        elif action == "m":
            self.server.update(body["p"], body.get("d") or {}, self.ns)
        if number is not None:
            self._send(
                {"t": "d", "d": {"r": number, "b": {"s": "ok", "d": {} if action == "q" else ""}}}
            )

    def send_data(self, listen: Listen) -> None:
        value = self.server.get(listen.path, self.ns)
        if listen.query is not None:
            value = listen.query.apply(value)
        body: dict[str, Any] = {"p": listen.path.strip("/"), "d": _export(value)}
        if listen.tag is not None:
            body["t"] = listen.tag
        self._send({"t": "d", "d": {"a": "d", "b": body}})

    def _send(self, frame: dict[str, Any]) -> None:
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            sent = self.write_message(json.dumps(frame))
            # A page killed mid-write is expected here; do not log its closed stream.
            sent.add_done_callback(lambda done: done.exception())

    def on_close(self) -> None:
        self.server.sockets.discard(self)
        self.server.listens[:] = [x for x in self.server.listens if x.socket is not self]
        # The server runs what the client registered, in order, once it is gone.
        for action, path, value in self.on_disconnect:
            if action == "o":
                self.server.set(path, value, self.ns)
            else:
                self.server.update(path, value or {}, self.ns)
        self.on_disconnect = []


MAX_KEY_BYTES, MAX_DEPTH, MAX_VALUE_BYTES = 768, 32, 10 * 1024 * 1024
_SPECIAL_KEYS = frozenset({".sv", ".priority", ".value"})
_BAD_KEY_CHARACTERS = set(".$#[]/") | {chr(c) for c in range(32)} | {chr(127)}


def tree_problem(path: str, value: Any) -> str | None:
    """Return why the database refuses writing ``value`` at ``path``, or None."""
    stack: list[tuple[Any, int]] = [(value, len(_split(path)))]
    for part in _split(path):
        if len(part.encode()) > MAX_KEY_BYTES or _BAD_KEY_CHARACTERS & set(part):
            return f"Invalid key {part[:40]!r} in path"
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if key in _SPECIAL_KEYS:
                    continue  # a server value ({".sv": "timestamp"}) or a priority
                if len(key.encode()) > MAX_KEY_BYTES or _BAD_KEY_CHARACTERS & set(key):
                    return f"Invalid key {key[:40]!r}"
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str) and len(node.encode()) > MAX_VALUE_BYTES:
            return "Data too large: a string is over 10 MB"
        if depth > MAX_DEPTH:
            return f"Data too deep: more than {MAX_DEPTH} levels"
    return None


def _jwt_payload(token: str) -> dict[str, Any] | None:
    try:
        part = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _decode_credential(credential: Any) -> dict[str, Any] | None:
    """Return the socket's ``auth`` for an ID token (or ``owner``, the Admin SDK's)."""
    if credential == "owner":
        return {"admin": True}
    payload = _jwt_payload(credential) if isinstance(credential, str) else None
    if payload is None or "user_id" not in payload:
        return None
    return {"uid": payload["user_id"], "provider": "custom", "token": payload}
