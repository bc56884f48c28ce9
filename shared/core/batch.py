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
from shared.cloudevents.jsonformat import (
    MAX_DATA_DEPTH,
    batch_length_at_least,
    encode_compact,
    may_nest_deeper_than,
)
from shared.core import problems
from shared.core.altinn import ALTINN_PROFILE
from shared.core.idempotency import (
    Claim,
    Content,
    IdempotentRecords,
    Polls,
    UncertainClaim,
    record_key,
)
from shared.core.model import REPLAYED, Published, Publisher, Reservation
from shared.core.ports import QueueUnavailable
from shared.core.problems import Problem, Rejected, problem_for
from shared.core.report import PublishReport
from shared.core.steps import EventTrace, PublishSteps, ReadEvent
from shared.core.telemetry import PublishSpan
from shared.core.timing import Deadline

BATCH_RESULT_CONTENT_TYPE = "application/json"
#: A batch's answer is at most twice its request's size, or this, whichever is more.
MIN_ANSWER_CAP_BYTES = 64 * 1024


def _without_errors(entry: dict[str, Any]) -> dict[str, Any]:
    problem = {k: v for k, v in entry["problem"].items() if k not in ("errors", "omittedErrors")}
    return {**entry, "problem": problem}


def _briefly(entry: dict[str, Any]) -> dict[str, Any]:
    problem = entry["problem"]
    return {**entry, "problem": {k: problem[k] for k in ("type", "title", "status")}}


def _status_only(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "problem"}


#: How an entry's problem is shortened when the answer is over its cap, step by step.
_SHORTER = (_without_errors, _briefly, _status_only)
_RETRYABLE = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    ids: tuple[str | None, ...]
    #: Per element: how its publish ended, or the problem that ended it.
    outcomes: tuple[Published | Problem, ...]
    #: The largest answer body (None: no limit).
    max_bytes: int | None = None
    #: A dry run's answer: what a publish of the batch would answer, nothing written.
    validate_only: bool = False

    @classmethod
    def of(
        cls,
        elements: Sequence[Any],
        outcomes: Sequence[Published | Problem],
        max_bytes: int | None = None,
        validate_only: bool = False,
    ) -> BatchOutcome:
        ids = tuple(
            element.get("id") if isinstance(element, dict) and isinstance(element.get("id"), str)
            else None
            for element in elements
        )  # fmt: skip
        return cls(ids, tuple(outcomes), max_bytes, validate_only)

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
        body = {"accepted": self.accepted, "failed": self.failed, "results": results}
        return {"validateOnly": True, **body} if self.validate_only else body

    def to_json(self) -> bytes:
        """The answer's body, at most ``max_bytes`` when that is set (docs/errors.md,
        "Batches"): then problems are shortened, the last entries' first, a step at a time
        (their ``errors`` dropped; then all but ``type``, ``title`` and ``status``; then the
        problem itself, the entry's ``status`` staying), and ``omittedDetails`` says how many
        entries were, so that a batch of tiny invalid events cannot make an answer many times
        its size."""
        body = self.body()
        encoded = encode_compact(body)
        if self.max_bytes is None or len(encoded) <= self.max_bytes:
            return encoded
        results: list[dict[str, Any]] = body["results"]
        sizes = [len(encode_compact(entry)) + 1 for entry in results]
        total, shortened = len(encoded) + len(',"omittedDetails":1000'), set()
        for shorten in _SHORTER:
            for index in reversed(range(len(results))):
                if total <= self.max_bytes:
                    break
                if "problem" not in results[index]:
                    continue
                entry = shorten(results[index])
                size = len(encode_compact(entry)) + 1
                if size < sizes[index]:
                    total -= sizes[index] - size
                    results[index], sizes[index] = entry, size
                    shortened.add(index)
        body["omittedDetails"] = len(shortened)
        return encode_compact(body)

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
BATCH_TIME_UP = "the batch's time was up while this event's send was under way (it goes on)"


