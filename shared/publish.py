"""The publish pipeline: one request in, one response out, every step in the documented order.

method -> authenticate (token, scope) -> check the request (content mode, body size) -> read
the event (parse and validate, queue-size check) -> authorize on ``resource`` -> enqueue -> 200.
A batch runs the last three steps for each element and answers with every element's outcome.
Pure orchestration: each step's logic lives in its own module, and all I/O goes through the
ports it is given (shared/ports.py); this module imports no SDK.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared import problems
from shared.altinn import ALTINN_PROFILE, reference_errors, registry_identifier
from shared.authorization import permits_publish, resource_attributes, subject_attributes
from shared.batch import BatchOutcome
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
from shared.cloudevents.jsonformat import MAX_DATA_DEPTH, may_nest_deeper_than
from shared.delivery import Deadline, Delivery
from shared.idempotency import fingerprint, record_key
from shared.model import REPLAYED, CloudEvent, Publisher, Replayed, Reservation
from shared.ports import (
    Authenticator,
    EventSink,
    InvalidToken,
    MissingToken,
    PolicyLookup,
    PublishRecords,
    RecordsUnavailable,
    TooManyLookups,
    Unavailable,
)
from shared.problems import Problem

log = logging.getLogger("events.publish")

#: Trace ids need to be unique, not secret: a seeded PRNG, not a system call per request.
_ids = random.Random()  # noqa: S311
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What the pipeline needs of an HTTP request. ``headers`` keys must be lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


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


def trace_id_of(headers: Mapping[str, str]) -> str:
    """The W3C trace id of the caller's ``traceparent``, or a new one."""
    match = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip())
    trace = (
        match.group(1) if match and match.group(1) != "0" * 32 else f"{_ids.getrandbits(128):032x}"
    )
    return f"00-{trace}-{_ids.getrandbits(64):016x}-00"


def _declared_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


