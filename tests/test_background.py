"""How our background tasks sleep and end: a wake and a cancellation arriving together must end the task."""

from __future__ import annotations

import asyncio
import time

from conftest import run
from registry.background import cancel_and_wait, wait_or_wake


def test_a_task_woken_and_cancelled_in_the_same_pass_ends() -> None:
    # asyncio.wait_for on Python 3.11 returned normally here and lost the
    # cancellation: the maintenance scheduler's stop() then waited a minute.
    async def scenario() -> float:
        wake = asyncio.Event()

        async def sleeper() -> None:
            while True:
                await wait_or_wake(wake, 60)

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0.01)
        began = time.monotonic()
        wake.set()
        await cancel_and_wait(task)
        assert task.cancelled()
        return time.monotonic() - began

    assert run(scenario(), timeout=10) < 5


def test_wait_or_wake_returns_at_the_wake_or_the_time_and_clears_the_event() -> None:
    async def scenario() -> None:
        wake = asyncio.Event()
        began = time.monotonic()
        await wait_or_wake(wake, 0.05)
        assert 0.04 < time.monotonic() - began < 5
        asyncio.get_running_loop().call_later(0.01, wake.set)
        began = time.monotonic()
        await wait_or_wake(wake, 60)
        assert time.monotonic() - began < 5 and not wake.is_set()

    run(scenario())
