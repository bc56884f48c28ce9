"""The process-wide runtime (shared/app/runtime.py): one per event loop, and the one of another
loop retired, not left with its connections open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from shared.app import runtime as runtimes
from shared.app.runtime import Runtime, close_current_runtime, current_runtime


@pytest.fixture
def other_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as another worker loop would."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


async def test_one_runtime_per_loop_and_the_old_one_is_closed_on_its_own_loop(
    function_env: dict[str, str], other_loop: asyncio.AbstractEventLoop
) -> None:
    async def build() -> Runtime:
        return current_runtime()

    old = asyncio.run_coroutine_threadsafe(build(), other_loop).result(timeout=30)
    assert not old.session.closed
    try:
        new = current_runtime()
        assert new is not old
        assert current_runtime() is new  # the same loop: the same runtime
        closed = asyncio.run_coroutine_threadsafe(_closed(old), other_loop).result(timeout=30)
        assert closed  # retired on the loop its clients belong to
    finally:
        await close_current_runtime()


async def _closed(runtime: Runtime) -> bool:
    for _ in range(1000):  # the retirement was scheduled on this loop; let it run
        if runtime.session.closed:
            return True
        await asyncio.sleep(0)
    return runtime.session.closed


async def test_the_runtime_of_a_closed_loop_is_dropped(function_env: dict[str, str]) -> None:
    built: list[Runtime] = []

    async def build_and_close() -> None:  # what a test's (or a reloaded worker's) loop leaves
        built.append(current_runtime())
        await built[-1].close()

    thread = threading.Thread(target=lambda: asyncio.run(build_and_close()))
    thread.start()
    thread.join(timeout=30)
    (old,) = built
    assert old.loop.is_closed()
    runtimes._current = old
    try:
        assert current_runtime() is not old
    finally:
        await close_current_runtime()
