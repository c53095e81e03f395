"""The DjangoCon 2015 talk's todo app, ported from SwampDragon by following docs/migrating.md.

What a migrant keeps is kept on purpose: ``Meta.publish_fields`` (an alias of ``fields``),
``update_fields``, ``model`` on the router and SwampDragon's ``get_object(**kwargs)``. What had to
change: ``get_query_set(**kwargs)`` (which read the client's ``list_id``) became
``get_queryset(**filters)``, and the client sends the declared filter ``todo_list_id``. Not
auto-registered (the module is not named ``routers``): tests register the routers they need.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

import rtbridge

from .models import TodoItem, TodoList


class TalkTodoListSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = "testapp.TodoList"
        publish_fields = ("name", "description")


class TalkTodoItemSerializer(rtbridge.ModelSerializer):
    class Meta:
        model = "testapp.TodoItem"
        publish_fields = ("todo_list", "done", "text")
        update_fields = ("done",)


class TalkTodoListRouter(rtbridge.ModelRouter):
    route_name = "talk-todo-list"
    serializer_class = TalkTodoListSerializer
    model = TodoList

    def get_object(self, **kwargs: Any) -> TodoList:
        return self.model.objects.get(pk=kwargs["id"])

    def get_queryset(self, **filters: Any) -> QuerySet[TodoList]:
        return self.model.objects.filter(**filters)


class TalkTodoItemRouter(rtbridge.ModelRouter):
    route_name = "talk-todo-item"
    serializer_class = TalkTodoItemSerializer
    model = TodoItem
    filter_fields = ("todo_list_id",)

    def get_object(self, **kwargs: Any) -> TodoItem:
        return self.model.objects.get(pk=kwargs["id"])

    def get_queryset(self, **filters: Any) -> QuerySet[TodoItem]:
        return self.model.objects.filter(**filters)


ROUTERS = (TalkTodoListRouter, TalkTodoItemRouter)
