"""Stopping background tasks for good, even when a cancellation was swallowed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]

logger = logging.getLogger("rtbridge.server")


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], attempts: int = 10) -> None:
    """Cancel ``tasks`` and wait until they are done, cancelling again when one goes on.

    A cancellation can be lost on Python 3.11 (``asyncio.wait_for`` swallows it when the
    awaited call finishes at the same moment, e.g. inside redis-py), and a task looping over
    such a call then runs on: awaiting it once would hang the shutdown for good.
    """
    pending = [task for task in tasks if not task.done()]
    for _ in range(attempts):
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.5)
        pending = [task for task in pending if not task.done()]
    for task in pending:
        logger.warning("rtbridge: task %s did not stop after %d cancellations", task, attempts)
