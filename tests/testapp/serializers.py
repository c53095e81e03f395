"""Serializers for the test models."""

from __future__ import annotations

from typing import Any

import rtbridge


class TodoListSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = "testapp.TodoList"
        fields = ["name", "description"]
        update_fields = ["name"]


class TodoItemSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = "testapp.TodoItem"
        fields = ["todo_list_id", "text", "done", "tags", "due"]
        update_fields = ["text", "done"]

    def serialize_label(self, obj: Any) -> str:
        return f"{obj.text}{' ✓' if obj.done else ''}"


class NestedItemSerializer(rtbridge.ModelSerializer):
    todo_list = TodoListSerializer()

    class Meta:
        model = "testapp.TodoItem"
        fields = ["todo_list", "text"]


class ItemRouterSerializer(TodoItemSerializer):
    """What the todo-item router lets clients write: move between lists too."""

    class Meta:
        model = "testapp.TodoItem"
        fields = ["todo_list_id", "text", "done", "tags", "due"]
        update_fields = ["text", "done", "todo_list_id"]
        create_fields = ["todo_list_id", "text", "done"]
