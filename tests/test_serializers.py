"""Serializers: fields, computed fields, FK ids, nesting, the write whitelist, DRF."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from rest_framework import serializers as drf

import rtbridge
from rtbridge.serializers import as_serializer
from tests.testapp.models import Tag, TodoItem, TodoList
from tests.testapp.serializers import NestedItemSerializer, TodoItemSerializer, TodoListSerializer

pytestmark = pytest.mark.django_db


@pytest.fixture
def item() -> TodoItem:
    with rtbridge.suppress():
        todo_list = TodoList.objects.create(name="Groceries", description="weekly")
        item = TodoItem.objects.create(todo_list=todo_list, text="milk")
        item.tags.add(Tag.objects.create(label="home"))
    return item


def test_fields_fk_ids_m2m_and_computed(item):
    data = TodoItemSerializer().serialize(item)
    assert data == {
        "id": item.pk,
        "todo_list_id": item.todo_list_id,
        "text": "milk",
        "done": False,
        "tags": [item.tags.get().pk],
        "due": None,
        "label": "milk",
    }


def test_all_fields_and_exclude(item):
    class AllSerializer(rtbridge.ModelSerializer):
        class Meta:
            model = TodoItem
            exclude = ["due", "tags"]

    assert set(AllSerializer().serialize(item)) == {"id", "todo_list_id", "text", "done"}


def test_nested_serializer(item):
    assert NestedItemSerializer().serialize(item) == {
        "id": item.pk,
        "todo_list": {"id": item.todo_list_id, "name": "Groceries", "description": "weekly"},
        "text": "milk",
    }


def test_serialize_changed_keeps_id_and_computed(item):
    data = TodoItemSerializer().serialize_changed(item, {"done"})
    assert data == {"id": item.pk, "done": False, "label": "milk"}
    nested = NestedItemSerializer().serialize_changed(item, {"todo_list_id"})
    assert set(nested) == {"id", "todo_list"}


def test_apply_honours_update_fields_and_reports_each_field(item):
    serializer = TodoItemSerializer()
    assert serializer.apply(item, {"id": 99, "text": "bread", "done": True}) == ["text", "done"]
    assert (item.text, item.done) == ("bread", True)
    with pytest.raises(ValidationError) as info:
        serializer.apply(item, {"todo_lst_id": 5, "text": "x" * 300, "done": "maybe"})
    errors = info.value.message_dict
    assert set(errors) == {"todo_lst_id", "text", "done"}
    assert (
        "'todo_lst_id' is not a field of this object; writable fields: done, text"
        in (errors["todo_lst_id"][0])
    )
    assert "at most 200 characters" in errors["text"][0]
    assert item.text == "bread"  # nothing applied when anything is wrong


def test_apply_skips_published_read_only_keys_so_a_whole_object_can_come_back(item):
    serializer = TodoItemSerializer()
    whole = {**serializer.serialize(item), "done": True, "todo_list_id": 12345, "label": "x"}
    assert serializer.read_only_keys(whole) == ["todo_list_id", "tags", "due", "label"]
    assert serializer.apply(item, whole) == ["text", "done"]
    assert item.done is True
    assert item.todo_list_id != 12345  # the read-only key was not written


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ({"model": TodoItem, "fields": ["nope"]}, "names 'nope', which is not a field"),
        ({"model": "testapp.Nope"}, "does not name an installed model"),
        ({"model": TodoList, "fields": ["items"]}, "a reverse relation"),
        (
            {"model": TodoList, "fields": ["name"], "update_fields": ["description"]},
            "not a serialized field",
        ),
    ],
)
def test_configuration_errors(meta, match):
    serializer_class = type("Bad", (rtbridge.ModelSerializer,), {"Meta": type("Meta", (), meta)})
    with pytest.raises(ImproperlyConfigured, match=match):
        serializer_class().serialize(TodoList(pk=1))


def test_string_fields_is_the_classic_tuple_bug():
    with pytest.raises(ImproperlyConfigured, match=r"fields = 'name' is a string; give a list"):
        type("Bad", (rtbridge.ModelSerializer,), {"Meta": type("Meta", (), {"fields": ("name")})})


def test_drf_serializer_is_accepted(item):
    class ItemDRF(drf.ModelSerializer):
        class Meta:
            model = TodoItem
            fields = ["id", "text"]

    assert as_serializer(ItemDRF)(item) == {"id": item.pk, "text": "milk"}
    assert (
        as_serializer("tests.testapp.serializers.TodoListSerializer")(item.todo_list)["name"]
        == "Groceries"
    )
    with pytest.raises(ImproperlyConfigured, match="is not a serializer"):
        as_serializer(object())
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        as_serializer("nope.Nope")


def test_update_fields_property():
    assert TodoListSerializer().update_fields == ("name",)
