"""What the pages receive of lists and items, and what they may write."""

from __future__ import annotations

import rtbridge


class TodoListSerializer(rtbridge.ModelSerializer):
    """A list: ``id`` and ``name`` (renamable)."""

    class Meta:
        model = "todo.TodoList"
        fields = ["name"]
        update_fields = ["name"]


class TodoItemSerializer(rtbridge.ModelSerializer):
    """An item: its list, text and done flag, all writable (writing ``todo_list_id`` moves it)."""

    class Meta:
        model = "todo.TodoItem"
        fields = ["todo_list_id", "text", "done"]
        update_fields = ["todo_list_id", "text", "done"]
        create_fields = ["todo_list_id", "text"]
