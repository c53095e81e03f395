"""``local``: publish into the rtbridge server running in this process (development)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..exceptions import PublishError
from ..messages import Message
from ..server.registry import running_servers
from .base import BaseBackend, SelfHostedAuthMixin
from .redis import client_config_for

__all__ = ["LocalBackend"]

NO_SERVER = (
    "RTBRIDGE_BACKEND='local' delivers to the rtbridge server running in this same process, "
    "and none is running here. Run the site with `python manage.py rtbridge_server "
    "--with-django` (Django and the sockets in one process), or set RTBRIDGE_BACKEND='redis' "
    "and run `python manage.py rtbridge_server` next to your Django processes."
)


class LocalBackend(SelfHostedAuthMixin, BaseBackend):
    """Hand each message to the hub of every server running in this process.

    Safe from any thread and never blocks: the hand-off goes through each server's event
    loop (``call_soon_threadsafe``), so Django request threads never touch the sockets. With
    no server in this process, ``publish`` raises ``PublishError`` saying what to run instead.
    """

    alias = "local"
    max_payload_bytes = 512 * 1024

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)

    def publish(self, message: Message) -> None:
        """Deliver ``message`` to the subscribers of every server running in this process."""
        self.publish_many([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages in order."""
        servers = running_servers()
        if not servers:
            raise PublishError(NO_SERVER, retryable=False)
        for message in messages:
            for server in servers:
                try:
                    server.publish(message)
                except RuntimeError as exc:  # the server's loop closed under us
                    raise PublishError(f"{NO_SERVER} ({exc})", retryable=True) from exc

    async def apublish(self, message: Message) -> None:
        """Deliver ``message`` without a thread (the hand-off never blocks)."""
        self.publish_many([message])

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages in order, without a thread."""
        self.publish_many(messages)

    def revoke(self, user_id: str, channel: str) -> None:
        """End ``user_id``'s subscriptions to ``channel`` and refuse its older tokens.

        Applies to every server running in this process (their in-memory revocation lists
        keep it for the token lifetime). Never blocks.
        """
        servers = running_servers()
        if not servers:
            raise PublishError(NO_SERVER, retryable=False)
        now = time.time()
        for server in servers:
            server.revoke(user_id, channel, now)

    def client_config(self) -> dict[str, Any]:
        """Return ``{"backend": "local", "url": public_url or None, "path": ws path}``."""
        return client_config_for(self.alias)
