"""rtbridge: real-time pages for Django over one publish API and one JavaScript client."""

from __future__ import annotations

from .auth import channel
from .backends.locmem import outbox  # locmem's messages, in order (like mail.outbox)
from .exceptions import InvalidMessage, PublishError
from .messages import Message
from .publishers import (
    SelfPublishModel,
    apublish,
    flush,
    get_backend,
    publish,
    publish_instances,
    register,
    revoke,
    suppress,
    unregister,
)
from .routers import BaseRouter, LoginRequired, ModelRouter, Permission, verb
from .serializers import ModelSerializer

__version__ = "0.1.0.dev0"

__all__ = [
    "BaseRouter",
    "InvalidMessage",
    "LoginRequired",
    "Message",
    "ModelRouter",
    "ModelSerializer",
    "Permission",
    "PublishError",
    "SelfPublishModel",
    "__version__",
    "apublish",
    "channel",
    "flush",
    "get_backend",
    "outbox",
    "publish",
    "publish_instances",
    "register",
    "revoke",
    "suppress",
    "unregister",
    "verb",
]
