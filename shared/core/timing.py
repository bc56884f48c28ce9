"""The system's clock (a ``Clock``, shared/core/ports.py), and a send's time budget measured on any
clock.

Everything whose outcome depends on time takes a ``Clock``: the records' timestamps and leases,
the polling of a publish in flight, the deadlines of a send. In production it is this module's
``SystemClock``; tests give a clock they move by hand, so that "the answer came after the budget"
or "the lease lapsed" happens exactly when a test says, with no sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from shared.core.ports import Cancellable, Clock


class SystemClock:
    """Wall time and asyncio's timers."""

    def time(self) -> float:
        return time.time()

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Cancellable:
        return asyncio.get_running_loop().call_later(seconds, callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(seconds)


SYSTEM_CLOCK = SystemClock()


class Deadline:
    """One send's time budget, started when the send starts (its first ``wait``)."""

    __slots__ = ("_at", "_clock", "seconds")

    def __init__(self, seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at: float | None = None

    def remaining(self) -> float:
        if self._at is None:
            return self.seconds
        return max(0.0, self._at - self._clock.time())

    async def wait(self, work: asyncio.Future[Any]) -> None:
        """Wait for ``work`` until the deadline; TimeoutError after it. ``work`` is never
        cancelled, not even when the waiting is (as ``asyncio.shield``): it goes on either way.

        One future and one timer, rather than ``asyncio.timeout`` over ``asyncio.shield`` (two
        futures, a timeout context and its rescheduling): this runs once per event."""
        if self._at is None:
            self._at = self._clock.time() + self.seconds
        if not work.done():
            woken = asyncio.get_running_loop().create_future()

            def wake(_: object = None) -> None:
                if not woken.done():
                    woken.set_result(None)

            timer = self._clock.call_later(self._at - self._clock.time(), wake)
            work.add_done_callback(wake)
            try:
                await woken
            finally:
                timer.cancel()
                work.remove_done_callback(wake)
            if not work.done():
                raise TimeoutError
        work.result()  # the send's own error, if it failed
