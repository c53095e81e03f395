"""The model mixin: created/updated/deleted on commit, filters, m2m, suppress, bulk helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

import rtbridge
from rtbridge import publishers
from rtbridge.testing import assert_published
from tests.testapp.models import Bare, Note, Tag, TodoItem, TodoList

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def outbox(rtbridge_outbox: list[Any]) -> list[Any]:
    return rtbridge_outbox


def events(box: list[Any]) -> list[tuple[str, tuple[str, ...]]]:
    return [(m.event, m.channels) for m in box]


def test_create_publishes_whole_object_on_collection_object_and_filter_channels(outbox):
    todo_list = TodoList.objects.create(name="Groceries")
    outbox.clear()
    item = TodoItem.objects.create(todo_list=todo_list, text="milk")
    assert events(outbox) == [
        (
            "created",
            (
                "testapp.todoitem",
                f"testapp.todoitem.{item.pk}",
                f"testapp.todoitem;todo_list_id={todo_list.pk}",
                f"testapp.todoitem;done=false;todo_list_id={todo_list.pk}",
            ),
        )
    ]
    assert outbox[0].data == {
        "id": item.pk,
        "todo_list_id": todo_list.pk,
        "text": "milk",
        "done": False,
        "tags": [],
        "due": None,
        "label": "milk",
    }


def test_update_publishes_changed_fields_only(outbox):
    item = TodoItem.objects.create(todo_list=TodoList.objects.create(name="a"), text="milk")
    outbox.clear()
    item.text = "oat milk"
    item.save()
    assert_published(
        f"testapp.todoitem.{item.pk}",
        "updated",
        {"id": item.pk, "text": "oat milk", "label": "oat milk"},
    )
    assert len(outbox) == 1


def test_save_without_changes_publishes_nothing(outbox):
    item = TodoItem.objects.create(todo_list=TodoList.objects.create(name="a"), text="milk")
    outbox.clear()
    item.save()
    TodoItem.objects.get(pk=item.pk).save()
    assert outbox == []


def test_loaded_object_compares_against_database_state(outbox):
    item = TodoItem.objects.create(todo_list=TodoList.objects.create(name="a"), text="milk")
    outbox.clear()
    fresh = TodoItem.objects.get(pk=item.pk)
    fresh.due = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)
    fresh.save()
    # The locmem outbox holds data as a client receives it: datetimes as ISO strings.
    assert_published(
        "testapp.todoitem",
        "updated",
        {"id": item.pk, "due": "2026-11-29T12:00:00Z", "label": "milk"},
    )


def test_update_fields_limits_what_counts_as_changed(outbox):
    item = TodoItem.objects.create(todo_list=TodoList.objects.create(name="a"), text="milk")
    outbox.clear()
    item.text = "bread"
    item.done = True
    item.save(update_fields=["done"])
    assert_published("testapp.todoitem", "updated", data_contains={"done": True})
    assert "text" not in outbox[0].data


def test_delete_publishes_id(outbox):
    item = TodoItem.objects.create(todo_list=TodoList.objects.create(name="a"), text="milk")
    pk = item.pk
    list_id = item.todo_list_id
    outbox.clear()
    item.delete()
    assert events(outbox) == [
        (
            "deleted",
            (
                "testapp.todoitem",
                f"testapp.todoitem.{pk}",
                f"testapp.todoitem;todo_list_id={list_id}",
                f"testapp.todoitem;done=false;todo_list_id={list_id}",
            ),
        )
    ]
    assert outbox[0].data == {"id": pk}


def test_cascade_delete_publishes_each_object(outbox):
    todo_list = TodoList.objects.create(name="a")
    TodoItem.objects.create(todo_list=todo_list, text="1")
    TodoItem.objects.create(todo_list=todo_list, text="2")
    outbox.clear()
    todo_list.delete()
    assert sorted(m.event for m in outbox) == ["deleted", "deleted", "deleted"]


def test_rolled_back_transaction_publishes_nothing(outbox):
    todo_list = TodoList.objects.create(name="a")
    outbox.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        TodoItem.objects.create(todo_list=todo_list, text="milk")
        raise RuntimeError("roll back")
    assert outbox == []
    assert TodoItem.objects.count() == 0


def test_publishes_only_after_commit(outbox):
    todo_list = TodoList.objects.create(name="a")
    outbox.clear()
    with transaction.atomic():
        TodoItem.objects.create(todo_list=todo_list, text="milk")
        assert outbox == []
    assert [m.event for m in outbox] == ["created"]


def test_filter_change_sends_left_to_old_channel_and_entered_to_new(outbox):
    first = TodoList.objects.create(name="first")
    second = TodoList.objects.create(name="second")
    item = TodoItem.objects.create(todo_list=first, text="milk")
    outbox.clear()
    item.todo_list = second
    item.save()
    by_event = {m.event: m for m in outbox}
    assert set(by_event) == {"updated", "left", "entered"}
    assert by_event["updated"].channels == ("testapp.todoitem", f"testapp.todoitem.{item.pk}")
    assert by_event["updated"].data == {"id": item.pk, "todo_list_id": second.pk, "label": "milk"}
    assert by_event["left"].channels == (
        f"testapp.todoitem;todo_list_id={first.pk}",
        f"testapp.todoitem;done=false;todo_list_id={first.pk}",
    )
    assert by_event["left"].data == {"id": item.pk}
    assert by_event["entered"].channels == (
        f"testapp.todoitem;todo_list_id={second.pk}",
        f"testapp.todoitem;done=false;todo_list_id={second.pk}",
    )
    assert by_event["entered"].data["text"] == "milk"


def test_change_of_one_field_in_a_filter_group(outbox):
    todo_list = TodoList.objects.create(name="a")
    item = TodoItem.objects.create(todo_list=todo_list, text="milk")
    outbox.clear()
    item.done = True
    item.save()
    by_event = {m.event: m.channels for m in outbox}
    # The single-field filter channel is unchanged and gets the update...
    assert f"testapp.todoitem;todo_list_id={todo_list.pk}" in by_event["updated"]
    # ...the (done, todo_list_id) group moved.
    assert by_event["left"] == (f"testapp.todoitem;done=false;todo_list_id={todo_list.pk}",)
    assert by_event["entered"] == (f"testapp.todoitem;done=true;todo_list_id={todo_list.pk}",)


def test_m2m_changes_publish_updated_from_both_sides(outbox):
    item = TodoItem.objects.create(todo_list=TodoList.objects.create(name="a"), text="milk")
    tag = Tag.objects.create(label="home")
    outbox.clear()
    item.tags.add(tag)
    assert_published(
        f"testapp.todoitem.{item.pk}", "updated", {"id": item.pk, "tags": [tag.pk], "label": "milk"}
    )
    outbox.clear()
    tag.items.remove(item)  # reverse side
    assert_published(f"testapp.todoitem.{item.pk}", "updated", data_contains={"tags": []})
    item.tags.add(tag)
    outbox.clear()
    tag.items.clear()  # reverse clear: pk_set is only known before the clear
    assert_published(f"testapp.todoitem.{item.pk}", "updated", data_contains={"tags": []})
    outbox.clear()
    item.tags.add(tag)
    outbox.clear()
    item.tags.clear()
    assert_published(f"testapp.todoitem.{item.pk}", "updated", data_contains={"tags": []})


def test_suppress_switches_publishing_off_for_a_block(outbox):
    todo_list = TodoList.objects.create(name="a")
    outbox.clear()
    with rtbridge.suppress():
        item = TodoItem.objects.create(todo_list=todo_list, text="quiet")
        item.text = "still quiet"
        item.save()
    assert outbox == []
    # The snapshot moved on inside the block: the next save compares against "still quiet".
    item.save()
    assert outbox == []
    item.done = True
    item.save()
    assert outbox[0].data == {"id": item.pk, "done": True, "label": "still quiet ✓"}


def test_publish_instances_after_queryset_update(outbox):
    todo_list = TodoList.objects.create(name="a")
    items = [TodoItem.objects.create(todo_list=todo_list, text=str(i)) for i in range(3)]
    outbox.clear()
    TodoItem.objects.filter(todo_list=todo_list).update(done=True)
    assert outbox == []  # QuerySet.update() sends no signals
    count = rtbridge.publish_instances(TodoItem.objects.filter(todo_list=todo_list))
    assert count == 3
    assert [m.data["done"] for m in outbox] == [True, True, True]
    assert {m.data["id"] for m in outbox} == {i.pk for i in items}


def test_publish_instances_after_bulk_create_inside_transaction(outbox):
    todo_list = TodoList.objects.create(name="a")
    outbox.clear()
    with transaction.atomic():
        created = TodoItem.objects.bulk_create(
            [TodoItem(todo_list=todo_list, text="x"), TodoItem(todo_list=todo_list, text="y")]
        )
        rtbridge.publish_instances(created, "created")
        assert outbox == []
    assert [m.event for m in outbox] == ["created", "created"]


def test_publish_instances_refuses_unknown_event_and_unpublished_models():
    with pytest.raises(ValueError, match=r"event='moved'"):
        rtbridge.publish_instances([], "moved")
    with pytest.raises(ImproperlyConfigured, match="testapp.Bare does not publish"):
        rtbridge.publish_instances([Bare.objects.create()])


def test_register_a_model_without_inheritance(outbox):
    rtbridge.register(Note, fields=["body"], filters=["owner"], object_channels=False)
    try:
        note = Note.objects.create(body="hi", owner="ann")
        assert events(outbox) == [("created", ("testapp.note", "testapp.note;owner=ann"))]
        assert outbox[0].data == {"id": note.pk, "body": "hi"}
    finally:
        rtbridge.unregister(Note)
    Note.objects.create(body="unpublished", owner="bob")
    assert len(outbox) == 1


def test_register_validates_options():
    with pytest.raises(ImproperlyConfigured, match="unknown option"):
        rtbridge.register(Bare, fields=["value"], serializer_klass=object)
    with pytest.raises(ImproperlyConfigured, match="'nope', which is not a concrete field"):
        rtbridge.register(Bare, fields=["value"], filters=["nope"])
    with pytest.raises(ImproperlyConfigured, match="is a string"):
        rtbridge.register(Bare, fields=["value"], filters="value")
    with pytest.raises(ImproperlyConfigured, match="events"):
        rtbridge.register(Bare, fields=["value"], events=["moved"])
    assert publishers.get_config(Bare) is None


def test_oversize_object_is_published_as_refetch(settings, outbox):
    settings.RTBRIDGE_OPTIONS = {"max_payload_bytes": 200}
    todo_list = TodoList.objects.create(name="a")
    outbox.clear()
    item = TodoItem.objects.create(todo_list=todo_list, text="x" * 190)
    assert_published(f"testapp.todoitem.{item.pk}", "refetch", {"id": item.pk, "event": "created"})


def test_publish_failure_after_commit_is_logged_not_raised(settings, caplog):
    settings.RTBRIDGE_BACKEND = "tests.test_models.FailingBackend"
    TodoList.objects.create(name="saved anyway")
    assert TodoList.objects.filter(name="saved anyway").exists()
    assert "publishing 1 model change message(s) failed after commit" in caplog.text


def test_raw_saves_from_fixtures_do_not_publish(outbox):
    todo_list = TodoList(name="fixture")
    publishers._on_post_save(TodoList, todo_list, created=True, raw=True)
    assert outbox == []


class FailingBackend(rtbridge.get_backend().__class__.__mro__[-2]):  # BaseBackend
    def publish(self, message: Any) -> None:
        raise rtbridge.PublishError("transport down", retryable=True)


def test_historical_models_from_migrations_never_publish():
    from django.db.migrations.loader import MigrationLoader

    state = MigrationLoader(None, ignore_no_migrations=True).project_state()
    state.apps.get_model("testapp", "TodoItem")  # builds the "__fake__" historical models
    assert all(m.__module__ != "__fake__" for m in publishers.registered_models())


def test_runs_on_the_requested_database():
    import os

    from django.db import connection

    expected = "postgresql" if os.environ.get("RTBRIDGE_TEST_DB") == "postgres" else "sqlite"
    assert connection.vendor == expected