class BatchProcessor:
    """Each element validated, authorized and enqueued on its own, exactly as if it had been
    published alone (its send with its own queue time budget, from when it starts); at most
    ``MAX_SENDS_IN_FLIGHT`` at a time. Once a send of the batch has failed (the queue refused it
    or did not confirm it in time), the elements not yet sent are not sent at all: they are
    answered 503 at once, so that a broken queue ends the batch within about one budget, and
    nothing is queued for an element answered 503 unless its send had started. Elements with the
    same identity are published one after another, in input order, and claimed once: a later
    one is answered from how the earlier one ended (its replay, or 409 for other content).

    The whole batch is answered within ``batch_timeout_seconds``, whatever its dependencies do
    (the Functions host's own timeout is above it): an element whose publish had not started by
    then is answered 503 ``batch-timeout`` and is not sent (it stops before its send, its claim
    taken back); one whose send was under way is answered 503 "may have been stored", and its
    send goes on, its record following its real outcome."""

    def __init__(self, steps: PublishSteps) -> None:
        self.steps = steps

    async def publish(
        self,
        publisher: Publisher,
        body: bytes,
        report: PublishReport,
        span: PublishSpan,
        trace: EventTrace,
        *,
        dry_run: bool = False,
    ) -> BatchOutcome:
        limits = self.steps.limits
        at_least = batch_length_at_least(body)  # counted before every element is built
        if at_least > limits.max_batch_events:
            raise Rejected(problems.batch_too_large(limits.max_batch_events, at_least, more=True))
        elements = parse_batch(body)
        if len(elements) > limits.max_batch_events:
            raise Rejected(problems.batch_too_large(limits.max_batch_events, len(elements)))
        report.batch_size = len(elements)
        run = _BatchRun(
            self.steps, publisher, report, span, trace, body, len(elements), dry_run=dry_run
        )
        tasks = [
            asyncio.ensure_future(run.element(index, element))
            for index, element in enumerate(elements)
        ]
        everything = asyncio.gather(*tasks, return_exceptions=True)
        deadline = Deadline(limits.batch_timeout_seconds, self.steps.clock)
        cap = max(MIN_ANSWER_CAP_BYTES, 2 * len(body))
        try:
            await deadline.wait(everything)
        except TimeoutError:
            run.closed = True  # elements not sending yet stop before they send
            self.steps.delivery.keep(everything)  # the sends under way go on; drain waits
            answers = [run.answer(task) for task in tasks]
            return BatchOutcome.of(elements, answers, cap, dry_run)
        finally:
            run.commits.write()  # the commits held so far; later ones are written at once
        for result in everything.result():
            if isinstance(result, BaseException):
                raise result  # not a problem of the element: a bug (500), as for one event
        return BatchOutcome.of(elements, [task.result() for task in tasks], cap, dry_run)


class _Element:
    """How far one element's publish got, for an answer given before it ended."""

    __slots__ = ("claiming", "recorded", "sending")

    def __init__(self) -> None:
        self.sending = False
        self.recorded = False
        #: Counted among the elements the batch's claims wait for (until it claims or leaves).
        self.claiming = True


