"""SwampDragon code keeps its meaning or fails loudly: aliases honoured, everything else refused.

Each SwampDragon (or DRF) name rtbridge would otherwise ignore is a system check error and
makes the serializer or router refuse to work, so a migrated app never publishes or serves
more than the old one did. The ported talk app lives in ``tests.testapp.swampdragon_port``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import models
from django.http import Http404
from django.test import Client
from rest_framework.permissions import IsAuthenticated

import rtbridge
from rtbridge import publishers, routers
from rtbridge.checks import check_migrations, check_models, check_routers
from rtbridge.model_config import build_config
from rtbridge.server.calls import failure_body
from tests.testapp.models import Bare, Note, TodoItem, TodoList
from tests.testapp.swampdragon_port import ROUTERS, TalkTodoItemSerializer

pytestmark = pytest.mark.django_db


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def post(client: Client, route: str, verb: str, args: dict[str, Any]) -> tuple[int, Any]:
    response = client.post(
        f"/rtbridge/data/{route}/{verb}", json.dumps(args), content_type="application/json"
    )
    return response.status_code, response.json()


def serializer(meta: dict[str, Any], **attributes: Any) -> type[rtbridge.ModelSerializer]:
    return type(
        "Ported", (rtbridge.ModelSerializer,), {"Meta": type("Meta", (), meta), **attributes}
    )


def router(**attributes: Any) -> type[rtbridge.ModelRouter]:
    return type(
        "PortedRouter",
        (rtbridge.ModelRouter,),
        {
            "route_name": "ported",
            "model": TodoItem,
            "serializer_class": TalkTodoItemSerializer,
            **attributes,
        },
    )


@pytest.fixture
def todo() -> dict[str, Any]:
    with rtbridge.suppress():
        groceries = TodoList.objects.create(name="Groceries")
        other = TodoList.objects.create(name="Other")
        return {
            "list": groceries,
            "milk": TodoItem.objects.create(todo_list=groceries, text="milk"),
            "hidden": TodoItem.objects.create(todo_list=other, text="hidden"),
        }


@pytest.fixture
def talk_routes() -> Iterator[None]:
    for router_class in ROUTERS:
        routers.register(router_class)
    yield
    for router_class in ROUTERS:
        routers.unregister(router_class.route_name)


@pytest.fixture
def serve() -> Iterator[Any]:
    """Register a router for one test (route ``ported``)."""
    registered: list[str] = []

    def register(router_class: type[routers.BaseRouter]) -> type[routers.BaseRouter]:
        routers.register(router_class)
        registered.append(router_class.route_name)
        return router_class

    yield register
    for name in registered:
        routers.unregister(name)


# publish_fields: an alias of fields -------------------------------------------------------------


class SwampNoteSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = Note
        publish_fields = ("body",)  # Note.owner must never leave the server
        update_fields = ("body",)


def test_publish_fields_limits_what_is_published(
    rtbridge_outbox, django_capture_on_commit_callbacks
):
    publishers.register(Note, serializer=SwampNoteSerializer)
    try:
        assert check_models() == []
        with django_capture_on_commit_callbacks(execute=True):
            note = Note.objects.create(body="hello", owner="secret")
            note.owner = "still secret"
            note.save()
        assert [(m.event, m.data) for m in rtbridge_outbox] == [
            ("created", {"id": note.pk, "body": "hello"}),
            ("updated", {"id": note.pk}),  # owner changed: not published
        ]
    finally:
        publishers.unregister(Note)


def test_publish_fields_limits_what_routers_serve(client, serve):
    serve(router(model=Note, serializer_class=SwampNoteSerializer))
    note = Note.objects.create(body="hello", owner="secret")
    assert post(client, "ported", "get_list", {}) == (
        200,
        {"data": [{"id": note.pk, "body": "hello"}]},
    )
    assert post(client, "ported", "get_single", {"id": note.pk}) == (
        200,
        {"data": {"id": note.pk, "body": "hello"}},
    )


def test_the_ported_talk_app_passes_the_checks(talk_routes):
    assert check_routers() == []
    assert TalkTodoItemSerializer.check() == []


# get_query_set: refused, and nothing is served -------------------------------------------------


class HidingRouter(rtbridge.ModelRouter):
    """SwampDragon's way of hiding rows: rtbridge never calls get_query_set."""

    route_name = "ported"
    model = TodoItem
    serializer_class = TalkTodoItemSerializer

    def get_query_set(self, **kwargs: Any) -> Any:
        return TodoItem.objects.filter(todo_list__id=kwargs["list_id"])


