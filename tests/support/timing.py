"""A ``Clock`` (shared/core/ports.py) that a test moves by hand: ``advance(seconds)`` runs every
timer due by then, in order, so that timeouts, polls and leases happen exactly when the test says,
without sleeping. The event loop still has to run for the woken tasks to go on."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType


class _Timer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], object]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, seconds: float, callback: Callable[[], object]) -> _Timer:
        timer = _Timer(callback)
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, lambda: woken.done() or woken.set_result(None))
        try:
            await woken
        finally:
            timer.cancel()

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return _Timeout(self, seconds)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, running the timers due on the way."""
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled:
                timer.callback()
        self.now = until

    @property
    def next_timer(self) -> float | None:
        """When the next timer that is not cancelled is due."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None


class _Timeout:
    """asyncio.timeout, fired by the manual clock: an ``asyncio.Timeout`` with no deadline,
    rescheduled to "now" when the manual time comes."""

    def __init__(self, clock: ManualClock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._scope = asyncio.timeout(None)
        self._timer: _Timer | None = None

    async def __aenter__(self) -> None:
        await self._scope.__aenter__()
        loop = asyncio.get_running_loop()
        # the clock may be moved from outside the loop: the timeout fires on the loop's next turn
        self._timer = self._clock.call_later(
            self._seconds, lambda: loop.call_soon(self._fire, loop)
        )

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None and not self._timer.cancelled:
            self._scope.reschedule(loop.time())

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._timer is not None
        self._timer.cancel()
        return await self._scope.__aexit__(kind, error, traceback)
