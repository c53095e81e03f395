"""Todo lists and their items; every save and delete is published to the open pages."""

from __future__ import annotations

from django.db import models

import rtbridge


class TodoList(rtbridge.SelfPublishModel, models.Model):
    """A list: one column of the board."""

    name = models.CharField(max_length=80)

    class Meta:
        ordering = ["id"]

    class RTBridge:
        serializer = "rtbridge.demo.todo.serializers.TodoListSerializer"

    def __str__(self) -> str:
        return self.name


class TodoItem(rtbridge.SelfPublishModel, models.Model):
    """An item of a list; moving it changes ``todo_list`` (``left``/``entered`` events)."""

    todo_list = models.ForeignKey(TodoList, on_delete=models.CASCADE, related_name="items")
    text = models.CharField(max_length=200)
    done = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    class RTBridge:
        serializer = "rtbridge.demo.todo.serializers.TodoItemSerializer"
        # Each column follows todo.todoitem;todo_list_id=<its id>.
        filters = ["todo_list_id"]

    def __str__(self) -> str:
        return self.text