def test_get_query_set_is_a_check_error_and_the_router_serves_nothing(client, todo, serve):
    errors = HidingRouter.check()
    assert ids(errors) == ["rtbridge.E040"]
    assert "HidingRouter.get_query_set is SwampDragon's" in errors[0].msg
    assert "Rename it get_queryset(self, **filters)" in errors[0].hint
    serve(HidingRouter)
    assert "rtbridge.E040" in ids(check_routers())
    for verb, args in (("get_list", {"list_id": 1}), ("get_list", {}), ("get_single", {"id": 1})):
        status, body = post(client, "ported", verb, args)
        assert (status, body["error"]["code"]) == (500, "misconfigured"), verb
        assert "rtbridge.E040" in body["error"]["message"]
        assert "data" not in body


# get_object(**kwargs): honoured ---------------------------------------------------------------


def test_swampdragon_get_object_kwargs_works(client, todo, talk_routes, rtbridge_outbox):
    milk = todo["milk"]
    assert post(client, "talk-todo-item", "get_single", {"id": milk.pk}) == (
        200,
        {"data": {"id": milk.pk, "todo_list_id": todo["list"].pk, "done": False, "text": "milk"}},
    )
    status, body = post(client, "talk-todo-item", "get_single", {"id": 999})
    assert (status, body["error"]["code"]) == (404, "not_found")  # DoesNotExist: 404, not 500
    assert post(client, "talk-todo-item", "update", {"id": milk.pk, "done": True})[0] == 200
    assert post(client, "talk-todo-item", "delete", {"id": milk.pk}) == (
        200,
        {"data": {"id": milk.pk}},
    )
    assert not TodoItem.objects.filter(pk=milk.pk).exists()
    assert post(client, "talk-todo-list", "get_single", {"id": todo["list"].pk})[1]["data"] == {
        "id": todo["list"].pk,
        "name": "Groceries",
        "description": "",
    }


def test_a_get_object_rtbridge_cannot_call_is_a_check_error():
    errors = router(get_object=lambda self, pk: None).check()
    assert ids(errors) == ["rtbridge.E041"]
    assert "get_object(self, pk) cannot be called the way rtbridge calls it" in errors[0].msg
    assert errors[0].hint.startswith("Write def get_object(self, **lookup): rtbridge passes")


# update(route, wholeItem) -------------------------------------------------------------------


def test_update_with_the_whole_item_writes_update_fields_and_skips_read_only_ones(
    client, todo, talk_routes
):
    milk = todo["milk"]
    whole = post(client, "talk-todo-item", "get_single", {"id": milk.pk})[1]["data"]
    whole.update(done=True, text="changed by a client that may not")
    assert post(client, "talk-todo-item", "update", whole) == (
        200,
        {"data": {"id": milk.pk, "done": True}, "read_only": ["todo_list_id", "text"]},
    )
    milk.refresh_from_db()
    assert (milk.done, milk.text) == (True, "milk")


def test_angular_hash_key_and_unknown_keys_are_refused_by_name(client, todo, talk_routes):
    milk = todo["milk"]
    whole = post(client, "talk-todo-item", "get_single", {"id": milk.pk})[1]["data"]
    status, body = post(
        client,
        "talk-todo-item",
        "update",
        {**whole, "done": True, "$$hashKey": "object:3", "dne": 1},
    )
    assert status == 422
    error = body["error"]
    assert set(error["fields"]) == {"$$hashKey", "dne"}
    assert "AngularJS adds it" in error["fields"]["$$hashKey"][0]
    # The message, which is what a page shows, names each refused key.
    assert error["message"].startswith("Some values are not valid: $$hashKey: '$$hashKey' is not")
    assert "; dne: 'dne' is not a field of this object; writable fields: done" in error["message"]
    milk.refresh_from_db()
    assert milk.done is False


