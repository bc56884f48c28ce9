"""Getting a message onto the queue within a time budget, and settling its claim afterwards.

The answer waits for the send at most until the budget's deadline; then it is a 503. The send
itself is not cancelled then: a queue that is slow (or frozen for a moment) may still store the
message after the answer went out. So the send goes on in the background, and when it ends, the
claim of the event's identity follows its real outcome: committed when the message was stored,
released when it was not. A publisher that retries meanwhile finds the publish in flight (409
``publish-in-progress``), and afterwards a replay (200) or nothing (so its retry publishes).

A send goes on at most until its claim's cutoff (shared/core/idempotency.py, ``Budgets``): still
unanswered then, it is given up, its outcome unknown, and the claim released. So no reservation
outlives its lease. The outcome of a send whose connection broke after the message went out is
unknown at once: the claim is released too, and the 503 says that a retry may queue the event a
second time. Those, and a process that dies between its send and its record, are the only ways
one identity can be queued twice (docs/idempotency.md).

The commit runs off the response path: a new event costs two storage round trips before its 200
(the claim and the send). Commits are written together where they can be: a batch's once it has
been answered, and those of concurrent publishes of one partition after a short linger
(shared/core/idempotency.py, ``GroupedWrites``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from shared.core.idempotency import Claim, IdempotentRecords
from shared.core.model import ClaimCheck
from shared.core.ports import BlobStore, BlobsUnavailable, Clock, EventSink, QueueUnavailable
from shared.core.timing import SYSTEM_CLOCK, Deadline

log = logging.getLogger("events.delivery")


class Delivery:
    """Sends messages through the sink and settles each claim by the send's outcome."""

    def __init__(
        self,
        sink: EventSink,
        records: IdempotentRecords | None,
        blobs: BlobStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        *,
        commit_before_answer: bool = False,
    ) -> None:
        self._sink = sink
        self._commit_before_answer = commit_before_answer
        self._records = records
        self._blobs = blobs
        self._clock = clock
        self._background: set[asyncio.Future[Any]] = set()
        #: Sends given up at their claim's cutoff, their outcome unknown (for tests and logs).
        self.given_up = 0

    @property
    def pending(self) -> int:
        """Sends and settlements still running (for tests and shutdown)."""
        return len(self._background)

    async def send(
        self,
        message: bytes,
        deadline: Deadline,
        *,
        claim: Claim | None,
        claim_check: ClaimCheck | None = None,
        commits: HeldCommits | None = None,
        partition: int = 0,
    ) -> None:
        """Store ``message`` (on the queue of ``partition``); QueueUnavailable when the sink
        refuses it or the deadline passes.

        ``claim`` (of the event's identity) is committed once the message is stored: off the
        response path, or before the answer with ``commit_before_answer``; released before the
        answer when the sink refused the message, or when its outcome is unknown (so that a
        retry publishes at once); and, when the deadline passed first, settled in the
        background by the send's real outcome.

        With a ``claim_check``, its data is stored first, within the same deadline, and the
        message is sent only once the data is: BlobsUnavailable (and the claim released) when it
        is not. Data no message will refer to (stored after the deadline, or its message refused
        by the queue) is deleted again, best effort; the container's lifecycle policy removes
        whatever this misses.
        """
        if claim_check is not None:
            await self._store_data(claim_check, deadline, claim)
        sending = asyncio.ensure_future(self._sink.send(message, partition))
        try:
            await deadline.wait(sending)
        except TimeoutError:
            self.track(self._settle_later(sending, claim, claim_check))
            raise QueueUnavailable(
                f"no confirmation within {deadline.seconds:g} s (the send goes on)",
                pending=True,
                recorded=claim is not None and claim.certain,
            ) from None
        except QueueUnavailable as refused:
            self._forget_unsent(claim_check, refused)
            await self.release(claim)
            raise
        if claim is not None and self._records is not None:
            if self._commit_before_answer:
                await self._records.commit(claim)
            elif commits is not None:
                commits.add(claim)
            else:
                self.track(self._records.commit(claim))

    def stale(self, claim: Claim) -> bool:
        """Whether a claim is older than one budget (too old to start its send on)."""
        return self._records is not None and self._records.stale(claim)

    def held_commits(self) -> HeldCommits:
        """Commits held back until ``HeldCommits.write``: a batch's, written together."""
        return HeldCommits(self)

    def commit_many(self, claims: list[Claim]) -> None:
        if claims and self._records is not None:
            self.track(self._records.commit_many(claims))

    async def release(self, claim: Claim | None, *, patient: bool = False) -> None:
        if claim is not None and self._records is not None:
            await self._records.release(claim, patient=patient)

    def abandon(self, claim: Claim) -> None:
        """Take back, in the background, a claim whose publish was not made (its answer lost)."""
        self.track(self.release(claim))

    async def _store_data(
        self, claim_check: ClaimCheck, deadline: Deadline, claim: Claim | None
    ) -> None:
        assert self._blobs is not None, "a claim check needs a blob store"
        storing = asyncio.ensure_future(self._blobs.put(claim_check.name, claim_check.data))
        try:
            await deadline.wait(storing)
        except (TimeoutError, BlobsUnavailable) as error:
            if isinstance(error, TimeoutError):  # it may still finish: then delete it again
                self.track(self._forget_when_stored(storing, claim_check))
            await self.release(claim)
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

    def _forget_unsent(self, claim_check: ClaimCheck | None, error: QueueUnavailable) -> None:
        """Delete the data of a message the queue definitely did not store; never of one it
        may have stored (its event may refer to it)."""
        if claim_check is not None and not error.maybe_stored:
            self._forget_data(claim_check)

    def _forget_data(self, claim_check: ClaimCheck) -> None:
        assert self._blobs is not None
        self.track(self._blobs.delete(claim_check.name))

    async def _settle_later(
        self,
        sending: asyncio.Future[None],
        claim: Claim | None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        """The send the answer stopped waiting for: its claim follows how it ends (and its
        data, when it definitely failed, is deleted: no message refers to it), and it is given
        up at the claim's cutoff (its data kept then: the message may have been stored)."""
        if claim is None or self._records is None:
            try:
                await sending
            except QueueUnavailable as error:
                log.warning("a send the answer stopped waiting for failed: %s", error)
                self._forget_unsent(claim_check, error)
            return
        try:
            async with self._clock.timeout(max(0.0, self._records.send_cutoff(claim))):
                await asyncio.shield(sending)
        except TimeoutError:
            sending.cancel()
            self.given_up += 1
            log.warning(
                "a send was given up at its claim's cutoff with its outcome unknown: the claim "
                "is released, so a retry may queue the event a second time"
            )
            await self._records.release(claim)
            return
        except QueueUnavailable as error:
            log.warning("a send the answer stopped waiting for failed: %s", error)
            self._forget_unsent(claim_check, error)
            await self._records.release(claim)
            return
        log.info("a send the answer stopped waiting for was stored after all")
        await self._records.commit(claim)

    def track(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, and wait for it on ``drain``."""
        self.keep(asyncio.ensure_future(work))

    def keep(self, work: asyncio.Future[Any]) -> None:
        """Wait for ``work``, already running, on ``drain``."""
        self._background.add(work)
        work.add_done_callback(self._finished)

    def _finished(self, work: asyncio.Future[Any]) -> None:
        self._background.discard(work)
        if not work.cancelled() and work.exception() is not None:
            log.warning("background delivery work failed: %s", type(work.exception()).__name__)

    async def drain(self, grace_seconds: float) -> None:
        """Let running sends and settlements finish (on shutdown), for at most that long; the
        commits lingering for others to join them are written at once."""
        while self._background:
            if self._records is not None:
                self._records.flush()
            done, _ = await asyncio.wait(set(self._background), timeout=grace_seconds)
            if not done:
                log.warning("%d sends or settlements unfinished at shutdown", self.pending)
                return


class HeldCommits:
    """The commits of one batch's elements, held until the batch has been answered and then
    written together (one transaction per partition); one added after that is written at once
    (with whatever else its partition has to commit then)."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._held: list[Claim] | None = []

    def add(self, claim: Claim) -> None:
        if self._held is None:
            self._delivery.commit_many([claim])
        else:
            self._held.append(claim)

    def write(self) -> None:
        held, self._held = self._held, None
        if held:
            self._delivery.commit_many(held)
