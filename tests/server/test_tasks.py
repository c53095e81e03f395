"""``cancel_and_wait``: a task that swallowed one cancellation is still stopped."""

from __future__ import annotations

import asyncio

from rtbridge.server.tasks import cancel_and_wait


async def test_a_swallowed_cancellation_is_repeated() -> None:
    # What Python 3.11's wait_for can do inside a refresh loop: the first cancel is lost.
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    assert task.cancelled() and swallowed == 2


async def test_finished_tasks_are_left_alone() -> None:
    done = asyncio.ensure_future(asyncio.sleep(0))
    await done
    await cancel_and_wait([done])
    assert done.done() and not done.cancelled()
