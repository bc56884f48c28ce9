"""The publish pipeline: one request in, one response out, every step in the documented order.

method -> authenticate (token, scope) -> check the request (content mode, body size) -> read
the event (parse and validate, size check: one queue message, or a claim check for its data) ->
authorize on ``resource`` -> claim its identity -> enqueue (the data first, when claim-checked)
-> 200.
A batch runs the last three steps for each element and answers with every element's outcome.
Pure orchestration: each step's logic lives in its own module, and all I/O goes through the
ports it is given (shared/ports.py); this module imports no SDK.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanKind

from shared import problems
from shared.altinn import ALTINN_PROFILE, reference_errors, registry_identifier
from shared.authorization import permits_publish, resource_attributes, subject_attributes
from shared.batch import BatchOutcome
from shared.claimcheck import DATAREF, has_data, stored_data, with_reference
from shared.cloudevents import (
    ContentMode,
    InvalidEvent,
    batch_element,
    content_mode,
    parse_batch,
    parse_binary,
    parse_structured,
    serialize,
)
from shared.cloudevents.jsonformat import MAX_DATA_DEPTH, encode_compact, may_nest_deeper_than
from shared.delivery import Delivery
from shared.idempotency import (
    Claim,
    Content,
    IdempotentRecords,
    Polls,
    UncertainClaim,
    content_of,
    record_key,
)
from shared.model import REPLAYED, ClaimCheck, CloudEvent, Publisher, Replayed, Reservation
from shared.ports import (
    Authenticator,
    BlobStore,
    Clock,
    EventSink,
    InvalidToken,
    MissingToken,
    PolicyLookup,
    QueueUnavailable,
    RegistryUnavailable,
    TooManyLookups,
    Unavailable,
)
from shared.problems import Problem
from shared.telemetry import (
    NoTelemetry,
    Parent,
    PublishSpan,
    TraceIds,
    new_ids,
    parse_traceparent,
    telemetry_for,
)
from shared.timing import SYSTEM_CLOCK, Deadline

log = logging.getLogger("events.publish")


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What the pipeline needs of an HTTP request. ``headers`` keys must be lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    #: The Functions host's invocation span (``func.Context.trace_context``), when there is one:
    #: it already continues the caller's ``traceparent``.
    trace_parent: str | None = None
    trace_state: str | None = None


@dataclass(frozen=True, slots=True)
class PublishResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(slots=True)
class RequestRecord:
    """What one request's log line says. Never the token, ``data`` or ``alternativesubject``."""

    trace_id: str
    publisher: str = "-"
    #: structured, binary or batch; "-" until the content type is read.
    mode: str = "-"
    event_id: str = "-"
    resource: str = "-"
    #: How the rules were found: hit, miss or stale (see shared/registry_cache.py).
    authz: str = "-"
    #: permit, deny, unknown (resource not registered), admin (scope), limited (429) or error.
    decision: str = "-"
    #: The identity's record: new, replay, conflict, in-flight, unavailable ("-": not looked).
    dedup: str = "-"
    problem: str = "-"
    note: str = ""

    def __str__(self) -> str:  # formatted only when the log line is emitted
        # Every value that comes from a caller (even a signed claim) is written with repr():
        # quoted and escaped, so no newline or quote in it can forge a log line or a field.
        note = f" note={self.note!r}" if self.note else ""
        return (
            f"publisher={self.publisher!r} mode={self.mode} resource={self.resource!r} "
            f"id={self.event_id!r} "
            f"authz={self.authz} decision={self.decision} dedup={self.dedup} "
            f"problem={self.problem} "
            f"trace={self.trace_id}{note}"
        )


def parent_of(request: PublishRequest) -> Parent | None:
    """The span a request's publish continues: the host's invocation span (which continues the
    caller's), else the caller's valid ``traceparent``; None starts a new trace."""
    return parse_traceparent(request.trace_parent, request.trace_state) or parse_traceparent(
        request.headers.get("traceparent"), request.headers.get("tracestate")
    )


def problem_trace_id(ids: TraceIds) -> str:
    """A problem's ``traceId``: the publish span's trace and span, ``00-<trace>-<span>-00``."""
    return f"00-{ids.trace_id}-{ids.span_id}-00"


