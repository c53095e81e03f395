"""Channel authorization: rules, presence info, model hooks, tokens, the auth endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core import signing
from django.test import Client

import rtbridge
from rtbridge import auth, tokens
from rtbridge.exceptions import InvalidChannelName, InvalidToken, Refused
from rtbridge.middleware import sending_as, to_everyone
from rtbridge.tokens import DEFAULT_TOKEN_TTL, Grant, sign_subscription, verify_subscription
from tests.testapp.models import Document, TodoList

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", password="pw")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw")


@pytest.fixture
def ann_list(ann: User) -> TodoList:
    with rtbridge.suppress():
        return TodoList.objects.create(name="ann's groceries")


def test_rules_are_autodiscovered_from_app_channels_modules():
    patterns = [rule.pattern for rule in auth.rules()]
    assert "private-testapp.todolist.{pk}" in patterns
    assert "presence-testapp.todoitem.{pk}" in patterns


def test_private_rule_grants_and_refuses(ann, bob, ann_list):
    name = f"private-testapp.todolist.{ann_list.pk}"
    assert auth.authorize(ann, name) == Grant(name, str(ann.pk))
    with pytest.raises(Refused, match="You may not subscribe") as info:
        auth.authorize(bob, name)
    assert info.value.code == "forbidden"
    with pytest.raises(Refused, match="Log in") as info:
        auth.authorize(AnonymousUser(), name)
    assert info.value.code == "login_required"


def test_only_true_grants_a_private_channel(ann):
    with pytest.raises(Refused):
        auth.authorize(ann, "private-rooms.7.secret")


def test_placeholders_match_one_segment_only(ann, ann_list):
    with pytest.raises(Refused, match="No authorization rule matches") as info:
        auth.authorize(ann, f"private-testapp.todolist.{ann_list.pk}.extra")
    assert info.value.code == "no_rule"


def test_presence_rule_returns_member_info(ann):
    grant = auth.authorize(ann, "presence-testapp.todoitem.7")
    assert grant.member == {"id": str(ann.pk), "info": {"id": ann.pk, "name": "ann"}}
    with pytest.raises(Refused) as info:
        auth.authorize(AnonymousUser(), "presence-testapp.todoitem.7")
    assert info.value.code == "login_required"


def test_public_channels_need_no_rule_and_bad_names_are_refused(ann):
    assert auth.authorize(AnonymousUser(), "testapp.todoitem").user_id is None
    with pytest.raises(InvalidChannelName):
        auth.authorize(ann, "private-bad name")


def test_pattern_validation():
    with pytest.raises(ValueError, match="must start with 'private-' or 'presence-'"):
        auth.channel("todo.{pk}")
    with pytest.raises(ValueError, match="repeats a placeholder"):
        auth.channel("private-a.{x}.{x}")


def test_model_hook_authorizes_private_filter_channels(ann, bob):
    assert Document.RTBridge.authorize  # the model declares a hook...
    name = "private-testapp.document;owner=ann"
    assert auth.authorize(ann, name).channel == name
    with pytest.raises(Refused):
        auth.authorize(bob, name)  # ...and a client cannot widen the filter to someone else
    with pytest.raises(Refused, match="does not declare") as info:
        auth.authorize(ann, "private-testapp.document;title=x")
    assert info.value.code == "undeclared_filter"
    with pytest.raises(Refused):
        auth.authorize(ann, "private-testapp.document")  # the whole collection: nobody


def test_models_with_a_hook_publish_on_private_channels(
    rtbridge_outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        doc = Document.objects.create(owner="ann", title="plan")
    assert rtbridge_outbox[0].channels == (
        "private-testapp.document",
        f"private-testapp.document.{doc.pk}",
        "private-testapp.document;owner=ann",
    )


def test_tokens_bind_socket_channel_and_member(ann):
    grant = auth.authorize(ann, "presence-testapp.todoitem.7")
    token = sign_subscription("1.2", grant)
    assert verify_subscription(token, "1.2", grant.channel) == grant
    cases = [
        (None, "1.2", grant.channel, "missing"),
        (token + "x", "1.2", grant.channel, "bad_signature"),
        (token, "9.9", grant.channel, "wrong_socket"),
        (token, "1.2", "presence-testapp.todoitem.8", "wrong_channel"),
    ]
    for bad_token, socket_id, channel, code in cases:
        with pytest.raises(InvalidToken) as info:
            verify_subscription(bad_token, socket_id, channel)
        assert info.value.code == code


def test_a_private_token_does_not_open_a_presence_channel(ann):
    forged = signing.dumps(
        {"s": "1.2", "c": "presence-testapp.todoitem.7"}, salt=tokens._TOKEN_SALT
    )
    with pytest.raises(InvalidToken, match="carries no member info"):
        verify_subscription(forged, "1.2", "presence-testapp.todoitem.7")


def test_expired_token(ann, monkeypatch):
    token = sign_subscription("1.2", Grant("private-x", str(ann.pk)))
    later = time.time() + DEFAULT_TOKEN_TTL + 5
    monkeypatch.setattr(signing.time, "time", lambda: later)
    with pytest.raises(InvalidToken) as info:
        verify_subscription(token, "1.2", "private-x")
    assert info.value.code == "expired"


def test_token_signed_with_another_secret_is_forged(ann, settings):
    token = sign_subscription("1.2", Grant("private-x", str(ann.pk)))
    settings.SECRET_KEY = "another-secret"
    with pytest.raises(InvalidToken) as info:
        verify_subscription(token, "1.2", "private-x")
    assert info.value.code == "bad_signature"


# The endpoint ----------------------------------------------------------------------------------


def post(client: Client, data: dict[str, Any], *, as_json: bool = True, **extra: Any) -> Any:
    if as_json:
        return client.post(
            "/rtbridge/auth", json.dumps(data), content_type="application/json", **extra
        )
    return client.post("/rtbridge/auth", data, **extra)


def test_endpoint_returns_a_token_the_server_can_verify(client, ann, ann_list):
    client.force_login(ann)
    channel = f"private-testapp.todolist.{ann_list.pk}"
    response = post(client, {"socket_id": "5.6", "channel_name": channel})
    assert response.status_code == 200
    assert verify_subscription(response.json()["auth"], "5.6", channel).user_id == str(ann.pk)


def test_endpoint_accepts_pusher_js_form_posts_and_presence(client, ann):
    client.force_login(ann)
    response = post(
        client, {"socket_id": "5.6", "channel_name": "presence-testapp.todoitem.3"}, as_json=False
    )
    assert response.status_code == 200
    assert response.json()["channel_data"] == {
        "id": str(ann.pk),
        "info": {"id": ann.pk, "name": "ann"},
    }


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"socket_id": "5.6"}, 400, "bad_request"),
        ({"socket_id": "bad id", "channel_name": "private-x"}, 400, "bad_request"),
        ({"socket_id": "5.6", "channel_name": "private-bad name"}, 400, "invalid_channel"),
        ({"socket_id": "5.6", "channel_name": "private-nobody.knows"}, 403, "no_rule"),
        (
            {"socket_id": "5.6", "channel_name": "private-testapp.document;title=x"},
            403,
            "undeclared_filter",
        ),
    ],
)
def test_endpoint_errors(client, ann, data, status, code):
    client.force_login(ann)
    response = post(client, data)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert "auth" not in response.json()


def test_endpoint_refuses_anonymous_users(client, ann_list):
    response = post(
        client, {"socket_id": "5.6", "channel_name": f"private-testapp.todolist.{ann_list.pk}"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "login_required"


def test_endpoint_needs_csrf_for_session_users(ann, ann_list):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)
    channel = f"private-testapp.todolist.{ann_list.pk}"
    assert post(client, {"socket_id": "5.6", "channel_name": channel}).status_code == 403
    client.get("/rtbridge/auth")  # 405, but no cookie yet either way
    token = "a" * 32
    client.cookies["csrftoken"] = token
    response = post(client, {"socket_id": "5.6", "channel_name": channel}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200


def test_endpoint_only_accepts_post(client):
    assert client.get("/rtbridge/auth").status_code == 405


def test_endpoint_rejects_malformed_json(client, ann):
    client.force_login(ann)
    response = client.post("/rtbridge/auth", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


# Exclude the sender ------------------------------------------------------------------------------


def test_model_changes_exclude_the_sending_socket(
    rtbridge_outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), sending_as("7.8"):
        TodoList.objects.create(name="a")
    assert rtbridge_outbox[-1].exclude == "7.8"
    with django_capture_on_commit_callbacks(execute=True), sending_as("7.8"), to_everyone():
        TodoList.objects.create(name="b")
    assert rtbridge_outbox[-1].exclude is None


def test_middleware_reads_the_socket_id_header(rtbridge_outbox):
    from django.http import HttpResponse
    from django.test import RequestFactory

    from rtbridge.middleware import SocketIdMiddleware, sender_socket_id

    seen = []

    def view(request: Any) -> HttpResponse:
        seen.append(sender_socket_id())
        return HttpResponse()

    middleware = SocketIdMiddleware(view)
    middleware(RequestFactory().get("/", HTTP_X_RTBRIDGE_SOCKET_ID="12.34"))
    middleware(RequestFactory().get("/", HTTP_X_RTBRIDGE_SOCKET_ID="<script>"))
    middleware(RequestFactory().get("/"))
    assert seen == ["12.34", None, None]
    assert sender_socket_id() is None


async def test_middleware_in_async_stacks():
    from django.http import HttpResponse
    from django.test import AsyncRequestFactory

    from rtbridge.middleware import SocketIdMiddleware, sender_socket_id

    async def view(request: Any) -> HttpResponse:
        return HttpResponse(sender_socket_id() or "")

    response = await SocketIdMiddleware(view)(
        AsyncRequestFactory().get("/", headers={"X-RTBridge-Socket-Id": "1.1"})
    )
    assert response.content == b"1.1"


def test_revoke_needs_a_backend_that_can(ann, settings):
    settings.RTBRIDGE_BACKEND = "dummy"
    with pytest.raises(NotImplementedError, match="expire by themselves"):
        rtbridge.revoke(ann, "private-x")
    with pytest.raises(ValueError, match="anonymous"):
        rtbridge.revoke(AnonymousUser(), "private-x")
    with pytest.raises(InvalidChannelName):
        rtbridge.revoke(ann, "bad name")


class PickyBackend(rtbridge.get_backend().__class__.__mro__[-2]):  # BaseBackend
    def publish(self, message: Any) -> None:
        pass

    def auth_response(self, socket_id: str, grant: Grant) -> dict[str, Any]:
        if socket_id == "1.1":
            raise ValueError(f"{socket_id!r} is not a socket id of this transport")
        raise rtbridge.PublishError("token service down", status=503, retryable=True)


def test_endpoint_maps_transport_refusals(client, ann, settings):
    settings.RTBRIDGE_BACKEND = "tests.test_auth.PickyBackend"
    client.force_login(ann)
    bad = post(client, {"socket_id": "1.1", "channel_name": "presence-testapp.todoitem.1"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_request")
    down = post(client, {"socket_id": "2.2", "channel_name": "presence-testapp.todoitem.1"})
    assert (down.status_code, down.json()["error"]["code"]) == (503, "unavailable")


@pytest.mark.parametrize(
    ("old_name", "new_object", "new_path"),
    [
        ("Grant", Grant, "rtbridge.tokens.Grant"),
        ("sign_subscription", sign_subscription, "rtbridge.tokens.sign_subscription"),
        ("verify_subscription", verify_subscription, "rtbridge.tokens.verify_subscription"),
        ("DEFAULT_TOKEN_TTL", DEFAULT_TOKEN_TTL, "rtbridge.tokens.DEFAULT_TOKEN_TTL"),
        ("Refused", Refused, "rtbridge.exceptions.Refused"),
        ("InvalidToken", InvalidToken, "rtbridge.exceptions.InvalidToken"),
        ("revoke", rtbridge.revoke, "rtbridge.revoke"),
    ],
)
def test_moved_names_still_import_from_auth_with_a_deprecation_warning(
    old_name: str, new_object: Any, new_path: str
) -> None:
    with pytest.warns(
        DeprecationWarning, match=f"rtbridge.auth.{old_name} has moved to {new_path}"
    ):
        assert getattr(auth, old_name) is new_object
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        auth.nosuch  # noqa: B018
