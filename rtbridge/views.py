"""HTTP endpoints under ``include("rtbridge.urls")``: auth, history, data routers, config."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from . import auth, channel_names, routers
from .exceptions import InvalidChannelName, InvalidPosition, NotSupported, PublishError, Refused
from .history import parse_since
from .messages import is_socket_id
from .middleware import sender_socket_id
from .model_config import config_for_base
from .publishers import get_backend
from .templatetags.rtbridge import page_config

__all__ = ["auth_view", "config_view", "data_view", "error_response", "history_view"]

#: Verbs that read only; they may also be called with GET and query parameters.
READ_VERBS = frozenset({"get_list", "get_single", "subscribe"})

logger = logging.getLogger("rtbridge.auth")


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
    ``login_required`` / ``forbidden`` / ``no_rule`` / ``undeclared_filter`` (403),
    ``unavailable`` (503: the transport could not issue its token).
    CSRF protection applies as to any Django view: send the ``X-CSRFToken`` header.
    """
    try:
        body = _read(request)
    except ValueError as exc:
        return error_response(400, "bad_request", str(exc))
    socket_id = body.get("socket_id")
    channel = body.get("channel_name") or body.get("channel")
    if not is_socket_id(socket_id):
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
    except Refused as exc:
        logger.info("rtbridge: refused %r to user %s: %s", channel, _who(user), exc.code)
        return error_response(403, exc.code, str(exc), channel=channel)
    try:
        answer = get_backend().auth_response(socket_id, grant)
    except ValueError as exc:
        # The transport cannot sign for this socket or channel (e.g. not a Pusher socket id).
        return error_response(400, "bad_request", str(exc), channel=channel)
    except PublishError as exc:
        logger.warning("rtbridge: could not authorize %r: %s", channel, exc)
        return error_response(
            503, "unavailable", f"The transport could not authorize {channel!r}: {exc}"
        )
    logger.debug("rtbridge: granted %r to user %s", channel, _who(user))
    return JsonResponse(answer)


@require_POST
def history_view(request: HttpRequest) -> JsonResponse:
    """Return what a client missed on one channel since its last position (hosted backends).

    JSON body: ``channel``, ``since`` (``{"offset", "epoch"}`` from the last message's meta,
    or null for the channel's current position) and optionally ``socket_id``. Authorized
    exactly like subscribing: public channels for anyone (a model's filter channel only for a
    declared filter), protected ones only while ``rtbridge.auth.authorize`` grants them, so
    a revoked user is refused. Answers ``{"channel", "recovered", "offset", "epoch",
    "messages"}`` (docs/delivery.md). Errors: ``bad_request`` / ``invalid_channel`` /
    ``bad_position`` (400), ``login_required`` / ``forbidden`` / ``no_rule`` /
    ``undeclared_filter`` (403), ``not_supported`` (400: the backend resumes on its own
    socket), ``unavailable`` (503: the history store failed). CSRF applies as to the auth
    endpoint.
    """
    try:
        body = _read(request)
    except ValueError as exc:
        return error_response(400, "bad_request", str(exc))
    channel = body.get("channel")
    socket_id = body.get("socket_id")
    if not isinstance(channel, str):
        return error_response(400, "bad_request", "channel is missing.")
    if socket_id is not None and not is_socket_id(socket_id):
        return error_response(400, "bad_request", f"socket_id={socket_id!r} is not a socket id.")
    try:
        since = parse_since(body.get("since"))
    except InvalidPosition as exc:
        return error_response(400, "bad_position", str(exc), channel=channel)
    user = getattr(request, "user", None)
    try:
        auth.authorize(user, channel)
        _check_declared_filter(channel)
    except InvalidChannelName as exc:
        return error_response(400, "invalid_channel", str(exc))
    except Refused as exc:
        logger.info("rtbridge: refused history of %r to user %s: %s", channel, _who(user), exc.code)
        return error_response(403, exc.code, str(exc), channel=channel)
    try:
        replay = get_backend().read_history(channel, since)
    except InvalidPosition as exc:
        return error_response(400, "bad_position", str(exc), channel=channel)
    except NotSupported as exc:
        return error_response(400, "not_supported", str(exc), channel=channel)
    except PublishError as exc:
        logger.warning("rtbridge: could not read the history of %r: %s", channel, exc)
        return error_response(503, "unavailable", f"The history of {channel!r} is unavailable.")
    return JsonResponse(replay.as_json())


def _check_declared_filter(name: str) -> None:
    """Refuse a public filter channel of a publishing model whose filter it does not declare.

    (Protected ones are checked by ``authorize``.) Such a channel never carries messages, and
    the same rule keeps the data routers from serving undeclared filters.
    """
    if channel_names.is_protected(name) or ";" not in name:
        return
    try:
        base, filters = channel_names.parse_filter_channel(name)
    except InvalidChannelName:
        return  # "a;b" is a valid name, but no model's filter channel
    config = config_for_base(base)
    if config is None or not filters or tuple(sorted(filters)) in config.filters:
        return
    allowed = ", ".join("+".join(group) for group in config.filters) or "none"
    raise Refused(
        f"Channel {name!r} filters on {', '.join(sorted(filters))}, which "
        f"{config.model._meta.label} does not declare; declared filters: {allowed}.",
        "undeclared_filter",
    )


def _who(user: Any) -> str:
    return str(user.pk) if getattr(user, "is_authenticated", False) else "anonymous"


def data_view(request: HttpRequest, route: str, verb: str) -> JsonResponse:
    """Call ``verb`` on the router ``route``: POST a JSON object of arguments.

    Read verbs (``get_list``, ``get_single``, ``subscribe``) also answer GET with the
    arguments as query parameters. Replies are ``{"data": ..., ...}`` or rtbridge's JSON error
    shape; the status follows the error (400, 401, 403, 404, 422). The same call over the
    rtbridge server's socket gives the same replies.
    """
    if request.method == "GET" and verb in READ_VERBS:
        args: dict[str, Any] = {key: request.GET.get(key) for key in request.GET}
    elif request.method == "POST":
        try:
            args = _read(request) if request.body else {}
        except ValueError as exc:
            return error_response(400, "bad_request", str(exc))
    else:
        allowed = "GET, POST" if verb in READ_VERBS else "POST"
        response = error_response(
            405, "method_not_allowed", f"{request.method} is not allowed; use {allowed}."
        )
        response["Allow"] = allowed
        return response
    status, body = routers.call(
        route,
        verb,
        args,
        user=getattr(request, "user", None),
        request=request,
        socket_id=sender_socket_id(),
    )
    return JsonResponse(body, status=status, encoder=DjangoJSONEncoder)


@require_GET
@never_cache
@ensure_csrf_cookie
def config_view(request: HttpRequest) -> JsonResponse:
    """Answer the client config a page rendered by Django gets from ``{% rtbridge_config %}``.

    For pages Django does not render (a single-page app, another origin): the JS client's
    ``connect({configUrl})`` fetches it with credentials. It sets the CSRF cookie and
    carries the token (``csrfToken``), so the page's data calls and channel authorizations
    pass Django's CSRF check; it is never cached, since the token is the visitor's.
    Cross-origin pages need CORS with credentials and ``CSRF_TRUSTED_ORIGINS`` (docs/js.md).
    """
    return JsonResponse(page_config(request))