@dataclass(frozen=True, slots=True)
class ReadEvent:
    """An event that passed validation, and its queue message."""

    event: CloudEvent
    resource: str
    message: bytes


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
        records: PublishRecords | None = None,
        records_required: bool = False,
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
        self.delivery = Delivery(sink, records)

    async def handle(self, request: PublishRequest) -> PublishResponse:
        started = time.perf_counter()
        record = RequestRecord(trace_id=trace_id_of(request.headers))
        try:
            outcome = await self._publish(request, record)
        except Exception:
            log.exception("unexpected error trace=%s", record.trace_id)
            outcome = problems.internal_error()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if isinstance(outcome, BatchOutcome):
            record.note = outcome.summary()
            log.info("publish %d ms=%.1f %s", outcome.status, elapsed_ms, record)
            return PublishResponse(outcome.status, outcome.headers(), outcome.to_json())
        if outcome is None or isinstance(outcome, Replayed):
            log.info("publish 200 ms=%.1f %s", elapsed_ms, record)
            return PublishResponse(200, REPLAYED_HEADERS if outcome is not None else {})
        record.problem = outcome.kind.slug
        log.log(
            logging.WARNING if outcome.status >= 500 else logging.INFO,
            "publish %d ms=%.1f %s",
            outcome.status,
            elapsed_ms,
            record,
        )
        return problem_response(outcome, instance=request.path, trace_id=record.trace_id)

    async def _publish(
        self, request: PublishRequest, record: RequestRecord
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
            if mode is ContentMode.BATCH:
                return await self.publish_batch(publisher, request.body, record)
            read = self.read_event(mode, request, record)
            if isinstance(read, Problem):
                return read
            return await self.publish_event(publisher, read, record, Deadline(self._queue_timeout))
        except Unavailable as error:  # every dependency: 503 with Retry-After, naming it
            record.note = str(error)
            return problems.unavailable(error)

    async def authenticate(
        self, request: PublishRequest, record: RequestRecord
    ) -> Publisher | Problem:
        """Step 1: the bearer token and the publish scope, before the body is looked at."""
        try:
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
        self, mode: ContentMode, request: PublishRequest, record: RequestRecord
    ) -> ReadEvent | Problem:
        """Step 2b: one event, structured or binary, validated and ready for the queue."""
        try:
            if mode is ContentMode.BINARY:
                event = parse_binary(request.headers, request.body, ALTINN_PROFILE)
            else:
                event = parse_structured(request.body, ALTINN_PROFILE)
        except InvalidEvent as invalid:
            return problems.invalid_event(reference_errors(invalid))
        return self.prepare(event, record)

    def prepare(self, event: CloudEvent, record: RequestRecord) -> ReadEvent | Problem:
        """A valid event's queue message, which must fit in one message."""
        try:
            message = serialize(event)
        except InvalidEvent as invalid:
            return problems.invalid_event(reference_errors(invalid))
        resource = str(event.attribute("resource"))
        record.event_id, record.resource = event.id[:128], resource  # ids are unbounded
        limit = self._sink.max_message_bytes
        if len(message) > limit:
            return problems.event_too_large(limit, len(message))
        return ReadEvent(event, resource, message)

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
        try:
            found = await self._rules.lookup(identifier, requester=publisher.label)
        except TooManyLookups as limited:
            record.decision = "limited"
            return problems.too_many_resource_lookups(
                self._lookups_per_minute, limited.retry_after_seconds
            )
        record.authz = found.outcome.value
        permitted = found.rules is not None and permits_publish(
            found.rules, subject_attributes(publisher), resource_attributes(identifier, read.event)
        )
        record.decision = "permit" if permitted else ("unknown" if found.rules is None else "deny")
        return None if permitted else problems.not_authorized_for_resource(read.resource)

    async def claim(
        self, publisher: Publisher, read: ReadEvent, record: RequestRecord
    ) -> tuple[str | None, Problem | Replayed | None]:
        """Step 4: claim the event's identity (idempotent publish). The key to settle once the
        send ends (None: nothing claimed), or the answer when the identity is taken.
        Raises RecordsUnavailable only when de-duplication is required."""
        if self._records is None:
            return None, None
        key = record_key(publisher, read.event)
        try:
            reservation = await self._records.reserve(key, fingerprint(read.message))
        except RecordsUnavailable as error:
            if self._records_required:
                raise
            record.dedup = "unavailable"
            log.warning("publishing without de-duplication: the records answered %s", error)
            return None, None
        record.dedup = reservation.value
        if reservation is Reservation.NEW:
            return key, None
        if reservation is Reservation.REPLAY:
            return None, REPLAYED
        if reservation is Reservation.CONFLICT:
            return None, problems.duplicate_event_id(read.event.source, read.event.id)
        return None, problems.publish_in_progress()

    async def enqueue(self, read: ReadEvent, deadline: Deadline, claim: str | None) -> None:
        """Step 5: the event on the queue within the deadline. Raises QueueUnavailable."""
        await self.delivery.send(read.message, deadline, claim=claim)

    async def publish_event(
        self, publisher: Publisher, read: ReadEvent, record: RequestRecord, deadline: Deadline
    ) -> Problem | Replayed | None:
        """The per-event steps after reading: authorize, claim, enqueue."""
        problem = await self.authorize(publisher, read, record)
        if problem is not None:
            return problem
        claim, answer = await self.claim(publisher, read, record)
        if answer is not None:
            return answer
        await self.enqueue(read, deadline, claim)
        return None

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Let sends and record settlements still running finish."""
        await self.delivery.drain(grace_seconds)

    # -- batches -------------------------------------------------------------------------------

    async def publish_batch(
        self, publisher: Publisher, body: bytes, record: RequestRecord
    ) -> BatchOutcome | Problem:
        """Each element validated, authorized and enqueued on its own, exactly as if it had been
        published alone; at most ``MAX_SENDS_IN_FLIGHT`` at a time, and every send of the batch
        within one queue time budget."""
        try:
            elements = parse_batch(body)
        except InvalidEvent as invalid:
            return problems.invalid_event(reference_errors(invalid))
        if len(elements) > self._max_batch_events:
            return problems.batch_too_large(self._max_batch_events, len(elements))
        may_nest = may_nest_deeper_than(body, MAX_DATA_DEPTH)
        deadline = Deadline(self._queue_timeout)
        in_flight = asyncio.Semaphore(MAX_SENDS_IN_FLIGHT)

        async def publish_one(element: Any) -> Problem | Replayed | None:
            element_record = RequestRecord(trace_id=record.trace_id)
            try:
                event = batch_element(element, ALTINN_PROFILE, may_nest=may_nest)
            except InvalidEvent as invalid:
                return problems.invalid_event(reference_errors(invalid))
            read = self.prepare(event, element_record)
            if isinstance(read, Problem):
                return read
            async with in_flight:
                try:
                    return await self.publish_event(publisher, read, element_record, deadline)
                except Unavailable as error:
                    return problems.unavailable(error)

        outcomes = await asyncio.gather(*(publish_one(element) for element in elements))
        return BatchOutcome.of(elements, outcomes)


#: Sends of one batch in flight at a time: enough to hide the queue's latency, few enough not to
#: swamp it (or the worker's connection pool) with one request.
MAX_SENDS_IN_FLIGHT = 16


REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}


def problem_response(problem: Problem, *, instance: str, trace_id: str) -> PublishResponse:
    headers = {"Content-Type": problems.PROBLEM_CONTENT_TYPE, **problem.headers}
    return PublishResponse(
        problem.status, headers, problem.to_json(instance=instance, trace_id=trace_id)
    )
