"""The board's data routes: ``todo-list`` and ``todo-item`` (a shared board: everyone sees all)."""

from __future__ import annotations

import rtbridge

from .models import TodoItem, TodoList
from .serializers import TodoItemSerializer, TodoListSerializer

WRITES = ["create", "update", "delete"]


class TodoListRouter(rtbridge.ModelRouter):
    """Lists: anyone may read, logged-in users may add, rename and delete."""

    route_name = "todo-list"
    model = TodoList
    serializer_class = TodoListSerializer
    permission_classes = [rtbridge.LoginRequired(verbs=WRITES)]


class TodoItemRouter(rtbridge.ModelRouter):
    """Items, filtered by ``todo_list_id``; logged-in users may add, edit, move and delete."""

    route_name = "todo-item"
    model = TodoItem
    serializer_class = TodoItemSerializer
    permission_classes = [rtbridge.LoginRequired(verbs=WRITES)]