class _Claims:
    """The claims of one batch's elements, made together (``IdempotentRecords.claim_many``)
    once every element has either asked for its claim or left (it failed before its claim, it
    claims nothing, or it waits for an earlier element of its identity). An element that asks
    after that claims alone."""

    def __init__(
        self,
        records: IdempotentRecords | None,
        expected: int,
        polls: Polls,
        *,
        dry_run: bool = False,
    ) -> None:
        self._records = records
        self._expected = expected
        self._polls = polls
        #: A dry run's: the records read (``peek_many``), not claimed.
        self._dry_run = dry_run
        self._asked: list[tuple[str, Content, asyncio.Future[Claim | Reservation]]] = []
        self._made = False
        self._making: asyncio.Future[None] | None = None

    def leave(self, state: _Element) -> None:
        if state.claiming:
            state.claiming = False
            self._expected -= 1
            self._make_when_all_asked()

    async def claim(
        self, state: _Element, key: str, content: Content, polls: Polls
    ) -> Claim | Reservation:
        assert self._records is not None
        if self._made or not state.claiming:
            if self._dry_run:
                return await self._records.peek(key, content, polls)
            return await self._records.claim(key, content, polls)
        future: asyncio.Future[Claim | Reservation] = asyncio.get_running_loop().create_future()
        self._asked.append((key, content, future))
        self.leave(state)
        return await future

    def _make_when_all_asked(self) -> None:
        if self._expected > 0 or self._made:
            return
        self._made = True
        if self._asked:
            self._making = asyncio.ensure_future(self._make(self._asked))

    async def _make(
        self, asked: list[tuple[str, Content, asyncio.Future[Claim | Reservation]]]
    ) -> None:
        assert self._records is not None
        items = [(k, c) for k, c, _ in asked]
        answers: Sequence[Claim | Reservation | UncertainClaim]
        try:
            if self._dry_run:
                answers = await self._records.peek_many(items, self._polls)
            else:
                answers = await self._records.claim_many(items, self._polls)
        except BaseException as error:
            for _, _, future in asked:
                if not future.done():
                    future.set_exception(error)
            raise
        for (_, _, future), answer in zip(asked, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, UncertainClaim):
                future.set_exception(answer)
            else:
                future.set_result(answer)


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
        size: int,
        *,
        dry_run: bool = False,
    ) -> None:
        self.steps = steps
        self.publisher = publisher
        self.dry_run = dry_run
        self.report = report
        self.span = span
        self.trace = trace
        self.may_nest = may_nest_deeper_than(body, MAX_DATA_DEPTH)
        self.in_flight = asyncio.Semaphore(MAX_SENDS_IN_FLIGHT)
        self.queue_failed = False
        #: The batch's time is up: no element starts a send any more.
        self.closed = False
        self.polls = Polls()  # the elements share one request's polling
        self.claims = _Claims(steps.ports.records, size, self.polls, dry_run=dry_run)
        self.commits = steps.delivery.held_commits()
        #: per identity, the outcome of its latest element so far: the fingerprint published
        #: (or replayed) under it in this batch, None if none was
        self.latest: dict[str, asyncio.Future[str | None]] = {}
        self.states: dict[asyncio.Future[Any], _Element] = {}

    def answer(self, task: asyncio.Future[Published | Problem]) -> Published | Problem:
        """An element's answer when the batch's time is up: its outcome if it has one."""
        if task.done():
            return task.result()
        state = self.states.get(task, _Element())
        if state.sending:
            pending = QueueUnavailable(BATCH_TIME_UP, pending=True, recorded=state.recorded)
            return problems.unavailable(pending)
        return problems.batch_timeout(self.steps.limits.batch_timeout_seconds)

    async def element(self, index: int, element: Any) -> Published | Problem:
        task = asyncio.current_task()
        assert task is not None
        state = self.states[task] = _Element()
        telemetry = self.steps.telemetry
        attributes = {"events.batch.index": index} if telemetry.enabled else None
        with telemetry.element(self.span, attributes) as element_span:
            # what an element's steps count (lookups, sends) is the request's too
            report = PublishReport(
                self.report.trace_id, lookups=self.report.lookups, sends=self.report.sends
            )
            outcome: Published | Problem
            try:
                outcome = await self._publish(element, element_span, report, state)
            except Exception as error:
                problem = problem_for(error)
                if problem is None:
                    raise
                outcome = problem
            finally:
                self.claims.leave(state)
            if isinstance(outcome, Problem):
                report.problem = outcome.kind.slug
            telemetry.element_finished(report, element_span)
            return outcome

    async def _publish(
        self, element: Any, element_span: PublishSpan, report: PublishReport, state: _Element
    ) -> Published:
        event = batch_element(element, ALTINN_PROFILE, may_nest=self.may_nest)
        read = self.steps.prepare(
            event, report, EventTrace(element_span.ids, self.trace.tracestate)
        )
        if read.content is None or self.steps.ports.records is None:
            self.claims.leave(state)
            return await self._send(read, report, state)
        # This runs before the element's first await, so in input order: each identity's
        # elements form a chain, each waiting for the one before it.
        key = record_key(self.publisher, read.event)
        earlier = self.latest.get(key)
        mine: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.latest[key] = mine
        known: str | None = None
        try:
            if earlier is not None:
                self.claims.leave(state)  # claimed by the earlier one, or alone after it
                known = await earlier
            outcome = await self._send(read, report, state, known)
            if known is None:
                known = read.content.fingerprint
            return outcome
        finally:
            mine.set_result(known)

    async def _send(
        self, read: ReadEvent, report: PublishReport, state: _Element, known: str | None = None
    ) -> Published:
        """The element's steps after reading; ``known``: the fingerprint an earlier element of
        the batch published under its identity."""
        steps = self.steps
        if known is not None:  # published by an earlier element of this batch
            await steps.authorize(self.publisher, read, report)
            assert read.content is not None
            if read.content.fingerprint == known:
                report.dedup = Reservation.REPLAY.value
                return REPLAYED
            report.dedup = Reservation.CONFLICT.value
            raise Rejected(problems.duplicate_event_id(read.event.source, read.event.id))
        if self.dry_run:  # the record read with the batch's others; nothing sent

            async def peek(key: str, content: Content, polls: Polls) -> Reservation:
                found = await self.claims.claim(state, key, content, polls)
                assert isinstance(found, Reservation)
                return found

            return await steps.publish_event(
                self.publisher, read, report, None, self.polls, dry_run=True, peeker=peek
            )
        self._may_start()

        async def before_send(claim: Claim | None) -> None:
            try:
                self._may_start()
            except BaseException:
                # once the batch is answered, nobody waits: take it back patiently
                await steps.delivery.release(claim, patient=self.closed)
                raise
            state.sending = True
            state.recorded = claim is not None and claim.certain

        async def claim(key: str, content: Content, polls: Polls) -> Claim | Reservation:
            return await self.claims.claim(state, key, content, polls)

        try:
            return await steps.publish_event(
                self.publisher,
                read,
                report,
                None,
                self.polls,
                before_send,
                claimer=claim,
                sending=self.in_flight,
                commits=self.commits,
            )
        except QueueUnavailable:
            self.queue_failed = True
            raise

    def _may_start(self) -> None:
        """Whether an element may still start its send (raises why not)."""
        if self.closed:
            raise Rejected(problems.batch_timeout(self.steps.limits.batch_timeout_seconds))
        if self.queue_failed:  # not sent: nothing queued, a retry is safe
            raise QueueUnavailable(NOT_SENT)
