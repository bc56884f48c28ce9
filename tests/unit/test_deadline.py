"""shared/core/timing.py's Deadline: waiting for a send within a budget without ever cancelling it.

The sends here are futures this test settles itself, so that nothing depends on timing but the
deadline: a budget of 0.01 s against a send that is never settled until the test says so."""

from __future__ import annotations

import asyncio

import pytest

from shared.core.timing import Deadline


async def test_a_send_settled_in_time_is_waited_for() -> None:
    loop = asyncio.get_running_loop()
    send: asyncio.Future[None] = loop.create_future()
    loop.call_soon(send.set_result, None)
    await Deadline(60).wait(send)
    assert send.done()


async def test_a_send_that_fails_raises_its_own_error() -> None:
    loop = asyncio.get_running_loop()
    send: asyncio.Future[None] = loop.create_future()
    loop.call_soon(send.set_exception, ConnectionResetError("refused"))
    with pytest.raises(ConnectionResetError, match="refused"):
        await Deadline(60).wait(send)


async def test_past_the_deadline_it_is_a_timeout_and_the_send_goes_on() -> None:
    send: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(TimeoutError):
        await Deadline(0.01).wait(send)
    assert not send.cancelled()
    send.set_result(None)  # the send may still end well, after the answer
    assert send.result() is None


async def test_cancelling_the_wait_does_not_cancel_the_send() -> None:
    send: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(Deadline(60).wait(send))
    await asyncio.sleep(0)  # let it start waiting
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not send.done()
    send.set_result(None)


async def test_one_deadline_is_one_budget_for_every_wait() -> None:
    """A second wait under the same Deadline gets what is left of the budget (nothing, here),
    not a budget of its own: it ends within a few turns of the loop, not 0.2 s later."""
    loop = asyncio.get_running_loop()
    deadline = Deadline(0.2)
    first: asyncio.Future[None] = loop.create_future()
    with pytest.raises(TimeoutError):
        await deadline.wait(first)
    second: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.ensure_future(deadline.wait(second))
    for _ in range(10):
        await asyncio.sleep(0)
    assert waiting.done()
    assert isinstance(waiting.exception(), TimeoutError)
    assert not second.done()
    first.set_result(None)
    second.set_result(None)


async def test_a_send_already_done_needs_no_waiting() -> None:
    send: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    send.set_result(None)
    await Deadline(0).wait(send)
