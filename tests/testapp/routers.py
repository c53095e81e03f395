"""Routers of the test app (auto-discovered by rtbridge)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

import rtbridge

from .models import TodoItem, TodoList
from .serializers import ItemRouterSerializer, TodoListSerializer


class TodoItemRouter(rtbridge.ModelRouter):
    route_name = "todo-item"
    serializer_class = ItemRouterSerializer
    permission_classes = [rtbridge.LoginRequired]
    paginate_by = 5
    max_page_size = 20

    def get_queryset(self, **filters: Any) -> QuerySet[TodoItem]:
        return TodoItem.objects.filter(todo_list__owner=self.user, **filters)

    @rtbridge.verb
    def clear_done(self, todo_list_id: int) -> dict[str, int]:
        deleted = 0
        for item in self.get_queryset(todo_list_id=todo_list_id, done=True):
            item.delete()
            deleted += 1
        return {"deleted": deleted}


class TodoListRouter(rtbridge.ModelRouter):
    route_name = "todo-list"
    serializer_class = TodoListSerializer
    permission_classes = [rtbridge.LoginRequired(verbs=["create", "update", "delete"])]
    exclude_verbs = ("delete",)

    def get_queryset(self, **filters: Any) -> QuerySet[TodoList]:
        return TodoList.objects.filter(**filters)

    def get_initial(self, verb_name: str) -> dict[str, Any]:
        return {"owner": self.user}
