"""Server logs: the JSON line format, and rate-limited warnings about hostile clients."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

__all__ = ["FIELDS", "HostileWarnings", "JsonFormatter", "event"]

#: The keys of every JSON log line, always present (``null`` when a line has no such value).
FIELDS = ("time", "level", "logger", "event", "message", "socket_id", "channel", "code", "peer")
_CONTEXT = ("event", "socket_id", "channel", "code", "peer")


def event(name: str, **context: Any) -> dict[str, Any]:
    """Return the ``extra`` of a log call: a stable ``event`` name and its context.

    ``logger.info("...", extra=event("socket.closed", socket_id=..., code=1000, peer=...))``;
    the text format ignores it, the JSON format writes each key.
    """
    return {"event": name, **context}


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the keys of :data:`FIELDS` (and ``exc`` on errors).

    ``event`` is a stable name (``socket.opened``, ``frame.hostile``, ``broker.reconnected``…)
    for lines logged with :func:`event`, else ``"log"``; ``message`` is the text line.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
        }
        for key in _CONTEXT:
            line[key] = getattr(record, key, None)
        if line["event"] is None:
            line["event"] = "log"
        line["message"] = record.getMessage()
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        ordered = {key: line[key] for key in FIELDS}
        if "exc" in line:
            ordered["exc"] = line["exc"]
        return json.dumps(ordered, ensure_ascii=False, default=str)


class HostileWarnings:
    """At most one WARNING per abusive connection, and at most ``per_minute`` of them per node.

    Each ``Server`` has one.

    Hostile frames are cheap to send; their log lines must not be. Each connection is
    logged the first time only (the caller keeps the flag), and beyond ``per_minute`` lines
    a minute the rest are counted and reported in the next line that gets through.
    """

    def __init__(self, logger: logging.Logger, per_minute: int = 10) -> None:
        self.logger = logger
        self.per_minute = per_minute
        self._window_start = time.monotonic()
        self._logged = 0
        self._suppressed = 0

    def warn(self, message: str, *, code: int, socket_id: str | None, peer: str) -> None:
        """Log ``message`` at WARNING unless this minute's budget is spent (then count it)."""
        now = time.monotonic()
        if now - self._window_start >= 60.0:
            self._window_start, self._logged = now, 0
        if self._logged >= self.per_minute:
            self._suppressed += 1
            return
        self._logged += 1
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += f" ({suppressed} similar warning(s) suppressed in the last minute)"
        self.logger.warning(
            "rtbridge: %s",
            message,
            extra=event("frame.hostile", socket_id=socket_id, code=code, peer=peer),
        )
