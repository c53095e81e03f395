"""The two demo users and the sample list, created on the demo's first start."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

import rtbridge

from .models import TodoItem, TodoList


@dataclass(frozen=True)
class DemoUser:
    """A demo account; the password is shown on the login page on purpose."""

    username: str
    password: str
    first_name: str


DEMO_USERS = (
    DemoUser("ann", "ann-demo", "Ann"),
    DemoUser("ben", "ben-demo", "Ben"),
)

SAMPLE_LISTS = {
    "Groceries": ["Milk", "Bread", "Coffee beans"],
    "This week": ["Book the train", "Call the plumber"],
    "Done soon": [],
}


def ensure_demo_data() -> bool:
    """Create the demo users (resetting their passwords) and, on a new board, the sample lists.

    Return True when the sample lists were created (the first start).
    """
    User = get_user_model()
    # Nothing runs a socket server yet: keep the first start from publishing into nowhere.
    with transaction.atomic(), rtbridge.suppress():
        for demo in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=demo.username, defaults={"first_name": demo.first_name}
            )
            if not user.check_password(demo.password):
                user.set_password(demo.password)
                user.save()
        if TodoList._default_manager.exists():
            return False
        for name, texts in SAMPLE_LISTS.items():
            todo_list = TodoList._default_manager.create(name=name)
            TodoItem._default_manager.bulk_create(
                TodoItem(todo_list=todo_list, text=t) for t in texts
            )
        return True
