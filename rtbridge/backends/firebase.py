"""``firebase``: publish by writing to the Firebase Realtime Database, off the request path."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

from ..channel_names import PRESENCE_PREFIX, PRIVATE_PREFIX, encode_for_firebase
from ..exceptions import InvalidChannelName, InvalidMessage, PayloadTooLarge, PublishError
from ..history import Position, Positions
from ..messages import Message
from ..tokens import Grant
from .base import import_sdk
from .dispatch import Call, DispatchingBackend
from .grants import GrantLedger

__all__ = ["FirebaseBackend", "PushIdGenerator", "database_rules", "member_key", "push_id_time"]

EMULATOR_ENV = "FIREBASE_DATABASE_EMULATOR_HOST"
AUTH_EMULATOR_ENV = "FIREBASE_AUTH_EMULATOR_HOST"
PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
#: Paths per multi-path update: keeps each request well under the database's write limits.
MAX_PATHS_PER_UPDATE = 500
# Characters the database refuses in keys; the first pattern is a cheap pre-filter on the JSON.
_MAYBE_BAD_KEY_RE = re.compile(r"[.$#\[\]/\x7f]|\\u00[01]")
_BAD_KEY_RE = re.compile(r"[.$#\[\]/\x00-\x1f\x7f]")
# A JSON string of 192+ characters before a colon may be a key over 768 bytes (4 per char).
_LONG_KEY_RE = re.compile(r'"(?:[^"\\]|\\.){192,}":')
_counter = itertools.count(1)
#: Firebase refuses custom tokens whose developer claims exceed 1000 bytes as JSON.
MAX_CLAIMS_BYTES = 1000
#: Seconds a Firebase custom token can be exchanged for a session (fixed by Firebase).
CUSTOM_TOKEN_TTL = 3600
#: The child of ``root`` holding presence entries (the JS client writes there).
PRESENCE_KEY = "presence"
#: The child of ``root`` holding, per user id, when ``revoke()`` last ran (server time, ms).
REVOKED_KEY = "revoked"
#: Realtime Database limits (Firebase docs, "Realtime Database Limits", Data tree): a key is
#: at most 768 bytes (UTF-8), a path at most 32 levels deep, one value at most 10 MB (UTF-8).
MAX_KEY_BYTES = 768
MAX_DEPTH = 32
MAX_VALUE_BYTES = 10 * 1024 * 1024
#: Bytes of data per multi-path update: a write from an SDK may be 16 MB (REST: 256 MB).
MAX_UPDATE_BYTES = 16 * 1024 * 1024
_ROOT_RE = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")
_MEMBER_KEY_RE = re.compile(r"[.$#\[\]/%]")
# The SDK sessions whose own retries are off (see _disable_sdk_retries), and whether it warned.
_sessions_without_retries: weakref.WeakSet[Any] = weakref.WeakSet()
_warned_sdk_changed = False
logger = logging.getLogger("rtbridge.backends")


def member_key(member_id: str) -> str:
    """Return a member id as a database key, as the JS client writes it (``%XX`` escapes)."""
    return _MEMBER_KEY_RE.sub(lambda m: f"%{ord(m.group()):X}", str(member_id))


def database_rules(root: str = "rtbridge") -> dict[str, Any]:
    """Return ``database.rules.json`` enforcing rtbridge's grants for messages under ``root``.

    Public channels are readable by anyone; ``private-``/``presence-`` channels only with the
    channel in the custom token's ``rtb`` claim; a presence entry
    ``<root>/presence/<channel>/<member>/<connection>`` is writable only by that member (the
    ``rtm`` claim); clients may add whispers (``client-`` events) to protected channels they
    hold, and write nothing else. A session that signed in before ``revoke()`` ran for its
    user (``<root>/revoked/<uid>``) holds no grant. The Django server's Admin SDK bypasses rules.
    """
    if not _ROOT_RE.fullmatch(root):
        raise ValueError(
            f"root={root!r} is not a valid database path; give letters, digits, _ and -, "
            "segments separated by / (e.g. 'rtbridge')."
        )
    protected = (
        f"($channel.beginsWith('{PRIVATE_PREFIX}') || $channel.beginsWith('{PRESENCE_PREFIX}'))"
    )
    revoked_at = f"root.child('{root}/{REVOKED_KEY}/' + auth.uid)"
    # A session signed in before revoke() ran loses its grants (Firebase docs, "Manage user
    # sessions": detect ID token revocation in Database Rules); auth_time is in seconds.
    not_revoked = f"(!{revoked_at}.exists() || auth.token.auth_time * 1000 > {revoked_at}.val())"
    granted = (
        "auth != null && auth.token.rtb != null && auth.token.rtb[$channel] === true && "
        + not_revoked
    )
    tree: dict[str, Any] = {
        PRESENCE_KEY: {
            "$channel": {
                ".read": granted,
                "$member": {
                    "$connection": {
                        ".write": (
                            f"{granted} && auth.token.rtm != null && "
                            "auth.token.rtm[$channel] === $member"
                        ),
                        ".validate": "newData.hasChildren(['id'])",
                    }
                },
            }
        },
        "$channel": {
            ".read": f"!{protected} || ({granted})",
            "$message": {
                ".write": (
                    f"{protected} && {granted} && !data.exists() && "
                    "newData.child('event').isString() && "
                    "newData.child('event').val().beginsWith('client-')"
                ),
            },
        },
    }
    for part in reversed(root.split("/")):
        tree = {part: tree}
    return {"rules": {".read": False, ".write": False, **tree}}


class PushIdGenerator:
    """Make Firebase push ids: 8 characters of millisecond time, then 12 random characters.

    Ids sort in creation order, also within one millisecond (the random part is incremented
    then) and when the clock steps back (the last time is reused), so clients reading from
    "now" by key get messages in publish order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._last_random = [0] * 12
        self._random = random.Random()

    def __call__(self) -> str:
        """Return the next push id."""
        with self._lock:
            now = int(time.time() * 1000)
            if now <= self._last_ms:
                now = self._last_ms
                digits = self._last_random
                index = 11
                while index >= 0 and digits[index] == 63:
                    digits[index] = 0
                    index -= 1
                if index < 0:  # 64**12 ids in one millisecond: borrow the next one
                    now += 1
                else:
                    digits[index] += 1
            else:
                self._last_random = [self._random.randrange(64) for _ in range(12)]
            self._last_ms = now
            stamp = []
            for _ in range(8):
                stamp.append(PUSH_CHARS[now % 64])
                now //= 64
            return "".join(reversed(stamp)) + "".join(PUSH_CHARS[d] for d in self._last_random)


