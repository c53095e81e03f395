"""Models for the test suite: the talk's todo app plus corner cases."""

from __future__ import annotations

from django.db import models

import rtbridge


class TodoList(rtbridge.SelfPublishModel, models.Model):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.CASCADE, related_name="todo_lists"
    )

    class RTBridge:
        serializer = "tests.testapp.serializers.TodoListSerializer"


class Tag(models.Model):
    label = models.CharField(max_length=50)


class TodoItem(rtbridge.SelfPublishModel, models.Model):
    todo_list = models.ForeignKey(TodoList, on_delete=models.CASCADE, related_name="items")
    text = models.CharField(max_length=200)
    done = models.BooleanField(default=False)
    tags = models.ManyToManyField(Tag, blank=True, related_name="items")
    due = models.DateTimeField(null=True, blank=True)

    class RTBridge:
        serializer = "tests.testapp.serializers.TodoItemSerializer"
        filters = ["todo_list__id", ("todo_list_id", "done")]


class Note(models.Model):
    """A model that cannot be edited: published through rtbridge.register()."""

    body = models.TextField()
    owner = models.CharField(max_length=50)


class Bare(models.Model):
    """No publishing unless a test registers it."""

    value = models.IntegerField(default=0)


def can_read_documents(user: object, values: dict[str, str]) -> bool:
    """Only the owner may follow their documents (collection channel: nobody)."""
    username = getattr(user, "username", None)
    return bool(username) and values.get("owner") == username


class Document(rtbridge.SelfPublishModel, models.Model):
    """A model whose channels are private, authorized by its RTBridge.authorize hook."""

    owner = models.CharField(max_length=50)
    title = models.CharField(max_length=100)

    class RTBridge:
        fields = ["owner", "title"]
        filters = ["owner"]
        authorize = can_read_documents
