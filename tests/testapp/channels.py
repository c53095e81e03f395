"""Channel authorization rules of the test app (auto-discovered by rtbridge)."""

from __future__ import annotations

from typing import Any

import rtbridge

from .models import TodoList


@rtbridge.channel("private-testapp.todolist.{pk}")
def can_read_list(user: Any, pk: str) -> bool:
    return (
        user.is_authenticated
        and TodoList.objects.filter(pk=pk, name__startswith=user.username).exists()
    )


@rtbridge.channel("presence-testapp.todoitem.{pk}")
def editors(user: Any, pk: str) -> dict[str, Any] | None:
    if not user.is_authenticated:
        return None
    return {"id": user.pk, "name": user.username}


@rtbridge.channel("private-rooms.{room}.secret")
def broken_rule(user: Any, room: str) -> str:
    return "yes"  # not True: refused (only True grants)
