"""Signed subscription tokens: the ``Grant`` they carry, signing, verifying, their lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core import signing

from . import conf
from .channel_names import PRESENCE_PREFIX
from .exceptions import InvalidToken

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "Grant",
    "sign_subscription",
    "token_issued_at",
    "user_id_of",
    "verify_subscription",
]

#: Seconds a subscription token is valid unless ``RTBRIDGE_TOKEN_TTL`` says otherwise; the
#: client asks for a fresh one when it reconnects.
DEFAULT_TOKEN_TTL = conf.DEFAULT_TOKEN_TTL
_TOKEN_SALT = "rtbridge.subscription.v1"


@dataclass(frozen=True)
class Grant:
    """What an authorized subscription carries: the channel, the user and presence info."""

    channel: str
    user_id: str | None
    member: dict[str, Any] | None = None

    @property
    def presence(self) -> bool:
        return self.channel.startswith(PRESENCE_PREFIX)


def user_id_of(user: Any) -> str | None:
    """Return the id a grant records for ``user``: its primary key as text, None if anonymous."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def sign_subscription(socket_id: str, grant: Grant) -> str:
    """Return a signed token binding ``grant`` to one socket; verified without a database hit."""
    payload: dict[str, Any] = {"s": socket_id, "c": grant.channel}
    if grant.user_id is not None:
        payload["u"] = grant.user_id
    if grant.member is not None:
        payload["m"] = grant.member
    return signing.dumps(payload, salt=_TOKEN_SALT, compress=False)


def verify_subscription(
    token: object, socket_id: str, channel_name: str, *, max_age: int | None = None
) -> Grant:
    """Check a token for ``socket_id`` and ``channel_name``; return its grant or raise.

    A token is valid for ``max_age`` seconds after it was signed (default:
    ``RTBRIDGE_TOKEN_TTL``, 3600).

    Raises :class:`~rtbridge.exceptions.InvalidToken` with ``code`` ``missing``, ``expired``,
    ``bad_signature``, ``wrong_socket`` or ``wrong_channel``.
    """
    if not isinstance(token, str) or not token:
        raise InvalidToken(
            f"Channel {channel_name!r} is protected; subscribe with the token from the auth "
            "endpoint.",
            "missing",
        )
    try:
        payload = signing.loads(
            token, salt=_TOKEN_SALT, max_age=conf.token_ttl() if max_age is None else max_age
        )
    except signing.SignatureExpired:
        raise InvalidToken(
            f"The token for {channel_name!r} has expired; ask the auth endpoint again.",
            "expired",
        ) from None
    except signing.BadSignature:
        raise InvalidToken(
            f"The token for {channel_name!r} is not valid (bad signature).", "bad_signature"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidToken("The token has an unexpected shape.", "bad_signature")
    if payload.get("s") != socket_id:
        raise InvalidToken(
            f"The token for {channel_name!r} was issued to another connection.", "wrong_socket"
        )
    if payload.get("c") != channel_name:
        raise InvalidToken(
            f"The token is for channel {payload.get('c')!r}, not {channel_name!r}.",
            "wrong_channel",
        )
    member = payload.get("m")
    if channel_name.startswith(PRESENCE_PREFIX) and not isinstance(member, dict):
        raise InvalidToken(
            f"The token for {channel_name!r} carries no member info.", "wrong_channel"
        )
    return Grant(channel_name, payload.get("u"), member)


def token_issued_at(token: str) -> int:
    """Return the Unix time (whole seconds) a verified subscription token was signed.

    Tokens are ``django.core.signing`` objects: ``<payload>:<timestamp>:<signature>`` with
    the timestamp in base 62. Only call this after :func:`verify_subscription` accepted it.
    """
    return signing.b62_decode(token.rsplit(":", 2)[-2])
