"""The ``local`` backend's loopback channel: signed publish requests and the rendezvous files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core import signing

from . import conf
from .exceptions import InvalidMessage
from .messages import Message

__all__ = [
    "MAX_AGE",
    "MAX_BODY_BYTES",
    "PATH",
    "Refusal",
    "Rendezvous",
    "Request",
    "Revocation",
    "announce",
    "decode_request",
    "encode_request",
    "find_servers",
    "rendezvous_dir",
    "withdraw",
]

#: Namespaces the signature: a token signed for anything else with the same SECRET_KEY
#: (a session, a password reset) is never a valid request here, and the other way round.
SALT = "rtbridge.loopback"
VERSION = 1
#: Seconds a signed request is accepted after it was signed; the receiver remembers each
#: request's nonce that long, so a request is accepted once at most.
MAX_AGE = 10
#: The receiver's URL path.
PATH = "/rtbridge/loopback"
#: Largest request body the receiver reads; senders split batches well below it.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Senders start a new request once a batch's payloads reach this many bytes.
BATCH_BYTES = 2 * 1024 * 1024


class Refusal(Exception):
    """The receiver refuses a request; ``code`` names the rule, the text says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Revocation:
    """``rtbridge.revoke()`` from another process: end a user's subscriptions to a channel."""

    user_id: str
    channel: str
    revoked_at: float


@dataclass(frozen=True)
class Request:
    """One verified request: messages to deliver and revocations to apply, in order."""

    nonce: str
    signed_at: float
    messages: tuple[Message, ...]
    revocations: tuple[Revocation, ...]


# Requests ------------------------------------------------------------------------------------


def encode_request(
    server_id: str,
    messages: Sequence[Message] = (),
    revocations: Sequence[Revocation] = (),
) -> bytes:
    """Return the signed body of a request to the server whose rendezvous says ``server_id``.

    Signed with ``SECRET_KEY`` (``django.core.signing``, HMAC-SHA256) over the whole body,
    which names its one recipient, the time it was signed and a random nonce.
    """
    body = {
        "v": VERSION,
        "to": server_id,
        "at": time.time(),
        "nonce": secrets.token_urlsafe(16),
        # The payload is the JSON text the transport sends, so the data arrives exactly as a
        # browser would get it (datetimes already strings) and is encoded once.
        "messages": [[list(m.channels), m.event, m.payload, m.exclude] for m in messages],
        "revocations": [[r.user_id, r.channel, r.revoked_at] for r in revocations],
    }
    return signing.dumps(body, salt=SALT, compress=True).encode("ascii")


def decode_request(body: bytes, server_id: str, now: float | None = None) -> Request:
    """Verify and decode a request body, or raise ``Refusal`` saying which rule it breaks."""
    now = time.time() if now is None else now
    try:
        # The signature is checked before anything is decompressed or decoded.
        payload = signing.loads(body.decode("ascii"), salt=SALT, max_age=MAX_AGE)
    except signing.SignatureExpired:
        raise Refusal(
            "expired",
            f"the request was signed more than {MAX_AGE:g} s ago; requests are accepted once, "
            "right after they are signed",
        ) from None
    except (signing.BadSignature, UnicodeDecodeError, ValueError):
        raise Refusal(
            "bad_signature",
            "the request is not signed with this server's SECRET_KEY; publish from a process "
            "of the same project, with the same settings as the server",
        ) from None
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise Refusal("bad_request", f"the request is not a version {VERSION} loopback request")
    if payload.get("to") != server_id:
        raise Refusal(
            "wrong_server",
            "the request was signed for another server (one that ran before this one)",
        )
    signed_at, nonce = payload.get("at"), payload.get("nonce")
    if not isinstance(signed_at, (int, float)) or abs(now - signed_at) > MAX_AGE:
        raise Refusal("expired", f"the request was not signed within the last {MAX_AGE:g} s")
    if not isinstance(nonce, str) or not nonce:
        raise Refusal("bad_request", "the request has no nonce")
    try:
        messages = tuple(_message(item) for item in payload.get("messages", []))
        revocations = tuple(_revocation(item) for item in payload.get("revocations", []))
    except (InvalidMessage, TypeError, ValueError) as exc:
        raise Refusal("bad_request", f"the request holds a malformed item: {exc}") from None
    return Request(nonce, float(signed_at), messages, revocations)