def push_id_time(push_id: str) -> int | None:
    """Return the millisecond timestamp encoded in ``push_id``, or None if it is not one."""
    if len(push_id) != 20:
        return None
    value = 0
    for char in push_id[:8]:
        digit = PUSH_CHARS.find(char)
        if digit < 0:
            return None
        value = value * 64 + digit
    return value


class FirebaseBackend(DispatchingBackend):
    """Publish by writing each message to ``/<root>/<channel>/<push id>`` in the Realtime Database.

    The value is ``{"event", "data", "ts": server time, "exclude"}`` (plus ``"offset"`` and
    ``"epoch"`` with history on, see :func:`_envelope`); one batch is one multi-path update.
    Every ``prune_interval`` seconds the dispatcher thread deletes messages beyond ``keep_last``
    per channel and older than ``max_age`` seconds.
    """

    alias = "firebase"
    max_payload_bytes = None
    keeps_history = True
    required_options = ("database_url",)
    sdk = ("firebase_admin", "firebase")

    def __init__(
        self,
        *,
        database_url: str = "",
        credentials: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        root: str = "rtbridge",
        keep_last: int | None = 100,
        max_age: float | None = 3600.0,
        prune_interval: float = 60.0,
        app_name: str | None = None,
        timeout: float = 10.0,
        emulator_host: str | None = None,
        project_id: str | None = None,
        api_key: str | None = None,
        auth_emulator_host: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        parsed = urlparse(database_url) if isinstance(database_url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ImproperlyConfigured(
                f"FirebaseBackend option database_url={database_url!r} is not valid; give the "
                "Realtime Database URL, e.g. 'https://<project>-default-rtdb.firebaseio.com'."
            )
        if not isinstance(root, str) or not _ROOT_RE.fullmatch(root):
            raise ImproperlyConfigured(
                f"FirebaseBackend option root={root!r} is not valid; give a database path such "
                "as 'rtbridge' (letters, digits, _ and -, segments separated by /)."
            )
        if keep_last is not None and (
            not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1
        ):
            raise ImproperlyConfigured(
                f"FirebaseBackend option keep_last={keep_last!r} is not valid; give the number "
                "of messages to keep per channel (>= 1), or None for no limit."
            )
        for option, value in (("max_age", max_age), ("prune_interval", prune_interval)):
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise ImproperlyConfigured(
                    f"FirebaseBackend option {option}={value!r} is not valid; give seconds > 0."
                )
        if credentials is not None and not isinstance(credentials, (str, os.PathLike, Mapping)):
            raise ImproperlyConfigured(
                f"FirebaseBackend option credentials={type(credentials).__name__} is not valid; "
                "give the path of a service-account JSON file or its contents as a dict."
            )
        emulator_host = emulator_host or os.environ.get(EMULATOR_ENV) or None
        if emulator_host and "//" in emulator_host:
            raise ImproperlyConfigured(
                f"Firebase emulator host {emulator_host!r} is not valid; give host:port with no "
                "scheme, e.g. '127.0.0.1:9000'."
            )
        self.database_url = database_url
        self.credentials = credentials
        self.root = root
        self.keep_last = keep_last
        self.max_age = max_age
        self.prune_interval = prune_interval
        self.app_name = app_name or f"rtbridge-{os.getpid()}-{next(_counter)}"
        self.timeout = timeout
        self.emulator_host = emulator_host
        self.project_id = project_id
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ImproperlyConfigured(
                f"FirebaseBackend option api_key={api_key!r} is not valid; give the project's "
                "Web API key (Firebase console, Project settings, General)."
            )
        self.api_key = api_key
        self.auth_emulator_host = auth_emulator_host or os.environ.get(AUTH_EMULATOR_ENV) or None
        self.grants = GrantLedger(f"firebase:{database_url}:{root}", CUSTOM_TOKEN_TTL)
        self.push_id = PushIdGenerator()
        self._app: Any = None
        self._app_lock = threading.Lock()
        # Channels written since the last prune, and how many prunes until a full sweep.
        self._touched: set[str] = set()
        self._sweep_countdown = 0
        if keep_last is not None or max_age is not None:
            self.dispatcher.set_housekeeping(self.prune, prune_interval)

    @property
    def namespace(self) -> str:
        """Return the database name (first label of the URL's host, or its ``ns`` parameter)."""
        parsed = urlparse(self.database_url)
        for part in parsed.query.split("&"):
            if part.startswith("ns="):
                return part[3:]
        return parsed.netloc.split(".")[0]

    @property
    def app(self) -> Any:
        """Return this backend's own ``firebase_admin`` app, initialized on first use."""
        if self._app is None:
            with self._app_lock:
                if self._app is None:
                    self._app = self._initialize_app()
        return self._app

    def _initialize_app(self) -> Any:
        firebase_admin = import_sdk("firebase_admin", "firebase", backend=self.alias)
        url = self.database_url
        credential = None
        if self.emulator_host:
            # An http URL puts firebase-admin in emulator mode without reading the environment.
            url = f"http://{self.emulator_host}?ns={self.namespace}"
        elif self.credentials is not None:
            from firebase_admin import credentials

            source = self.credentials
            credential = credentials.Certificate(
                dict(source) if isinstance(source, Mapping) else os.fspath(source)
            )
        options: dict[str, Any] = {"databaseURL": url, "httpTimeout": self.timeout}
        project = self.project_id or _project_from_namespace(self.namespace)
        if project:
            # Custom tokens need a project; service-account credentials carry theirs.
            options["projectId"] = project
        return firebase_admin.initialize_app(credential, options, name=self.app_name)

    def reference(self, path: str = "") -> Any:
        """Return a ``firebase_admin.db.Reference`` under ``root`` (its SDK retries disabled)."""
        from firebase_admin import db

        ref = db.reference(f"/{self.root}/{path}".rstrip("/"), app=self.app)
        _disable_sdk_retries(ref)
        return ref

    def check_message(self, message: Message) -> None:
        """Refuse, in the caller, what the database would refuse, so it never sinks a batch.

        One bad value makes the database refuse the whole multi-path update it is part of (up
        to 500 writes, other channels' messages included), so everything it checks is checked
        here first: channel names rtbridge uses itself (``presence``, ``revoked``), keys (no
        ``. $ # [ ] /`` or control characters, at most 768 bytes), depth (at most 32 levels from
        the database root, ``<root>/<channel>/<push id>/data`` included) and value size (at most
        10 MB per string, and per message).
        """
        super().check_message(message)
        for name in message.channels:
            if encode_for_firebase(name) in (PRESENCE_KEY, REVOKED_KEY):
                raise InvalidChannelName(
                    f"Channel {name!r} is the name of rtbridge's own tree under "
                    f"'{self.root}/' on Firebase ({PRESENCE_KEY}: presence entries, "
                    f"{REVOKED_KEY}: revocations); rename it."
                )
        problem = _check_tree(message.payload, MAX_DEPTH - len(self.root.split("/")) - 3)
        if problem is not None:
            raise InvalidMessage(f"Data for event {message.event!r} {problem}")
        if message.size > MAX_VALUE_BYTES:
            raise PayloadTooLarge(
                f"Data for event {message.event!r} is {message.size} bytes as JSON; rtbridge "
                f"writes at most {MAX_VALUE_BYTES} bytes per message to Firebase (the "
                "database's limit for one value). Publish less (an id the client can fetch).",
                size=message.size,
                limit=MAX_VALUE_BYTES,
            )

    def build_calls(
        self, messages: list[Message], positions: Positions | None = None
    ) -> list[Call]:
        """Return multi-path updates writing every message under each of its channels."""
        calls: list[Call] = []
        values: dict[str, Any] = {}
        size = 0
        for index, message in enumerate(messages):
            data = json.loads(message.payload)
            for name in message.channels:
                if values and (
                    len(values) >= MAX_PATHS_PER_UPDATE or size + message.size > MAX_UPDATE_BYTES
                ):
                    calls.append(self._update_call(values))
                    values, size = {}, 0
                channel = encode_for_firebase(name)
                self._touched.add(channel)
                position = positions[index].get(name) if positions is not None else None
                values[f"{channel}/{self.push_id()}"] = _envelope(message, data, position)
                size += message.size
        if values:
            calls.append(self._update_call(values))
        return calls

    def _update_call(self, values: dict[str, Any]) -> Call:
        def send() -> object:
            return _call_firebase(lambda: self.reference().update(values))

        return Call(send, messages=len(values), label=f"update({len(values)} paths)")

    def prune(self) -> None:
        """Delete messages beyond ``keep_last`` or older than ``max_age`` (dispatcher thread).

        Channels written since the last run are checked every run; every tenth run also lists
        all channels under ``root``, so quiet channels and other processes' writes age out too.
        """
        touched, self._touched = self._touched, set()
        if self._sweep_countdown <= 0:
            listing = _call_firebase(lambda: self.reference().get(shallow=True)) or {}
            touched |= set(listing) if isinstance(listing, dict) else set()
            # Presence entries are the clients' (removed by onDisconnect), not messages, and
            # revocations must outlive the sessions they end.
            touched -= {PRESENCE_KEY, REVOKED_KEY}
            self._sweep_countdown = 10
        self._sweep_countdown -= 1
        cutoff = None if self.max_age is None else int((time.time() - self.max_age) * 1000)
        doomed: dict[str, None] = {}
        for channel in sorted(touched):
            keys = _call_firebase(lambda c=channel: self.reference(c).get(shallow=True)) or {}
            ordered = sorted(keys) if isinstance(keys, dict) else []
            excess = len(ordered) - self.keep_last if self.keep_last is not None else 0
            for index, key in enumerate(ordered):
                stamp = push_id_time(key)
                if index < excess or (cutoff is not None and stamp is not None and stamp < cutoff):
                    doomed[f"{channel}/{key}"] = None
        items = list(doomed.items())
        for start in range(0, len(items), MAX_PATHS_PER_UPDATE):
            chunk = dict(items[start : start + MAX_PATHS_PER_UPDATE])
            _call_firebase(lambda chunk=chunk: self.reference().update(chunk))

    def auth_response(self, socket_id: str, grant: Grant) -> dict[str, Any]:
        """Return ``{"token": <custom token>}`` for ``signInWithCustomToken``.

        The token's uid is the user id, its claims ``rtb`` (channel → true) list every
        protected channel this connection was granted in the last hour (the page holds one
        sign-in, so each token must cover the earlier channels too) and ``rtm`` (channel →
        member key) the presence channels, which the rules from :func:`database_rules` check.
        Presence channels add ``"channel_data"`` (the member).
        """
        from firebase_admin import auth

        channel = encode_for_firebase(grant.channel)
        value = member_key(grant.member["id"]) if grant.member is not None else True
        granted = self.grants.add(grant.user_id, socket_id, channel, value)
        claims = _claims(granted)
        uid = grant.user_id or f"anonymous-{socket_id}"[:128]
        try:
            token = auth.create_custom_token(uid, developer_claims=claims, app=self.app)
        except (ValueError, auth.TokenSignError) as exc:
            raise ImproperlyConfigured(
                f"FirebaseBackend cannot sign a custom token for {grant.channel!r}: {exc}. "
                "Give service-account credentials (or set FIREBASE_AUTH_EMULATOR_HOST)."
            ) from exc
        answer: dict[str, Any] = {
            "token": token.decode() if isinstance(token, bytes) else str(token),
            "channel": channel,
        }
        if grant.member is not None:
            answer["channel_data"] = grant.member
        return answer

    def revoke(self, user_id: str, channel: str) -> None:
        """End ``user_id``'s Firebase sessions' grants; later tokens omit ``channel``.

        Three steps: the channel leaves the user's grants (tokens issued from now on do not
        name it unless the rule grants it again); ``<root>/revoked/<uid>`` gets the server time,
        which the rules from :func:`database_rules` compare with each session's sign-in time
        (``auth_time``), so every session signed in before now holds no protected channel:
        new reads are refused at once, and live listeners end when the page's connection
        authenticates again, at the latest at its hourly ID-token refresh; and
        ``auth.revoke_refresh_tokens(uid)``, so that refresh fails on Firebase and the page is
        signed out. A page gets its channels back by asking the auth endpoint again.
        """
        from firebase_admin import auth

        self.grants.revoke(user_id, encode_for_firebase(channel))
        marker = {member_key(user_id): {".sv": "timestamp"}}
        _call_firebase(lambda: self.reference(REVOKED_KEY).update(marker))
        try:
            auth.revoke_refresh_tokens(user_id, app=self.app)
        except auth.UserNotFoundError:
            pass  # never signed in: there is no session to end
        except (ValueError, exceptions_of_firebase()) as exc:
            raise PublishError(
                f"Firebase could not revoke the sessions of user {user_id!r}: {exc}. The "
                "revocation time is written, so the rules refuse those sessions' grants."
            ) from exc

    def client_config(self) -> dict[str, Any]:
        """Return what the firebase JS SDK needs: the app's public settings and where to connect.

        ``apiKey`` (the ``api_key`` option) and ``projectId`` let the page's own
        ``initializeApp`` sign in for protected channels (``getAuth()`` refuses an app without
        an API key); ``emulatorHost``/``authEmulatorHost`` point it at emulators. The API key
        identifies the project and is meant to be public; never the credentials.
        """
        config: dict[str, Any] = {
            "backend": self.alias,
            "databaseURL": self.database_url,
            "root": self.root,
        }
        project = self.project_id or _project_from_namespace(self.namespace)
        if self.api_key:
            config["apiKey"] = self.api_key
        if project:
            config["projectId"] = project
        if self.emulator_host:
            config["emulatorHost"] = self.emulator_host
        config.update(self.history_config())
        if self.auth_emulator_host:
            config["authEmulatorHost"] = self.auth_emulator_host
        return config

    def close(self) -> None:
        """Flush, stop the dispatcher and delete this backend's firebase app."""
        super().close()
        with self._app_lock:
            app, self._app = self._app, None
        if app is not None:
            import firebase_admin

            firebase_admin.delete_app(app)


def _envelope(message: Message, data: Any, position: Position | None) -> dict[str, Any]:
    """Return the database value of one message, with its position when history is on."""
    value: dict[str, Any] = {
        "event": message.event,
        "data": data,
        "ts": {".sv": "timestamp"},
        "exclude": message.exclude,
    }
    if position is not None:
        value["offset"] = position.offset
        value["epoch"] = position.epoch
    return value


def _claims(granted: dict[str, Any]) -> dict[str, Any]:
    """Return the ``rtb``/``rtm`` claims for ``granted``, dropping the oldest grants to fit."""
    names = list(granted)
    while True:
        claims: dict[str, Any] = {"rtb": {name: True for name in names}}
        members = {name: granted[name] for name in names if granted[name] is not True}
        if members:
            claims["rtm"] = members
        if len(json.dumps(claims, separators=(",", ":"))) <= MAX_CLAIMS_BYTES or len(names) == 1:
            return claims
        names.pop(0)


def _project_from_namespace(namespace: str) -> str | None:
    """Return the project id a default database name implies (``<project>-default-rtdb``)."""
    suffix = "-default-rtdb"
    return namespace[: -len(suffix)] if namespace.endswith(suffix) else None


def exceptions_of_firebase() -> type[Exception]:
    """Return firebase-admin's base exception class (imported with the SDK, lazily)."""
    exceptions = import_sdk("firebase_admin.exceptions", "firebase", backend="firebase")
    return exceptions.FirebaseError


def _check_tree(payload: str, max_depth: int) -> str | None:
    """Return what the database would refuse in the JSON ``payload`` (as a sentence), or None.

    Keys must have no ``. $ # [ ] /`` or control characters and at most 768 bytes; the
    value at most ``max_depth`` levels of objects and arrays; each string at most 10 MB.
    """
    suspicious = (
        _MAYBE_BAD_KEY_RE.search(payload)
        or _LONG_KEY_RE.search(payload)
        or payload.count("{") + payload.count("[") > max_depth
        or len(payload) * 4 > MAX_VALUE_BYTES
    )
    if not suspicious:
        return None  # the common case, decided without decoding the JSON
    problems: list[str] = []

    def keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        for key, _ in pairs:
            if _BAD_KEY_RE.search(key):
                problems.append(
                    f"has the key {key!r}; Firebase keys cannot contain . $ # [ ] / or control "
                    "characters. Rename the key."
                )
            elif len(key.encode("utf-8")) > MAX_KEY_BYTES:
                problems.append(
                    f"has a key of {len(key.encode('utf-8'))} bytes ({key[:40]!r}...); "
                    f"Firebase keys are at most {MAX_KEY_BYTES} bytes."
                )
        return dict(pairs)

    value = json.loads(payload, object_pairs_hook=keys)
    if problems:
        return problems[0]
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth >= max_depth:
                return (
                    f"is nested more than {max_depth} levels deep; Firebase allows {MAX_DEPTH} "
                    "levels from the database root, and rtbridge writes data "
                    f"{MAX_DEPTH - max_depth} levels down. Flatten it."
                )
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(node, str) and len(node) * 4 > MAX_VALUE_BYTES:
            size = len(node.encode("utf-8"))
            if size > MAX_VALUE_BYTES:
                return (
                    f"has a string of {size} bytes; Firebase stores at most {MAX_VALUE_BYTES} "
                    "bytes per value."
                )
    return None


def _disable_sdk_retries(ref: Any) -> None:
    """Switch off firebase-admin's own HTTP retries on the session behind ``ref``.

    firebase-admin retries 500/503 up to 4 times with backoff by itself; the dispatcher
    already retries with bounded attempts, and two layers would multiply the delay. The SDK
    has no public option for it, so this is the one place rtbridge reads an SDK private
    (``Reference._client``, whose ``session`` is a ``requests.Session``); the guard test in
    tests/backends/test_firebase.py fails when an SDK upgrade changes it. Should it be gone
    at run time, the SDK keeps its retries (slower failures, same results) and this warns once.
    """
    global _warned_sdk_changed
    session = getattr(getattr(ref, "_client", None), "session", None)
    if session is None:
        if not _warned_sdk_changed:
            _warned_sdk_changed = True
            logger.warning(
                "rtbridge: firebase-admin %s has no Reference._client.session; its own HTTP "
                "retries stay on, so failing writes take longer to report. Check the "
                "firebase-admin version against the 'firebase' extra of rtbridge.",
                getattr(sys.modules.get("firebase_admin"), "__version__", "?"),
            )
        return
    if session in _sessions_without_retries:
        return
    from requests.adapters import HTTPAdapter  # comes with firebase-admin

    session.mount("http://", HTTPAdapter(max_retries=0))
    session.mount("https://", HTTPAdapter(max_retries=0))
    _sessions_without_retries.add(session)


def _call_firebase(request: Any) -> Any:
    """Run one SDK request, mapping its errors to ``PublishError`` (5xx/timeouts retryable)."""
    exceptions = import_sdk("firebase_admin.exceptions", "firebase", backend="firebase")
    try:
        return request()
    except exceptions.FirebaseError as exc:
        response = getattr(exc, "http_response", None)
        status = getattr(response, "status_code", None)
        if status is None:
            raise PublishError(f"Firebase database unreachable: {exc}", retryable=True) from exc
        retryable = status >= 500 or status == 429
        hint = " Check the credentials and the database rules." if status in (401, 403) else ""
        raise PublishError(
            f"Firebase database answered {status}: {exc}.{hint}", status=status, retryable=retryable
        ) from exc
    except ValueError as exc:
        raise PublishError(f"firebase-admin refused the request: {exc}") from exc