def trace_id_of(headers: Mapping[str, str]) -> str:
    """A new span's ``traceId`` in the trace of the caller's ``traceparent`` (or a new one)."""
    parent = parse_traceparent(headers.get("traceparent"), headers.get("tracestate"))
    return problem_trace_id(new_ids(parent))


@dataclass(frozen=True, slots=True)
class EventTrace:
    """The trace context a queued event carries: its publish span, and the caller's state."""

    ids: TraceIds
    tracestate: str | None

    def members(self) -> dict[str, str]:
        """The distributed-tracing extension's attributes."""
        members = {"traceparent": self.ids.traceparent}
        if self.tracestate:
            members["tracestate"] = self.tracestate
        return members


def _declared_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """An event that passed validation, its content as idempotent publish compares it (None
    without de-duplication), and its queue message (the event with the trace context the
    endpoint adds, and for an event too large for one message, ``dataref`` instead of its
    data: ``claim_check``)."""

    event: CloudEvent
    resource: str
    content: Content | None
    message: bytes
    claim_check: ClaimCheck | None = None


class PublishPipeline:
    """The documented steps, one method each. Every step returns its value or the ``Problem``
    that ends the request; a batch runs the per-event steps (validate, authorize, enqueue) for
    each of its elements, concurrently, after one authentication and one size check."""

    def __init__(
        self,
        *,
        verifier: Authenticator,
        rules: PolicyLookup,
        sink: EventSink,
        publish_scope: str,
        admin_scope: str,
        max_body_bytes: int,
        max_batch_events: int = 100,
        queue_timeout_seconds: float = 3.0,
        lookups_per_minute: int = 0,
        records: IdempotentRecords | None = None,
        records_required: bool = False,
        blobs: BlobStore | None = None,
        max_event_bytes: int = 1024 * 1024,
        telemetry: NoTelemetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        commit_before_answer: bool = False,
    ) -> None:
        self._verifier = verifier
        self._rules = rules
        self._sink = sink
        self._publish_scope = publish_scope
        self._admin_scope = admin_scope
        self._max_body_bytes = max_body_bytes
        self._max_batch_events = max_batch_events
        self._queue_timeout = queue_timeout_seconds
        self._lookups_per_minute = lookups_per_minute
        self._records = records
        self._records_required = records_required
        self._blobs = blobs
        self._blob_prefix = blobs.url("") if blobs is not None else None
        self._max_event_bytes = max_event_bytes
        self._clock = clock
        self.delivery = Delivery(
            sink, records, blobs, clock, commit_before_answer=commit_before_answer
        )
        self._telemetry = telemetry if telemetry is not None else telemetry_for()

    async def handle(self, request: PublishRequest) -> PublishResponse:
        started = time.perf_counter()
        parent = parent_of(request)
        attributes = (
            {"http.request.method": request.method, "url.path": request.path}
            if self._telemetry.enabled
            else None
        )
        with self._telemetry.publish("publish", parent, attributes) as span:
            record = RequestRecord(trace_id=problem_trace_id(span.ids))
            trace = EventTrace(span.ids, parent.tracestate if parent is not None else None)
            try:
                outcome = await self._publish(request, record, span, trace)
            except Exception:
                log.exception("unexpected error trace=%s", record.trace_id)
                outcome = problems.internal_error()
            response = self._respond(outcome, request, record, span)
            # the request's one log line, inside its span: exporters join the two
            log.log(
                logging.WARNING if response.status >= 500 else logging.INFO,
                "publish %d ms=%.1f %s",
                response.status,
                (time.perf_counter() - started) * 1000,
                record,
            )
            return response

    def _respond(
        self,
        outcome: Problem | BatchOutcome | Replayed | None,
        request: PublishRequest,
        record: RequestRecord,
        span: PublishSpan,
    ) -> PublishResponse:
        replayed = isinstance(outcome, Replayed)
        if isinstance(outcome, BatchOutcome):
            record.note = outcome.summary()
            response = PublishResponse(outcome.status, outcome.headers(), outcome.to_json())
        elif outcome is None or isinstance(outcome, Replayed):
            response = PublishResponse(200, REPLAYED_HEADERS if replayed else {})
        else:
            record.problem = outcome.kind.slug
            span.fail(outcome.kind.slug)
            response = problem_response(outcome, instance=request.path, trace_id=record.trace_id)
        span.set("http.response.status_code", response.status)
        self._telemetry.published(response.status, record.problem, record.mode, replayed)
        return response

    async def _publish(
        self, request: PublishRequest, record: RequestRecord, span: PublishSpan, trace: EventTrace
    ) -> Problem | BatchOutcome | Replayed | None:
        if request.method.upper() != "POST":
            return problems.method_not_allowed(request.method.upper())
        try:
            publisher = await self.authenticate(request, record)
            if isinstance(publisher, Problem):
                return publisher
            mode = self.check_request(request, record)
            if isinstance(mode, Problem):
                return mode
            span.set("events.content_mode", mode.value)
            if mode is ContentMode.BATCH:
                return await self.publish_batch(publisher, request.body, record, span, trace)
            read = self.read_event(mode, request, record, trace)
            if isinstance(read, Problem):
                return read
            _describe(span, read.event)
            return await self.publish_event(
                publisher, read, record, Deadline(self._queue_timeout, self._clock), Polls()
            )
        except Unavailable as error:  # every dependency: 503 with Retry-After, naming it
            record.note = str(error)
            return problems.unavailable(error)

    async def authenticate(
        self, request: PublishRequest, record: RequestRecord
    ) -> Publisher | Problem:
        """Step 1: the bearer token and the publish scope, before the body is looked at."""
        try:
            with self._telemetry.step("verify token"):
                publisher = await self._verifier.authenticate(request.headers.get("authorization"))
        except MissingToken:
            return problems.missing_token()
        except InvalidToken as error:
            return problems.invalid_token(str(error))
        record.publisher = publisher.label[:128]
        if not publisher.has_scope(self._publish_scope):
            return problems.insufficient_scope(self._publish_scope)
        return publisher

    def check_request(
        self, request: PublishRequest, record: RequestRecord
    ) -> ContentMode | Problem:
        """Step 2a, once per request: the content mode and the body's size."""
        headers = request.headers
        decision = content_mode(headers.get("content-type"), headers.keys())
        if decision.mode is ContentMode.UNSUPPORTED:
            return problems.unsupported_media_type(decision.reason)
        record.mode = decision.mode.value
        declared = _declared_length(headers)
        if declared is not None and declared > self._max_body_bytes:
            return problems.body_too_large(self._max_body_bytes, declared)
        if len(request.body) > self._max_body_bytes:
            return problems.body_too_large(self._max_body_bytes, None)
        return decision.mode

    def read_event(
        self, mode: ContentMode, request: PublishRequest, record: RequestRecord, trace: EventTrace
    ) -> ReadEvent | Problem:
        """Step 2b: one event, structured or binary, validated and ready for the queue."""
        try:
            if mode is ContentMode.BINARY:
                event = parse_binary(request.headers, request.body, ALTINN_PROFILE)
            else:
                event = parse_structured(request.body, ALTINN_PROFILE)
        except InvalidEvent as invalid:
            return problems.invalid_event(reference_errors(invalid))
        return self.prepare(event, record, trace)

    def prepare(
        self, event: CloudEvent, record: RequestRecord, trace: EventTrace
    ) -> ReadEvent | Problem:
        """A valid event's queue message: the event with the distributed-tracing extension
        naming its publish span, unless it has a ``traceparent`` of its own (kept as sent). An
        event too large for one message, up to ``max_event_bytes``, gets a claim check."""
        own = "traceparent" in event.members
        try:
            message = serialize(event, extra=None if own else trace.members())
        except InvalidEvent as invalid:
            return problems.invalid_event(reference_errors(invalid))
        content = None
        if self._records is not None:
            # records written before the canonical content hold the digest of this message
            # without the trace context (the event's own, if any, kept)
            content = content_of(event, lambda: message if own else serialize(event))
        resource = str(event.attribute("resource"))
        record.event_id, record.resource = event.id[:128], resource  # ids are unbounded
        dataref = event.members.get(DATAREF) if self._blob_prefix is not None else None
        if dataref is not None and str(dataref).startswith(str(self._blob_prefix)):
            return problems.invalid_event({DATAREF: (FOREIGN_DATAREF,)})
        if len(message) > self._sink.max_message_bytes:
            # the event as sent, without the trace context: what the size limit measures
            unadorned = message if own else serialize(event)
            return self._claim_check(event, resource, unadorned, content, trace, own)
        return ReadEvent(event, resource, content, message)

    def _claim_check(
        self,
        event: CloudEvent,
        resource: str,
        unadorned: bytes,
        content: Content | None,
        trace: EventTrace,
        own: bool,
    ) -> ReadEvent | Problem:
        """The event's data to a blob and ``dataref`` in its message, or the 413 that says why
        that cannot be (shared/claimcheck.py). Only events over one message get here;
        ``unadorned`` is the event as sent (its compact JSON, without the trace context)."""
        size, limit = len(unadorned), self._sink.max_message_bytes
        if size > self._max_event_bytes:
            return problems.event_too_large(self._max_event_bytes, size)
        members = event.members
        if self._blobs is None:
            return problems.event_too_large_for_queue(limit, size, NO_BLOB_SERVICE)
        if DATAREF in members:
            return problems.event_too_large_for_queue(limit, size, OWN_DATAREF)
        if not has_data(members):
            return problems.event_too_large_for_queue(limit, size, ATTRIBUTES_TOO_LARGE)
        name = self._blobs.new_name()
        referenced = CloudEvent(with_reference(members, self._blobs.url(name)))
        message = serialize(referenced, extra=None if own else trace.members())
        if len(message) > limit:
            return problems.event_too_large_for_queue(limit, size, ATTRIBUTES_TOO_LARGE)
        check = ClaimCheck(name, stored_data(members, encode_compact))
        return ReadEvent(event, resource, content, message, check)

    async def authorize(
        self, publisher: Publisher, read: ReadEvent, record: RequestRecord
    ) -> Problem | None:
        """Step 3: may this publisher publish on the event's ``resource``? The admin scope skips
        the registry; otherwise its rules decide. Raises RegistryUnavailable."""
        if publisher.has_scope(self._admin_scope):
            record.decision = "admin"
            return None
        identifier = registry_identifier(read.resource)
        record.decision = "error"  # until the rules are known
        with self._telemetry.step(
            "look up resource rules",
            {"events.resource": identifier} if self._telemetry.enabled else None,
        ) as step:
            try:
                found = await self._rules.lookup(identifier, requester=publisher.label)
            except TooManyLookups as limited:
                record.decision = "limited"
                self._telemetry.looked_up("limited")
                return problems.too_many_resource_lookups(
                    self._lookups_per_minute, limited.retry_after_seconds
                )
            except RegistryUnavailable:
                self._telemetry.looked_up("error")
                raise
            if step is not None:
                step.set_attribute("events.cache.outcome", found.outcome.value)
        self._telemetry.looked_up(found.outcome.value)
        record.authz = found.outcome.value
        permitted = found.rules is not None and permits_publish(
            found.rules, subject_attributes(publisher), resource_attributes(identifier, read.event)
        )
        record.decision = "permit" if permitted else ("unknown" if found.rules is None else "deny")
        return None if permitted else problems.not_authorized_for_resource(read.resource)

    async def claim(
        self, publisher: Publisher, read: ReadEvent, record: RequestRecord, polls: Polls
    ) -> tuple[Claim | None, Problem | Replayed | None]:
        """Step 4: claim the event's identity (idempotent publish). The claim to settle once the
        send ends (None: nothing claimed), or the answer when the identity is taken. A claim
        the records did not answer (in time) is published all the same, unless de-duplication
        is required: UncertainClaim (503) then, and what it may have written is taken back."""
        if self._records is None or read.content is None:
            return None, None
        key = record_key(publisher, read.event)
        try:
            with self._telemetry.step("claim event id") as step:
                outcome = await self._records.claim(key, read.content, polls)
                if step is not None:
                    reservation = outcome if isinstance(outcome, Reservation) else Reservation.NEW
                    step.set_attribute("events.dedup", reservation.value)
        except UncertainClaim as error:
            if self._records_required:
                self.delivery.abandon(error.claim)
                raise
            record.dedup = "unavailable"
            log.warning("publishing without de-duplication: the records answered %s", error)
            return error.claim, None  # settled by what happens: committed if stored
        if isinstance(outcome, Claim):
            record.dedup = Reservation.NEW.value
            return outcome, None
        record.dedup = outcome.value
        if outcome is Reservation.REPLAY:
            return None, REPLAYED
        if outcome is Reservation.CONFLICT:
            return None, problems.duplicate_event_id(read.event.source, read.event.id)
        return None, problems.publish_in_progress()

    async def enqueue(self, read: ReadEvent, deadline: Deadline, claim: Claim | None) -> None:
        """Step 5: the event on the queue within the deadline. Raises QueueUnavailable."""
        started = time.perf_counter()
        outcome = "failed"
        try:
            with self._telemetry.step(
                "enqueue",
                self._enqueue_attributes(read) if self._telemetry.enabled else None,
                SpanKind.PRODUCER,
            ):
                await self.delivery.send(
                    read.message, deadline, claim=claim, claim_check=read.claim_check
                )
            outcome = "stored"
        finally:
            self._telemetry.enqueued(time.perf_counter() - started, outcome)

    def _enqueue_attributes(self, read: ReadEvent) -> dict[str, Any]:
        """The enqueue span's attributes (OpenTelemetry's messaging semantic conventions)."""
        return {
            "messaging.system": "azure_storage_queue",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send_message",
            "messaging.destination.name": self._sink.destination,
            "messaging.message.body.size": len(read.message),
            "cloudevents.event_id": read.event.id,
            "events.claim_check": read.claim_check is not None,
        }

    async def publish_event(
        self,
        publisher: Publisher,
        read: ReadEvent,
        record: RequestRecord,
        deadline: Deadline,
        polls: Polls,
    ) -> Problem | Replayed | None:
        """The per-event steps after reading: authorize, claim, enqueue."""
        problem = await self.authorize(publisher, read, record)
        if problem is not None:
            return problem
        claim, answer = await self.claim(publisher, read, record, polls)
        if answer is not None:
            return answer
        await self.enqueue(read, deadline, claim)
        return None

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Let sends and record settlements still running finish."""
        await self.delivery.drain(grace_seconds)

    # -- batches -------------------------------------------------------------------------------

    async def publish_batch(
        self,
        publisher: Publisher,
        body: bytes,
        record: RequestRecord,
        span: PublishSpan,
        trace: EventTrace,
    ) -> BatchOutcome | Problem:
        """Each element validated, authorized and enqueued on its own, exactly as if it had been
        published alone (its send with its own queue time budget, from when it starts); at most
        ``MAX_SENDS_IN_FLIGHT`` at a time. Once a send of the batch has failed (the queue refused
        it or did not confirm it in time), the elements not yet sent are not sent at all: they
        are answered 503 at once, so that a broken queue ends the batch within about one budget,
        and nothing is queued for an element answered 503 unless its send had started."""
        try:
            elements = parse_batch(body)
        except InvalidEvent as invalid:
            return problems.invalid_event(reference_errors(invalid))
        if len(elements) > self._max_batch_events:
            return problems.batch_too_large(self._max_batch_events, len(elements))
        span.set("events.batch.size", len(elements))
        self._telemetry.batch(len(elements))
        may_nest = may_nest_deeper_than(body, MAX_DATA_DEPTH)
        in_flight = asyncio.Semaphore(MAX_SENDS_IN_FLIGHT)
        queue_failed: QueueUnavailable | None = None
        polls = Polls()  # the batch's elements share one request's polling
        #: per identity, the outcome of its latest element so far: the fingerprint published
        #: (or replayed) under it in this batch, None if none was
        latest: dict[str, asyncio.Future[str | None]] = {}

        async def publish_one(index: int, element: Any) -> Problem | Replayed | None:
            with self._telemetry.element(span, {"events.batch.index": index}) as element_span:
                outcome = await publish_element(element, element_span)
                if isinstance(outcome, Problem):
                    element_span.fail(outcome.kind.slug)
                return outcome

        async def publish_element(
            element: Any, element_span: PublishSpan
        ) -> Problem | Replayed | None:
            element_record = RequestRecord(trace_id=record.trace_id)
            try:
                event = batch_element(element, ALTINN_PROFILE, may_nest=may_nest)
            except InvalidEvent as invalid:
                return problems.invalid_event(reference_errors(invalid))
            _describe(element_span, event)
            read = self.prepare(
                event, element_record, EventTrace(element_span.ids, trace.tracestate)
            )
            if isinstance(read, Problem):
                return read
            if read.content is None:
                return await publish_read(read, element_record)
            # Elements of one identity are published one after another, in input order (this
            # runs before the element's first await, so in input order): an identity is claimed
            # once, and a later element is answered from how the earlier one ended.
            key = record_key(publisher, read.event)
            earlier = latest.get(key)
            mine: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            latest[key] = mine
            known: str | None = None
            try:
                if earlier is not None:
                    known = await earlier
                outcome = await publish_read(read, element_record, known)
                if outcome is None or isinstance(outcome, Replayed):
                    known = read.content.fingerprint if known is None else known
                return outcome
            finally:
                mine.set_result(known)

        async def publish_read(
            read: ReadEvent, element_record: RequestRecord, known: str | None = None
        ) -> Problem | Replayed | None:
            nonlocal queue_failed
            async with in_flight:
                if known is not None:  # published by an earlier element of this batch
                    problem = await self.authorize(publisher, read, element_record)
                    if problem is not None:
                        return problem
                    assert read.content is not None
                    if read.content.fingerprint == known:
                        element_record.dedup = Reservation.REPLAY.value
                        return REPLAYED
                    element_record.dedup = Reservation.CONFLICT.value
                    return problems.duplicate_event_id(read.event.source, read.event.id)
                if queue_failed is not None:  # not sent: nothing queued, a retry is safe
                    return problems.unavailable(QueueUnavailable(NOT_SENT))
                try:
                    return await self.publish_event(
                        publisher,
                        read,
                        element_record,
                        Deadline(self._queue_timeout, self._clock),
                        polls,
                    )
                except QueueUnavailable as error:
                    queue_failed = error
                    return problems.unavailable(error)
                except Unavailable as error:
                    return problems.unavailable(error)

        outcomes = await asyncio.gather(
            *(publish_one(index, element) for index, element in enumerate(elements))
        )
        return BatchOutcome.of(elements, outcomes)


#: Why an element of a batch was not sent (the log line's note).
NOT_SENT = "not sent: an earlier send of this batch failed"

#: Sends of one batch in flight at a time: enough to hide the queue's latency, few enough not to
#: swamp it (or the worker's connection pool) with one request.
MAX_SENDS_IN_FLIGHT = 16


REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}

#: Why an event over one queue message cannot have a claim check (the 413's detail goes on).
NO_BLOB_SERVICE = (
    "this deployment has no storage for larger events' data (no blob service configured). "
    "Make 'data' smaller, or publish a reference to the payload ('dataref') instead."
)
OWN_DATAREF = (
    "it carries its own 'dataref' as well as data: storing the data by reference would replace "
    "that 'dataref'. Send the data by reference only ('dataref' without data), or less data."
)
ATTRIBUTES_TOO_LARGE = (
    "its attributes alone do not fit in one message (only the data can be stored by "
    "reference). Make the attributes smaller."
)
FOREIGN_DATAREF = (
    "must not point into this endpoint's own storage for large events' data; a 'dataref' of "
    "your own names where your data is."
)


def _describe(span: PublishSpan, event: CloudEvent) -> None:
    """The CloudEvents semantic conventions' attributes (never data or alternativesubject)."""
    if not span.recording:
        return
    span.set("cloudevents.event_id", event.id)
    span.set("cloudevents.event_source", event.source)
    span.set("cloudevents.event_type", event.type)
    span.set("cloudevents.event_spec_version", "1.0")


def problem_response(problem: Problem, *, instance: str, trace_id: str) -> PublishResponse:
    headers = {"Content-Type": problems.PROBLEM_CONTENT_TYPE, **problem.headers}
    return PublishResponse(
        problem.status, headers, problem.to_json(instance=instance, trace_id=trace_id)
    )