def _message(item: Any) -> Message:
    channels, event, payload, exclude = item
    if not isinstance(payload, str):
        raise TypeError(f"payload {payload!r} is not JSON text")
    return Message(channels, event, json.loads(payload), exclude=exclude)


def _revocation(item: Any) -> Revocation:
    user_id, channel, revoked_at = item
    if not (isinstance(user_id, str) and isinstance(channel, str)):
        raise TypeError(f"revocation {item!r} is not [user id, channel, time]")
    return Revocation(user_id, channel, float(revoked_at))


def batches(messages: Iterable[Message]) -> list[list[Message]]:
    """Split ``messages`` into requests of about ``BATCH_BYTES`` each, keeping their order."""
    groups: list[list[Message]] = [[]]
    size = 0
    for message in messages:
        if groups[-1] and size + len(message.payload) > BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(message)
        size += len(message.payload)
    return groups


# Rendezvous ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendezvous:
    """Where a running server of this project takes loopback requests (127.0.0.1:``port``)."""

    pid: int
    port: int
    server_id: str
    file: Path


def rendezvous_dir(create: bool = False) -> Path:
    """Return this project's rendezvous directory (private to this user).

    ``<temp dir>/rtbridge-<user>/<hash of the project identity>``: one project's servers and
    publishers meet there, other projects' never do. Raises ``PermissionError`` when a
    directory on the way is not this user's own with mode 0700 (someone else made it: a
    rendezvous there could send this project's messages to their port).
    """
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    root = Path(tempfile.gettempdir()) / f"rtbridge-{user}"
    digest = hashlib.sha256(conf.project_identity().encode("utf-8")).hexdigest()[:20]
    project = root / digest
    for directory in (root, project):
        if create:
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)
        _check_private(directory)
    return project


def _check_private(directory: Path) -> None:
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return
    owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    mode_ok = os.name == "nt" or not info.st_mode & 0o077
    if not stat.S_ISDIR(info.st_mode) or not owner_ok or not mode_ok:
        raise PermissionError(
            f"{directory} is not a private directory of this user (owner uid {info.st_uid}, "
            f"mode {stat.filemode(info.st_mode)}); rtbridge's local backend will not use it. "
            f"Remove it (rm -r {directory}) and start the server again."
        )


def announce(port: int, server_id: str) -> Path:
    """Write the rendezvous of a server listening on 127.0.0.1:``port``; return the file."""
    directory = rendezvous_dir(create=True)
    pid = os.getpid()
    target = directory / f"{pid}-{server_id}.json"
    text = json.dumps({"pid": pid, "port": port, "server_id": server_id, "started": time.time()})
    temporary = directory / f".{target.name}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    # Readers see the old state or the whole file, never half of it.
    os.replace(temporary, target)
    return target


def withdraw(file: Path) -> None:
    """Remove a rendezvous file (the server is stopping); a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        file.unlink()


def find_servers() -> list[Rendezvous]:
    """Return the servers of this project that announced themselves and still run, oldest first.

    Files left by a process that is gone are removed.
    """
    directory = rendezvous_dir()
    try:
        files = sorted(directory.glob("*.json"))
    except OSError:
        return []
    found: list[tuple[float, Rendezvous]] = []
    for file in files:
        try:
            data = json.loads(file.read_text("utf-8"))
            entry = Rendezvous(int(data["pid"]), int(data["port"]), str(data["server_id"]), file)
            started = float(data.get("started", 0))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced right now, or not ours to read
        if not _running(entry.pid):
            withdraw(file)
            continue
        found.append((started, entry))
    return [entry for _, entry in sorted(found, key=lambda pair: pair[0])]


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there; the connect tells
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's: not ours, but not stale either
        return True
    return True
