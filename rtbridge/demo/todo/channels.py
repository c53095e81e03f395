"""Presence rules: who is editing an item, and who has the board open."""

from __future__ import annotations

from typing import Any

import rtbridge


def member_info(user: Any) -> dict[str, Any] | None:
    """Return what other pages see of ``user`` (None refuses anonymous visitors)."""
    if not user.is_authenticated:
        return None
    return {"id": user.pk, "name": user.get_full_name() or user.get_username()}


@rtbridge.channel("presence-todo.todoitem.{pk}")
def item_editors(user: Any, pk: str) -> dict[str, Any] | None:
    """Let logged-in users join an item's presence channel while they edit it."""
    return member_info(user)


@rtbridge.channel("presence-todo.board")
def board_viewers(user: Any) -> dict[str, Any] | None:
    """Let logged-in users show that they have the board open."""
    return member_info(user)
