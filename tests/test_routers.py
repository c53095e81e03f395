"""Data routers over HTTP: the five verbs, custom verbs, permissions, validation, pagination."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from rest_framework import serializers as drf

import rtbridge
from rtbridge import routers
from rtbridge.tokens import verify_subscription
from tests.testapp.models import Document, TodoItem, TodoList

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann() -> User:
    return User.objects.create_user("ann", password="pw")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw")


@pytest.fixture
def lists(ann: User, bob: User) -> dict[str, TodoList]:
    with rtbridge.suppress():
        return {
            "ann": TodoList.objects.create(name="ann's", owner=ann),
            "ann2": TodoList.objects.create(name="ann's other", owner=ann),
            "bob": TodoList.objects.create(name="bob's", owner=bob),
        }


@pytest.fixture
def as_ann(client: Client, ann: User) -> Client:
    client.force_login(ann)
    return client


def call(
    client: Client, route: str, verb: str, args: dict[str, Any] | None = None, **extra: Any
) -> Any:
    return client.post(
        f"/rtbridge/data/{route}/{verb}",
        json.dumps(args or {}),
        content_type="application/json",
        **extra,
    )


def items(todo_list: TodoList, n: int) -> list[TodoItem]:
    with rtbridge.suppress():
        return [TodoItem.objects.create(todo_list=todo_list, text=f"item {i}") for i in range(n)]


def test_get_list_filters_and_paginates(as_ann, lists):
    items(lists["ann"], 7)
    items(lists["ann2"], 2)
    items(lists["bob"], 3)
    response = call(as_ann, "todo-item", "get_list", {"todo_list__id": lists["ann"].pk})
    assert response.status_code == 200
    body = response.json()
    assert [row["text"] for row in body["data"]] == [f"item {i}" for i in range(5)]
    assert body["page"] == {
        "number": 1,
        "size": 5,
        "count": 7,
        "num_pages": 2,
        "has_next": True,
        "has_previous": False,
    }
    second = call(
        as_ann, "todo-item", "get_list", {"todo_list_id": lists["ann"].pk, "page": 2}
    ).json()
    assert [row["text"] for row in second["data"]] == ["item 5", "item 6"]
    # Without a filter: everything ann may see, never bob's.
    everything = call(as_ann, "todo-item", "get_list", {"page_size": 20}).json()
    assert everything["page"]["count"] == 9


def test_get_list_over_get_with_query_parameters(as_ann, lists):
    items(lists["ann"], 2)
    response = as_ann.get(f"/rtbridge/data/todo-item/get_list?todo_list_id={lists['ann'].pk}")
    assert response.status_code == 200
    assert len(response.json()["data"]) == 2


def test_page_errors_and_capped_page_size(as_ann, lists):
    items(lists["ann"], 25)
    assert (
        call(as_ann, "todo-item", "get_list", {"page": 9}).json()["error"]["code"]
        == "page_out_of_range"
    )
    assert call(as_ann, "todo-item", "get_list", {"page": "x"}).status_code == 400
    assert call(as_ann, "todo-item", "get_list", {"page_size": 0}).status_code == 400
    huge = call(as_ann, "todo-item", "get_list", {"page_size": 10_000}).json()
    assert huge["page"]["size"] == 20 and len(huge["data"]) == 20


def test_undeclared_filter_is_refused(as_ann, lists):
    response = call(as_ann, "todo-item", "get_list", {"text": "x", "todo_list__name": "y"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_filter"
    assert set(error["fields"]) == {"text", "todo_list__name"}
    assert "allowed: done, todo_list_id" in error["fields"]["text"][0]


def test_get_single_hides_what_the_user_may_not_see(as_ann, lists):
    mine = items(lists["ann"], 1)[0]
    theirs = items(lists["bob"], 1)[0]
    assert (
        call(as_ann, "todo-item", "get_single", {"id": mine.pk}).json()["data"]["text"] == "item 0"
    )
    response = call(as_ann, "todo-item", "get_single", {"id": theirs.pk})
    assert response.status_code == 404  # not 403: existence does not leak
    assert response.json()["error"]["code"] == "not_found"
    assert call(as_ann, "todo-item", "get_single", {"id": "nope"}).status_code == 404
    assert call(as_ann, "todo-item", "get_single", {}).status_code == 400


def test_create_validates_per_field_and_writes_nothing_on_error(as_ann, lists, rtbridge_outbox):
    response = call(
        as_ann,
        "todo-item",
        "create",
        {"todo_list_id": lists["ann"].pk, "text": "x" * 300, "done": "maybe"},
    )
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"text", "done"}
    assert TodoItem.objects.count() == 0
    created = call(as_ann, "todo-item", "create", {"todo_list_id": lists["ann"].pk, "text": "milk"})
    assert created.status_code == 201
    assert created.json()["data"]["text"] == "milk"
    assert TodoItem.objects.get().text == "milk"


def test_create_in_someone_elses_list_is_refused_and_rolled_back(as_ann, lists):
    response = call(
        as_ann, "todo-item", "create", {"todo_list_id": lists["bob"].pk, "text": "sneaky"}
    )
    assert response.status_code == 403
    assert TodoItem.objects.count() == 0


def test_update_replies_with_changes_and_respects_the_whitelist(as_ann, lists):
    item = items(lists["ann"], 1)[0]
    response = call(as_ann, "todo-item", "update", {"id": item.pk, "done": True})
    assert response.json()["data"] == {"id": item.pk, "done": True, "label": "item 0 ✓"}
    refused = call(as_ann, "todo-item", "update", {"id": item.pk, "dne": True, "text": "y"})
    assert refused.status_code == 422
    assert "'dne' is not a field" in refused.json()["error"]["fields"]["dne"][0]
    item.refresh_from_db()
    assert item.text == "item 0"  # nothing written when anything is wrong
    # A published field clients may not write (due) is skipped, and the reply says so.
    skipped = call(
        as_ann, "todo-item", "update", {"id": item.pk, "due": "2026-01-01T00:00:00Z", "text": "y"}
    ).json()
    assert skipped == {"data": {"id": item.pk, "text": "y", "label": "y ✓"}, "read_only": ["due"]}
    item.refresh_from_db()
    assert (item.text, item.due) == ("y", None)
    moved = call(as_ann, "todo-item", "update", {"id": item.pk, "todo_list_id": lists["ann2"].pk})
    assert moved.json()["data"]["todo_list_id"] == lists["ann2"].pk
    stolen = call(as_ann, "todo-item", "update", {"id": item.pk, "todo_list_id": lists["bob"].pk})
    assert stolen.status_code == 403
    item.refresh_from_db()
    assert item.todo_list_id == lists["ann2"].pk


def test_delete_and_custom_verb(as_ann, lists):
    first, second, third = items(lists["ann"], 3)
    assert call(as_ann, "todo-item", "delete", {"id": first.pk}).json()["data"] == {"id": first.pk}
    TodoItem.objects.filter(pk=second.pk).update(done=True)
    assert call(as_ann, "todo-item", "clear_done", {"todo_list_id": lists["ann"].pk}).json()[
        "data"
    ] == {"deleted": 1}
    assert list(TodoItem.objects.values_list("pk", flat=True)) == [third.pk]
    theirs = items(lists["bob"], 1)[0]
    assert call(as_ann, "todo-item", "delete", {"id": theirs.pk}).status_code == 404


def test_permissions(client, ann, lists):
    response = call(client, "todo-item", "get_list")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_required"
    # todo-list: reads are public, writes need a login, delete is excluded.
    assert call(client, "todo-list", "get_single", {"id": lists["ann"].pk}).status_code == 200
    assert call(client, "todo-list", "create", {"name": "x"}).status_code == 401
    client.force_login(ann)
    created = call(client, "todo-list", "create", {"name": "mine"})
    assert created.status_code == 201
    assert TodoList.objects.get(pk=created.json()["data"]["id"]).owner == ann  # get_initial
    assert (
        call(client, "todo-list", "delete", {"id": lists["ann"].pk}).json()["error"]["code"]
        == "unknown_verb"
    )


@pytest.mark.parametrize(
    ("route", "verb", "args", "status", "code"),
    [
        ("nope", "get_list", {}, 404, "unknown_route"),
        ("todo-item", "nope", {}, 404, "unknown_verb"),
        ("todo-item", "_atomic", {}, 404, "unknown_verb"),
        ("todo-item", "clear_done", {"wrong": 1}, 400, "bad_request"),
    ],
)
def test_bad_calls(as_ann, lists, route, verb, args, status, code):
    response = call(as_ann, route, verb, args)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_bad_bodies_and_methods(as_ann):
    assert (
        as_ann.post(
            "/rtbridge/data/todo-item/get_list", "[1]", content_type="application/json"
        ).status_code
        == 400
    )
    assert (
        as_ann.post(
            "/rtbridge/data/todo-item/get_list", "{x", content_type="application/json"
        ).status_code
        == 400
    )
    response = as_ann.get("/rtbridge/data/todo-item/create")
    assert response.status_code == 405 and response["Allow"] == "POST"


def test_writes_need_csrf_for_session_users(ann, lists):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)
    assert (
        call(
            client, "todo-item", "create", {"todo_list_id": lists["ann"].pk, "text": "x"}
        ).status_code
        == 403
    )


def test_subscribe_returns_channel_and_initial_data(as_ann, lists):
    items(lists["ann"], 2)
    body = call(as_ann, "todo-item", "subscribe", {"todo_list__id": lists["ann"].pk}).json()
    assert body["channels"] == [f"testapp.todoitem;todo_list_id={lists['ann'].pk}"]
    assert [row["text"] for row in body["data"]] == ["item 0", "item 1"]
    wrong = call(as_ann, "todo-item", "subscribe", {"done": True})
    assert wrong.json()["error"]["code"] == "invalid_filter"  # no channel for this filter alone


def test_subscribe_to_a_private_model_carries_a_token(client, ann):
    class DocumentRouter(rtbridge.ModelRouter):
        route_name = "document"
        model = Document
        serializer_class = type(
            "DocSer",
            (rtbridge.ModelSerializer,),
            {"Meta": type("Meta", (), {"model": Document, "fields": ["title"]})},
        )

        def get_queryset(self, **filters: Any) -> Any:
            return Document.objects.filter(owner=self.user.username).filter(**filters)

    routers.register(DocumentRouter)
    try:
        client.force_login(ann)
        body = call(
            client, "document", "subscribe", {"owner": "ann"}, HTTP_X_RTBRIDGE_SOCKET_ID="3.4"
        ).json()
        name = "private-testapp.document;owner=ann"
        assert body["channels"] == [name]
        assert verify_subscription(body["auth"][name]["auth"], "3.4", name).user_id == str(ann.pk)
        refused = call(
            client, "document", "subscribe", {"owner": "bob"}, HTTP_X_RTBRIDGE_SOCKET_ID="3.4"
        )
        assert refused.status_code == 403
    finally:
        routers.unregister("document")


def test_drf_serializer_router(as_ann, lists):
    class ItemDRF(drf.ModelSerializer):
        class Meta:
            model = TodoItem
            fields = ["id", "text", "done", "todo_list"]

    class DRFRouter(rtbridge.ModelRouter):
        route_name = "drf-item"
        serializer_class = ItemDRF
        filter_fields = ("todo_list_id",)

        def get_queryset(self, **filters: Any) -> Any:
            return TodoItem.objects.filter(todo_list__owner=self.user, **filters)

    routers.register(DRFRouter)
    try:
        created = call(as_ann, "drf-item", "create", {"todo_list": lists["ann"].pk, "text": "drf"})
        assert created.status_code == 201, created.json()
        assert created.json()["data"]["text"] == "drf"
        bad = call(as_ann, "drf-item", "create", {"todo_list": lists["ann"].pk, "text": ""})
        assert bad.status_code == 422 and "text" in bad.json()["error"]["fields"]
        item_id = created.json()["data"]["id"]
        assert (
            call(as_ann, "drf-item", "update", {"id": item_id, "done": True}).json()["data"]["done"]
            is True
        )
    finally:
        routers.unregister("drf-item")


def test_registration_rules():
    with pytest.raises(ImproperlyConfigured, match="route_name must be a non-empty string"):
        routers.register(type("NoName", (rtbridge.ModelRouter,), {}))
    clash = type("Clash", (rtbridge.ModelRouter,), {"route_name": "todo-item"})
    with pytest.raises(
        ImproperlyConfigured, match="already served by tests.testapp.routers.TodoItemRouter"
    ):
        routers.register(clash)
    assert {"todo-item", "todo-list"} <= set(routers.routes())


def test_writes_publish_and_exclude_the_caller(
    as_ann, lists, rtbridge_outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        call(
            as_ann,
            "todo-item",
            "create",
            {"todo_list_id": lists["ann"].pk, "text": "milk"},
            HTTP_X_RTBRIDGE_SOCKET_ID="9.9",
        )
    message = rtbridge_outbox[-1]
    assert (message.event, message.exclude) == ("created", "9.9")


def test_subscribe_without_data(as_ann, lists):
    items(lists["ann"], 1)
    body = call(
        as_ann, "todo-item", "subscribe", {"todo_list_id": lists["ann"].pk, "include_data": False}
    ).json()
    assert body == {"data": None, "channels": [f"testapp.todoitem;todo_list_id={lists['ann'].pk}"]}


def test_subscribe_to_one_object(as_ann, lists):
    mine = items(lists["ann"], 1)[0]
    theirs = items(lists["bob"], 1)[0]
    body = call(as_ann, "todo-item", "subscribe", {"id": mine.pk}).json()
    assert body == {"data": body["data"], "channels": [f"testapp.todoitem.{mine.pk}"]}
    assert body["data"]["text"] == "item 0"
    assert call(as_ann, "todo-item", "subscribe", {"id": theirs.pk}).status_code == 404
    mixed = call(as_ann, "todo-item", "subscribe", {"id": mine.pk, "done": True})
    assert mixed.json()["error"]["code"] == "bad_request"
