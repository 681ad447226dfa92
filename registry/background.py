"""How a background task of ours ends (cancelled, then waited for, whatever it raised), and how it sleeps.

Every long-lived task (the node monitor, the orphan reaper, the HTTP guard's sweeper,
TTL expiry) has one owner that starts it and stops it through here, so that `stop()`
returns only once the task is gone and never re-raises what ended it.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel each task given (None: nothing was started) and wait until all have ended."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)


async def wait_or_wake(wake: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `wake` is set meanwhile; `wake` is clear again after.

    asyncio.timeout, not wait_for: on Python 3.11, wait_for returns normally when the
    event is set in the same pass as the task is cancelled, and the cancellation is
    lost (the task's owner then waits for it in `stop()` until its next wake).
    """
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await wake.wait()
    except TimeoutError:
        pass
    wake.clear()
