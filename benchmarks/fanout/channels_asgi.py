"""The Django Channels side of the fan-out benchmark: one group-broadcast consumer.

Run: ``DJANGO_SETTINGS_MODULE=benchmarks.fanout.channels_settings
daphne -b 127.0.0.1 -p 8001 benchmarks.fanout.channels_asgi:application``.
A socket at ``/ws/`` joins the group ``bench`` (``groups``, before ``connect()``), and every
``group_send("bench", {"type": "bench.message", "text": ...})`` reaches it as a text frame.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.channels_settings")

from django.core.asgi import get_asgi_application

django_asgi = get_asgi_application()  # sets Django up before the consumer imports

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path

GROUP = "bench"


class BroadcastConsumer(AsyncWebsocketConsumer):
    """Join ``GROUP`` on connect and forward each group message as it is."""

    groups = [GROUP]

    async def bench_message(self, event: dict[str, str]) -> None:
        """Send the published text to this socket."""
        await self.send(text_data=event["text"])


urlpatterns: list[object] = []

application = ProtocolTypeRouter(
    {
        "http": django_asgi,
        "websocket": URLRouter([path("ws/", BroadcastConsumer.as_asgi())]),
    }
)
