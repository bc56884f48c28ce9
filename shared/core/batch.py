"""Batches: the processor that publishes each element of one (its steps, a bound on sends in
flight, the breaker that stops sending once the queue has failed, one span and one report per
element), and the batch's answer (docs/contract.md, "Batches").

The answer has one outcome per element, in input order: ``200`` when every element was
published, ``207`` otherwise; each entry carries the status that publishing the element alone
would have answered, its ``id`` when that is a string, and for a failure the same problem object
a single publish returns, without ``instance`` and ``traceId`` (the response has one trace).
``Retry-After`` is set when an element may succeed later (503, 429).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.cloudevents import batch_element, parse_batch
from shared.cloudevents.jsonformat import MAX_DATA_DEPTH, encode_compact, may_nest_deeper_than
from shared.core import problems
from shared.core.altinn import ALTINN_PROFILE
from shared.core.idempotency import Polls, record_key
from shared.core.model import REPLAYED, Published, Publisher, Reservation
from shared.core.ports import QueueUnavailable
from shared.core.problems import Problem, Rejected, problem_for
from shared.core.report import PublishReport
from shared.core.steps import EventTrace, PublishSteps, ReadEvent
from shared.core.telemetry import PublishSpan

BATCH_RESULT_CONTENT_TYPE = "application/json"
_RETRYABLE = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    ids: tuple[str | None, ...]
    #: Per element: how its publish ended, or the problem that ended it.
    outcomes: tuple[Published | Problem, ...]

    @classmethod
    def of(cls, elements: Sequence[Any], outcomes: Sequence[Published | Problem]) -> BatchOutcome:
        ids = tuple(
            element.get("id") if isinstance(element, dict) and isinstance(element.get("id"), str)
            else None
            for element in elements
        )  # fmt: skip
        return cls(ids, tuple(outcomes))

    @property
    def problems(self) -> list[Problem]:
        return [outcome for outcome in self.outcomes if isinstance(outcome, Problem)]

    @property
    def accepted(self) -> int:
        return len(self.outcomes) - len(self.problems)

    @property
    def failed(self) -> int:
        return len(self.problems)

    @property
    def status(self) -> int:
        return 200 if self.failed == 0 else 207

    def retry_after(self) -> int | None:
        delays = [
            int(problem.headers.get("Retry-After", "0"))
            for problem in self.problems
            if problem.status in _RETRYABLE
        ]
        return max(delays) if delays else None

    def body(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for index, (event_id, outcome) in enumerate(zip(self.ids, self.outcomes, strict=True)):
            entry: dict[str, Any] = {"index": index}
            if event_id is not None:
                entry["id"] = event_id
            if isinstance(outcome, Problem):
                entry["status"] = outcome.status
                entry["problem"] = outcome.as_dict()
            else:
                entry["status"] = 200
                if outcome.replayed:
                    entry["replayed"] = True
            results.append(entry)
        return {"accepted": self.accepted, "failed": self.failed, "results": results}

    def to_json(self) -> bytes:
        return encode_compact(self.body())

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": BATCH_RESULT_CONTENT_TYPE}
        delay = self.retry_after()
        if delay is not None:
            headers["Retry-After"] = str(delay)
        return headers

    def summary(self) -> str:
        """For the request's log line: how many, and the statuses."""
        statuses = Counter(o.status if isinstance(o, Problem) else 200 for o in self.outcomes)
        counted = ",".join(f"{status}x{count}" for status, count in sorted(statuses.items()))
        replayed = sum(isinstance(o, Published) and o.replayed for o in self.outcomes)
        return f"batch events={len(self.outcomes)} statuses={counted or 'none'} replayed={replayed}"


#: Sends of one batch in flight at a time: enough to hide the queue's latency, few enough not to
#: swamp it (or the worker's connection pool) with one request.
MAX_SENDS_IN_FLIGHT = 16
#: Why an element of a batch was not sent (the log line's note).
NOT_SENT = "not sent: an earlier send of this batch failed"


