"""The tables of the ``"database"`` history store: one position row per channel, its messages."""

from __future__ import annotations

from django.db import models

__all__ = ["HistoryChannel", "HistoryMessage"]


class HistoryChannel(models.Model):
    """One channel's position: its epoch and the last offset given out.

    Publishers lock this row (``select_for_update``) to take the next offsets, so offsets stay
    contiguous across processes. A row untouched for ``RTBRIDGE_HISTORY["ttl"]`` seconds is
    expired: the next publish or read starts it again at offset 0 with a new epoch.
    """

    channel = models.CharField(max_length=200, unique=True)
    epoch = models.CharField(max_length=64)
    last_offset = models.BigIntegerField(default=0)
    #: The last publish (or when the position was created or renewed).
    touched_at = models.DateTimeField()

    class Meta:
        db_table = "rtbridge_history_channel"
        verbose_name = "history channel"

    def __str__(self) -> str:
        return f"{self.channel} @ {self.last_offset} ({self.epoch})"


class HistoryMessage(models.Model):
    """One published message at one offset of one channel; ``payload`` is its data as JSON."""

    # No index of its own: the (channel, offset) constraint below starts with it.
    channel = models.ForeignKey(
        HistoryChannel, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    offset = models.BigIntegerField()
    event = models.CharField(max_length=64)
    payload = models.TextField()
    #: The socket id the message was not for, or "" (socket ids are never empty).
    exclude = models.CharField(max_length=100, blank=True, default="")
    published_at = models.DateTimeField()

    class Meta:
        db_table = "rtbridge_history_message"
        verbose_name = "history message"
        constraints = [
            # Also the index of reads and size trims: (channel, offset) ranges.
            models.UniqueConstraint(
                fields=["channel", "offset"], name="rtbridge_history_channel_offset"
            ),
        ]
        # Age trims: (channel, published_at) ranges, and the sweep of quiet channels.
        indexes = [
            models.Index(fields=["channel", "published_at"], name="rtbridge_history_age"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}#{self.offset} {self.event}"
