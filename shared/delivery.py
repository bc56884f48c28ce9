"""Getting a message onto the queue within a time budget, and settling its record afterwards.

The answer waits for the send at most until the budget's deadline; then it is a 503. The send
itself is not cancelled: a queue that is slow (or frozen for a moment) may still store the
message after the answer went out. So the send goes on in the background, and when it ends,
the record of the event's identity follows its real outcome: committed when the message was
stored, released when it was not. A publisher that retries after the 503 meanwhile finds the
publish in flight (409 ``publish-in-progress``), and afterwards either a replay (200) or nothing
(so its retry publishes). Only a process that dies between the send and the commit can leave a
duplicate behind.

The commit runs off the response path: a new event costs two storage round trips before its 200
(the claim and the send).
"""

from __future__ import annotations

import asyncio
import logging

from shared.model import ClaimCheck
from shared.ports import BlobStore, BlobsUnavailable, EventSink, PublishRecords, QueueUnavailable

log = logging.getLogger("events.delivery")


class Deadline:
    """One send's time budget, started when the send starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at: float | None = None

    async def wait(self, work: asyncio.Future[None]) -> None:
        """Wait for ``work`` until the deadline; TimeoutError after it. ``work`` is never
        cancelled, not even when the waiting is (as ``asyncio.shield``): it goes on either way.

        One future and one timer, rather than ``asyncio.timeout_at`` over ``asyncio.shield``
        (two futures, a timeout context and its rescheduling): this runs once per event."""
        loop = asyncio.get_running_loop()
        if self._at is None:
            self._at = loop.time() + self.seconds
        if not work.done():
            woken = loop.create_future()

            def wake(_: object = None) -> None:
                if not woken.done():
                    woken.set_result(None)

            timer = loop.call_at(self._at, wake)
            work.add_done_callback(wake)
            try:
                await woken
            finally:
                timer.cancel()
                work.remove_done_callback(wake)
            if not work.done():
                raise TimeoutError
        work.result()  # the send's own error, if it failed


class Delivery:
    """Sends messages through the sink and settles each claimed record by the send's outcome."""

    def __init__(
        self, sink: EventSink, records: PublishRecords | None, blobs: BlobStore | None = None
    ) -> None:
        self._sink = sink
        self._records = records
        self._blobs = blobs
        self._background: set[asyncio.Future[None]] = set()

    @property
    def pending(self) -> int:
        """Sends and settlements still running (for tests and shutdown)."""
        return len(self._background)

    async def send(
        self,
        message: bytes,
        deadline: Deadline,
        *,
        claim: str | None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        """Store ``message``; QueueUnavailable when the sink refuses it or the deadline passes.

        ``claim`` is the key of the event's reserved record. It is committed off the response
        path once the message is stored; released before the answer when the sink refused the
        message (so that an immediate retry publishes); and, when the deadline passed first,
        settled in the background by the send's real outcome.

        With a ``claim_check``, its data is stored first, within the same deadline, and the
        message is sent only once the data is: BlobsUnavailable (and the claim released) when it
        is not. Data no message will refer to (stored after the deadline, or its message refused
        by the queue) is deleted again, best effort; the container's lifecycle policy removes
        whatever this misses.
        """
        if claim_check is not None:
            await self._store_data(claim_check, deadline, claim)
        sending = asyncio.ensure_future(self._sink.send(message))
        try:
            await deadline.wait(sending)
        except TimeoutError:
            self._track(asyncio.ensure_future(self._settle_later(sending, claim)))
            raise QueueUnavailable(
                f"no confirmation within {deadline.seconds:g} s (the send goes on)"
            ) from None
        except QueueUnavailable as refused:
            if claim_check is not None and not refused.maybe_stored:
                self._forget_data(claim_check)
            if claim is not None and self._records is not None:
                await self._records.release(claim)
            raise
        if claim is not None and self._records is not None:
            self._track(asyncio.ensure_future(self._records.commit(claim)))

    async def _store_data(
        self, claim_check: ClaimCheck, deadline: Deadline, claim: str | None
    ) -> None:
        assert self._blobs is not None, "a claim check needs a blob store"
        storing = asyncio.ensure_future(self._blobs.put(claim_check.name, claim_check.data))
        try:
            await deadline.wait(storing)
        except (TimeoutError, BlobsUnavailable) as error:
            if isinstance(error, TimeoutError):  # it may still finish: then delete it again
                self._track(asyncio.ensure_future(self._forget_when_stored(storing, claim_check)))
            if claim is not None and self._records is not None:
                await self._records.release(claim)
            if isinstance(error, BlobsUnavailable):
                raise
            raise BlobsUnavailable(
                f"no confirmation within {deadline.seconds:g} s that the data was stored"
            ) from None

    async def _forget_when_stored(
        self, storing: asyncio.Future[None], claim_check: ClaimCheck
    ) -> None:
        """Data stored after its publish gave up on it: no message refers to it."""
        try:
            await storing
        except BlobsUnavailable:
            return
        assert self._blobs is not None
        await self._blobs.delete(claim_check.name)

    def _forget_data(self, claim_check: ClaimCheck) -> None:
        assert self._blobs is not None
        self._track(asyncio.ensure_future(self._blobs.delete(claim_check.name)))

    async def _settle_later(self, sending: asyncio.Future[None], claim: str | None) -> None:
        try:
            await sending
        except QueueUnavailable as error:
            log.warning("a send the answer stopped waiting for failed: %s", error)
            if claim is not None and self._records is not None:
                await self._records.release(claim)
            return
        log.info("a send the answer stopped waiting for was stored after all")
        if claim is not None and self._records is not None:
            await self._records.commit(claim)

    def _track(self, work: asyncio.Future[None]) -> None:
        self._background.add(work)
        work.add_done_callback(self._finished)

    def _finished(self, work: asyncio.Future[None]) -> None:
        self._background.discard(work)
        if not work.cancelled() and work.exception() is not None:
            log.warning("background delivery work failed: %s", type(work.exception()).__name__)

    async def drain(self, grace_seconds: float) -> None:
        """Let running sends and settlements finish (on shutdown), for at most that long."""
        while self._background:
            done, _ = await asyncio.wait(set(self._background), timeout=grace_seconds)
            if not done:
                log.warning("%d sends or settlements unfinished at shutdown", self.pending)
                return