# validate_<field>(value): honoured --------------------------------------------------------------


class ValidatingSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = "testapp.TodoItem"
        publish_fields = ("text", "done")
        update_fields = ("text", "done")

    def validate_text(self, value: str) -> str | None:
        if value == "forbidden":
            raise ValidationError("Not that.")
        return value.strip() if value != value.strip() else None


def test_validate_field_methods_are_called_on_writes(client, todo, serve):
    serve(router(serializer_class=ValidatingSerializer))
    milk = todo["milk"]
    status, body = post(client, "ported", "update", {"id": milk.pk, "text": "forbidden"})
    assert (status, body["error"]["message"]) == (422, "Some values are not valid: text: Not that.")
    assert post(client, "ported", "update", {"id": milk.pk, "text": "  bread "})[0] == 200
    milk.refresh_from_db()
    assert milk.text == "bread"  # the value validate_text returned


# Serializer options rtbridge does not take: rtbridge.E030-E033 ----------------------------------


@pytest.mark.parametrize(
    ("meta", "code", "match"),
    [
        ({"id_field": "text"}, "rtbridge.E030", "always carry the primary key as 'id'"),
        ({"base_channel": "todos"}, "rtbridge.E030", "set channel = '...' in the model's RTBridge"),
        ({"read_only_fields": ["text"]}, "rtbridge.E030", "read-only unless Meta.update_fields"),
        ({"update_field": ["done"]}, "rtbridge.E030", "Did you mean 'update_fields'?"),
        ({"fields": ["text"], "publish_fields": ["text"]}, "rtbridge.E031", "Keep one of them"),
    ],
)
def test_serializer_options_that_would_be_ignored(meta, code, match):
    serializer_class = serializer({"model": TodoItem, **meta})
    errors = serializer_class.check()
    assert ids(errors) == [code]
    assert match in f"{errors[0].msg} {errors[0].hint}"
    with pytest.raises(ImproperlyConfigured, match=code):
        serializer_class().serialize(TodoItem(pk=1, text="milk"))  # refuses to work


@pytest.mark.parametrize("value", ["pk", "id"])
def test_id_field_naming_the_primary_key_keeps_its_meaning(value):
    assert serializer({"model": TodoItem, "id_field": value}).check() == []


def test_a_related_serializer_named_by_a_string(todo):
    forward = serializer({"model": TodoItem, "fields": ["todo_list", "text"]}, todo_list="ListSer")
    reverse = serializer({"model": TodoList, "fields": ["name"]}, items="ItemSer")
    for serializer_class, name in ((forward, "todo_list"), (reverse, "items")):
        errors = serializer_class.check()
        assert ids(errors) == ["rtbridge.E032"]
        assert f"Ported.{name} = " in errors[0].msg
        assert f"serialize_{name}(self, obj)" in errors[0].hint


def test_a_validate_method_no_write_reaches():
    errors = serializer(
        {"model": TodoItem, "update_fields": ["done"]}, validate_text=lambda self, value: None
    ).check()
    assert ids(errors) == ["rtbridge.E033"]
    assert "validate_text() is never called: 'text' is not in Meta.update_fields" in errors[0].msg


def test_a_serialize_method_with_swampdragons_serializer_argument():
    errors = serializer(
        {"model": TodoItem, "fields": ["text"]},
        serialize_list_name=lambda self, obj, serializer: obj.todo_list.name,
    ).check()
    assert ids(errors) == ["rtbridge.E034"]
    assert "cannot be called as serialize_list_name(obj)" in errors[0].msg


def test_nested_serializers_are_checked_too():
    nested = serializer({"model": TodoList, "base_channel": "lists"})
    errors = serializer({"model": TodoItem, "fields": ["todo_list"]}, todo_list=nested()).check()
    assert ids(errors) == ["rtbridge.E030"]


def test_a_publishing_model_with_such_a_serializer_fails_the_check_and_every_save():
    publishers.register(Bare, serializer=serializer({"model": Bare, "base_channel": "bare"}))
    try:
        assert ids(check_models()) == ["rtbridge.E030"]
        with pytest.raises(ImproperlyConfigured, match="base_channel"):
            Bare.objects.create()
    finally:
        publishers.unregister(Bare)


