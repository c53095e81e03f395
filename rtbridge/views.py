"""HTTP endpoints under ``include("rtbridge.urls")``: the channel auth endpoint."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from . import auth
from .exceptions import InvalidChannelName
from .publishers import get_backend

__all__ = ["auth_view", "error_response"]

logger = logging.getLogger("rtbridge.auth")
_SOCKET_ID_RE = re.compile(r"[A-Za-z0-9_\-.:]{1,100}")


def error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    """Return rtbridge's JSON error shape: ``{"error": {"code", "message", ...}}``."""
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def _read(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise ValueError("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ValueError("The request body must be a JSON object.")
        return body
    # pusher-js (and HTML forms) post form-encoded socket_id=…&channel_name=…
    return {key: request.POST.get(key) for key in request.POST}


@require_POST
def auth_view(request: HttpRequest) -> JsonResponse:
    """Authorize one protected channel for one socket; answer in the active transport's format.

    Body (JSON or form-encoded): ``socket_id`` and ``channel_name`` (or ``channel``). Errors
    are JSON with a code: ``bad_request`` (400), ``invalid_channel`` (400),
    ``login_required`` / ``forbidden`` / ``no_rule`` / ``undeclared_filter`` (403).
    CSRF protection applies as to any Django view: send the ``X-CSRFToken`` header.
    """
    try:
        body = _read(request)
    except ValueError as exc:
        return error_response(400, "bad_request", str(exc))
    socket_id = body.get("socket_id")
    channel = body.get("channel_name") or body.get("channel")
    if not isinstance(socket_id, str) or not _SOCKET_ID_RE.fullmatch(socket_id):
        return error_response(
            400, "bad_request", f"socket_id={socket_id!r} is missing or not a socket id."
        )
    if not isinstance(channel, str):
        return error_response(400, "bad_request", "channel_name is missing.")
    user = getattr(request, "user", None)
    try:
        grant = auth.authorize(user, channel)
    except InvalidChannelName as exc:
        return error_response(400, "invalid_channel", str(exc))
    except auth.Refused as exc:
        logger.info("rtbridge: refused %r to user %s: %s", channel, _who(user), exc.code)
        return error_response(403, exc.code, str(exc), channel=channel)
    logger.debug("rtbridge: granted %r to user %s", channel, _who(user))
    return JsonResponse(get_backend().auth_response(socket_id, grant))


def _who(user: Any) -> str:
    return str(user.pk) if getattr(user, "is_authenticated", False) else "anonymous"
