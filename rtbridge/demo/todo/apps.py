"""The todo app's config: label ``todo``, so its channels are ``todo.todoitem`` and so on."""

from __future__ import annotations

from django.apps import AppConfig


class TodoConfig(AppConfig):
    """The demo's todo app."""

    name = "rtbridge.demo.todo"
    label = "todo"
    verbose_name = "rtbridge demo: todo"
    default_auto_field = "django.db.models.BigAutoField"
