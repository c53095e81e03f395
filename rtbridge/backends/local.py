"""``local``: publish to the project's rtbridge server (development), in process or on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..exceptions import PublishError, ServerNotRunning
from ..loopback_wire import Revocation
from ..messages import Message
from ..server.registry import running_servers
from .base import BaseBackend, SelfHostedAuthMixin
from .loopback import send_to_servers
from .redis import client_config_for

__all__ = ["LocalBackend"]

NO_SERVER = (
    "RTBRIDGE_BACKEND='local' delivers to this project's rtbridge server, and none is running "
    "on this machine. Start one with `python manage.py runserver` (rtbridge listed before "
    "django.contrib.staticfiles in INSTALLED_APPS) or `python manage.py rtbridge_server "
    "--with-django`; processes of the project (shell, commands, workers) then publish to it. "
    "Across machines, set RTBRIDGE_BACKEND='redis' and run `python manage.py rtbridge_server` "
    "next to your Django processes."
)


class LocalBackend(SelfHostedAuthMixin, BaseBackend):
    """Deliver to the project's rtbridge servers: those in this process, else those on loopback.

    In process it is safe from any thread and never blocks: the hand-off goes through each
    server's event loop (``call_soon_threadsafe``), so Django request threads never touch the
    sockets. From another process (``manage.py shell``, a command, a worker) the messages go
    over the loopback channel (``rtbridge.loopback_wire``: 127.0.0.1, signed with
    ``SECRET_KEY``) to the servers found in the project's rendezvous directory. With no
    server anywhere, ``publish`` raises ``ServerNotRunning`` saying what to run.
    """

    alias = "local"
    max_payload_bytes = 512 * 1024

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)

    def publish(self, message: Message) -> None:
        """Deliver ``message`` to the subscribers of every server of the project."""
        self.publish_many([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages in order."""
        servers = running_servers()
        if not servers:
            if not send_to_servers(list(messages)):
                raise ServerNotRunning(NO_SERVER)
            return
        for message in messages:
            for server in servers:
                try:
                    server.publish(message)
                except RuntimeError as exc:  # the server's loop closed under us
                    raise PublishError(f"{NO_SERVER} ({exc})", retryable=True) from exc

    async def apublish(self, message: Message) -> None:
        """Deliver ``message``; without a thread when the server runs in this process."""
        await self.apublish_many([message])

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages in order; without a thread when the server is in process."""
        batch = list(messages)
        if running_servers():
            self.publish_many(batch)  # the in-process hand-off never blocks
        else:
            await super().apublish_many(batch)  # the loopback post blocks: in a thread

    def revoke(self, user_id: str, channel: str) -> None:
        """End ``user_id``'s subscriptions to ``channel`` and refuse its older tokens.

        Applies to every server running in this process (their in-memory revocation lists
        keep it for the token lifetime), else to the project's servers in other processes.
        """
        servers = running_servers()
        now = time.time()
        if not servers:
            if not send_to_servers(revocations=[Revocation(user_id, channel, now)]):
                raise ServerNotRunning(NO_SERVER)
            return
        for server in servers:
            server.revoke(user_id, channel, now)

    def client_config(self) -> dict[str, Any]:
        """Return ``{"backend": "local", "url": public_url or None, "path": ws path}``."""
        return client_config_for(self.alias)