class BatchProcessor:
    """Each element validated, authorized and enqueued on its own, exactly as if it had been
    published alone (its send with its own queue time budget, from when it starts); at most
    ``MAX_SENDS_IN_FLIGHT`` at a time. Once a send of the batch has failed (the queue refused it
    or did not confirm it in time), the elements not yet sent are not sent at all: they are
    answered 503 at once, so that a broken queue ends the batch within about one budget, and
    nothing is queued for an element answered 503 unless its send had started. Elements with the
    same identity are published one after another, in input order, and claimed once: a later
    one is answered from how the earlier one ended (its replay, or 409 for other content)."""

    def __init__(self, steps: PublishSteps) -> None:
        self.steps = steps

    async def publish(
        self,
        publisher: Publisher,
        body: bytes,
        report: PublishReport,
        span: PublishSpan,
        trace: EventTrace,
    ) -> BatchOutcome:
        elements = parse_batch(body)
        limit = self.steps.limits.max_batch_events
        if len(elements) > limit:
            raise Rejected(problems.batch_too_large(limit, len(elements)))
        report.batch_size = len(elements)
        run = _BatchRun(self.steps, publisher, report, span, trace, body)
        outcomes = await asyncio.gather(
            *(run.element(index, element) for index, element in enumerate(elements))
        )
        return BatchOutcome.of(elements, outcomes)


class _BatchRun:
    """One batch being published: what its elements share."""

    def __init__(
        self,
        steps: PublishSteps,
        publisher: Publisher,
        report: PublishReport,
        span: PublishSpan,
        trace: EventTrace,
        body: bytes,
    ) -> None:
        self.steps = steps
        self.publisher = publisher
        self.report = report
        self.span = span
        self.trace = trace
        self.may_nest = may_nest_deeper_than(body, MAX_DATA_DEPTH)
        self.in_flight = asyncio.Semaphore(MAX_SENDS_IN_FLIGHT)
        self.queue_failed = False
        self.polls = Polls()  # the elements share one request's polling
        #: per identity, the outcome of its latest element so far: the fingerprint published
        #: (or replayed) under it in this batch, None if none was
        self.latest: dict[str, asyncio.Future[str | None]] = {}

    async def element(self, index: int, element: Any) -> Published | Problem:
        telemetry = self.steps.telemetry
        attributes = {"events.batch.index": index} if telemetry.enabled else None
        with telemetry.element(self.span, attributes) as element_span:
            # what an element's steps count (lookups, sends) is the request's too
            report = PublishReport(
                self.report.trace_id, lookups=self.report.lookups, sends=self.report.sends
            )
            outcome: Published | Problem
            try:
                outcome = await self._publish(element, element_span, report)
            except Exception as error:
                problem = problem_for(error)
                if problem is None:
                    raise
                outcome = problem
            if isinstance(outcome, Problem):
                report.problem = outcome.kind.slug
            telemetry.element_finished(report, element_span)
            return outcome

    async def _publish(
        self, element: Any, element_span: PublishSpan, report: PublishReport
    ) -> Published:
        event = batch_element(element, ALTINN_PROFILE, may_nest=self.may_nest)
        read = self.steps.prepare(
            event, report, EventTrace(element_span.ids, self.trace.tracestate)
        )
        if read.content is None:
            return await self._send(read, report)
        # This runs before the element's first await, so in input order: each identity's
        # elements form a chain, each waiting for the one before it.
        key = record_key(self.publisher, read.event)
        earlier = self.latest.get(key)
        mine: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.latest[key] = mine
        known: str | None = None
        try:
            if earlier is not None:
                known = await earlier
            outcome = await self._send(read, report, known)
            if known is None:
                known = read.content.fingerprint
            return outcome
        finally:
            mine.set_result(known)

    async def _send(
        self, read: ReadEvent, report: PublishReport, known: str | None = None
    ) -> Published:
        """The element's steps after reading; ``known``: the fingerprint an earlier element of
        the batch published under its identity."""
        steps = self.steps
        async with self.in_flight:
            if known is not None:  # published by an earlier element of this batch
                await steps.authorize(self.publisher, read, report)
                assert read.content is not None
                if read.content.fingerprint == known:
                    report.dedup = Reservation.REPLAY.value
                    return REPLAYED
                report.dedup = Reservation.CONFLICT.value
                raise Rejected(problems.duplicate_event_id(read.event.source, read.event.id))
            if self.queue_failed:  # not sent: nothing queued, a retry is safe
                raise QueueUnavailable(NOT_SENT)
            try:
                return await steps.publish_event(
                    self.publisher, read, report, steps.deadline(), self.polls
                )
            except QueueUnavailable:
                self.queue_failed = True
                raise