def test_rtbridge_inner_class_names_the_rtbridge_spelling():
    with pytest.raises(ImproperlyConfigured) as info:
        build_config(Bare, publish_fields=["value"], base_channel="bare", serializer_clas="x")
    message = str(info.value)
    assert "base_channel (use channel = 'app_label.model_name')" in message
    assert "publish_fields (use fields = [...] here, or the serializer's Meta.fields" in message
    assert "serializer_clas (use serializer?)" in message


def test_a_model_naming_two_serializers():
    class Twice(rtbridge.SelfPublishModel, models.Model):
        serializer_class = "tests.testapp.serializers.TodoListSerializer"

        class RTBridge:
            serializer = "tests.testapp.serializers.TodoItemSerializer"

        class Meta:
            app_label = "testapp"

    try:
        errors = [e for e in check_models() if e.obj is Twice]
        assert ids(errors) == ["rtbridge.E007"]
        assert "only the second is used" in errors[0].msg
    finally:
        publishers.unregister(Twice)
        del apps.all_models["testapp"]["twice"]
        apps.clear_cache()


# Router attributes rtbridge never reads: rtbridge.E040-E044 -----------------------------------


@pytest.mark.parametrize("name", sorted(routers.FOREIGN_ATTRIBUTES))
def test_swampdragon_and_drf_router_attributes_are_refused(name, client, serve):
    router_class = serve(router(**{name: lambda self, **kwargs: None}))
    errors = router_class.check()
    assert ids(errors) == ["rtbridge.E040"]
    assert f"PortedRouter.{name} is SwampDragon's (or DRF's)" in errors[0].msg
    assert errors[0].hint == routers.FOREIGN_ATTRIBUTES[name] + "."
    status, body = post(client, "ported", "get_list", {})
    assert (status, body["error"]["code"]) == (500, "misconfigured")


def test_valid_verbs_says_which_verbs_to_exclude_and_mark():
    router_class = router(
        valid_verbs=["get_list", "get_single", "get_date"], get_date=lambda self, **kw: None
    )
    errors = router_class.check()
    assert ids(errors) == ["rtbridge.E040"]
    assert "exclude_verbs = ('create', 'delete', 'subscribe', 'update')" in errors[0].hint
    assert "mark get_date() with @rtbridge.verb" in errors[0].hint


def test_a_misspelt_router_option_but_not_an_own_constant():
    errors = router(paginate_bye=5, PAGE_TITLE="Todos").check()
    assert ids(errors) == ["rtbridge.E040"]
    assert (errors[0].msg, errors[0].hint) == (
        "PortedRouter.paginate_bye is not a router option; rtbridge never reads it.",
        "Did you mean 'paginate_by'?",
    )


@pytest.mark.parametrize(
    ("name", "function", "match"),
    [
        ("get_queryset", lambda self: None, "with the client's checked filters, and with none"),
        ("get_initial", lambda self, verb, **kwargs: {}, "for create only, without the client's"),
        ("updated", lambda self, obj, **kwargs: None, "passed updated_fields= and past_state="),
        ("deleted", lambda self, obj, obj_id, **kwargs: None, "SwampDragon passed obj_id too"),
    ],
)
def test_hooks_with_swampdragon_signatures(name, function, match):
    errors = router(**{name: function}).check()
    assert ids(errors) == ["rtbridge.E041"]
    assert match in errors[0].hint


def test_hooks_with_signatures_rtbridge_can_call_pass():
    assert (
        router(created=lambda self, obj, **kwargs: None, get_object=lambda self, id: None).check()
        == []
    )


class SwampLoginRequired:
    """A SwampDragon-style permission (test_permission / permission_failed)."""

    def test_permission(self, handler: Any, verb: str, **kwargs: Any) -> bool:
        return True

    def permission_failed(self, handler: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("permission", "match"),
    [
        (SwampLoginRequired(), "rename SwampDragon's test_permission(handler, verb, **kwargs)"),
        (IsAuthenticated, "is not DRF's has_permission(request, view)"),
    ],
)
def test_foreign_permissions(permission, match):
    errors = router(permission_classes=[permission]).check()
    assert ids(errors) == ["rtbridge.E042"]
    assert match in errors[0].hint


def test_a_verb_overridden_without_the_decorator():
    errors = router(get_list=lambda self, **filters: []).check()
    assert ids(errors) == ["rtbridge.E043"]
    assert "exclude_verbs = ('get_list',)" in errors[0].hint


def test_a_router_without_serializer():
    errors = type("Bare", (rtbridge.ModelRouter,), {"route_name": "x"}).check()
    assert ids(errors) == ["rtbridge.E044"]


# Errors reaching the page ---------------------------------------------------------------------


class RaisingRouter(rtbridge.BaseRouter):
    route_name = "ported"

    @rtbridge.verb
    def deny(self) -> None:
        raise PermissionDenied("Only the owner may.")

    @rtbridge.verb
    def missing(self) -> None:
        raise Http404("No such list.")

    @rtbridge.verb
    def invalid(self) -> None:
        raise ValidationError({"name": ["Too short."]})


@pytest.mark.parametrize(
    ("verb", "status", "error"),
    [
        ("deny", 403, {"code": "forbidden", "message": "Only the owner may."}),
        ("missing", 404, {"code": "not_found", "message": "No such list."}),
        (
            "invalid",
            422,
            {
                "code": "invalid",
                "message": "Some values are not valid: name: Too short.",
                "fields": {"name": ["Too short."]},
            },
        ),
    ],
)
def test_django_exceptions_in_a_verb_become_replies(serve, verb, status, error):
    serve(RaisingRouter)
    assert routers.call("ported", verb) == (status, {"error": error})


def test_an_unexpected_exception_names_the_call_and_only_with_debug_the_exception(settings):
    settings.DEBUG = False
    body = failure_body("todo-item", "update", KeyError("id"))
    assert body == {
        "error": {
            "code": "server_error",
            "message": "todo-item.update failed on the server; the server log has the traceback.",
        }
    }
    settings.DEBUG = True
    assert failure_body("todo-item", "update", KeyError("id"))["error"]["message"].endswith(
        "traceback. KeyError: 'id'"
    )


@pytest.mark.django_db(transaction=True)
async def test_over_the_socket_a_crashing_swampdragon_hook_names_the_call(serve, todo):
    from rtbridge.server import Server
    from tests.server.helpers import Client as SocketClient

    # SwampDragon's docs looked objects up by kwargs['pk']; rtbridge passes the client's id=.
    serve(router(get_object=lambda self, **kwargs: TodoItem.objects.get(pk=kwargs["pk"])))
    server = Server().start()
    try:
        client = await SocketClient.open(server.url)
        await client.send(
            {"op": "call", "id": 1, "route": "ported", "verb": "get_single", "args": {"id": 1}}
        )
        frame = await client.recv(timeout=10)
        while frame.get("id") != 1:
            frame = await client.recv(timeout=10)
        assert (frame["status"], frame["body"]["error"]["code"]) == (500, "server_error")
        assert frame["body"]["error"]["message"].startswith(
            "ported.get_single failed on the server"
        )
        await client.close()
    finally:
        server.stop()


# Migrations that import swampdragon: rtbridge.E050 ----------------------------------------------


def test_a_migration_importing_swampdragon(tmp_path: Path, settings, monkeypatch):
    package = tmp_path / "old_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "0001_initial.py").write_text(
        "import swampdragon.models\nfrom django.db import migrations, models\n"
    )
    (package / "0002_fixed.py").write_text("# was: import swampdragon.models\nimport rtbridge\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.MIGRATION_MODULES = {"testapp": "old_migrations"}
    errors = check_migrations(app_configs=[apps.get_app_config("testapp")])
    assert ids(errors) == ["rtbridge.E050"]
    assert "0001_initial.py imports swampdragon, which is not installed" in errors[0].msg
    settings.MIGRATION_MODULES = {}
    assert check_migrations() == []


def test_migration_bases_are_not_diffed_so_editing_them_needs_no_new_migration():
    # testapp's 0002 has the docs' fix applied: the mixin left out of bases=(...).
    call_command("makemigrations", "testapp", check=True, dry_run=True, verbosity=0)
