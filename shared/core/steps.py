"""The steps of a publish, in the order docs/contract.md gives them: each returns its value or
raises what ends the request (a ``Rejected`` carrying its problem, an ``InvalidEvent``, a
dependency's ``Unavailable``); shared/core/problems.py turns each into its answer. Each step
writes what it found into the publish's report (shared/core/report.py). All I/O goes through
the ports (shared/core/ports.py); the pipeline (shared/core/pipeline.py) runs the steps in order
for one event, the batch processor (shared/core/batch.py) for each element of a batch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from shared.cloudevents import (
    CloudEvent,
    ContentMode,
    content_mode,
    parse_binary,
    parse_structured,
    serialize,
)
from shared.cloudevents.jsonformat import encode_compact
from shared.core import claimcheck, problems
from shared.core.altinn import ALTINN_PROFILE, registry_identifier
from shared.core.authorization import permits_publish, resource_attributes, subject_attributes
from shared.core.delivery import Delivery, HeldCommits
from shared.core.idempotency import (
    Claim,
    Content,
    IdempotentRecords,
    Polls,
    UncertainClaim,
    content_of,
    queue_partition,
    record_key,
)
from shared.core.model import (
    PUBLISHED,
    REPLAYED,
    ClaimCheck,
    Lookup,
    Published,
    Publisher,
    Reservation,
)
from shared.core.ports import (
    Authenticator,
    BlobStore,
    Clock,
    EventSink,
    PolicyLookup,
    RecordsUnavailable,
    RegistryUnavailable,
    TooManyLookups,
)
from shared.core.problems import Rejected
from shared.core.report import PublishReport
from shared.core.telemetry import Telemetry
from shared.core.timing import SYSTEM_CLOCK, Deadline
from shared.core.tracecontext import TraceIds, valid_tracestate

log = logging.getLogger("events.publish")

#: How an identity is claimed: ``IdempotentRecords.claim``, or a batch's claims made together.
#: Raises UncertainClaim when the records give no answer.
Claimer = Callable[[str, Content, Polls], Awaitable[Claim | Reservation]]
#: How a dry run reads an identity's record: ``IdempotentRecords.peek``, or a batch's reads made
#: together. Raises RecordsUnavailable when the records give no answer.
Peeker = Callable[[str, Content, Polls], Awaitable[Reservation]]

#: The query parameter that makes a request a dry run (docs/contract.md and docs/errors.md,
#: "Dry run").
VALIDATE_ONLY = "validateOnly"


def validate_only(query: str) -> bool | None:
    """What a request's query string asks for: True a dry run (``validateOnly=true``), False a
    publish (``validateOnly=false``, or no such parameter), None a value that is neither (an
    empty one, a repeated one, or the name spelt in other letter case), which is a 400: a
    publisher who meant a dry run must not get a publish."""
    values = [
        (name, value)
        for name, value in parse_qsl(query, keep_blank_values=True)
        if name.lower() == VALIDATE_ONLY.lower()
    ]
    if not values:
        return False
    if len(values) > 1 or values[0][0] != VALIDATE_ONLY or values[0][1] not in ("true", "false"):
        return None
    return values[0][1] == "true"


@dataclass(frozen=True, slots=True)
class Limits:
    """The pipeline's limits and knobs: one value, built where the settings are read
    (shared/app/runtime.py). The defaults are the settings' defaults."""

    publish_scope: str = "altinn:events.publish"
    admin_scope: str = "altinn:events.publish.admin"
    max_body_bytes: int = 1024 * 1024
    max_batch_events: int = 100
    #: The largest event (compact JSON) accepted; over one queue message, its data goes to a blob.
    max_event_bytes: int = 1024 * 1024
    #: One send's time budget (and, in idempotent publish, the unit of every record budget).
    queue_timeout_seconds: float = 3.0
    #: Registry lookups of not-cached resources one publisher may cause per minute (for the 429).
    lookups_per_minute: int = 120
    #: Without the records table, answer 503 rather than publish without de-duplication.
    records_required: bool = False
    #: Each 200 waits for its record's commit.
    commit_before_answer: bool = False
    #: A batch is answered within this, whatever its dependencies do.
    batch_timeout_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class Ports:
    """The outside, as the core sees it."""

    verifier: Authenticator
    rules: PolicyLookup
    sink: EventSink
    records: IdempotentRecords | None = None
    blobs: BlobStore | None = None


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
    #: The URL's query string, undecoded ("" without one).
    query: str = ""


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

    def extension_for(self, members: Mapping[str, Any]) -> dict[str, str | None] | None:
        """What the queued event's distributed-tracing attributes change (None: nothing; a
        None value: that attribute dropped). An event with its own ``traceparent`` keeps it as
        sent, and its own ``tracestate`` with it when that is valid W3C; otherwise the event
        gets this span's ``traceparent`` and the caller's ``tracestate``, never its own (a
        state belongs to the trace it came with)."""
        if "traceparent" in members:
            state = members.get("tracestate")
            if state is None or valid_tracestate(state) is not None:
                return None
            return {"tracestate": None}
        extension: dict[str, str | None] = dict(self.members())
        if "tracestate" in members and "tracestate" not in extension:
            extension["tracestate"] = None
        return extension


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


def _recorded(found: Reservation, event: CloudEvent) -> Published:
    """What a claim that found the identity recorded answers: a replay, or a rejection."""
    if found is Reservation.REPLAY:
        return REPLAYED
    if found is Reservation.CONFLICT:
        raise Rejected(problems.duplicate_event_id(event.source, event.id))
    raise Rejected(problems.publish_in_progress())


def _declared_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


class PublishSteps:
    """The steps, over the ports, within the limits."""

    def __init__(
        self, ports: Ports, limits: Limits, telemetry: Telemetry, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.ports = ports
        self.limits = limits
        self.telemetry = telemetry
        self.clock = clock
        self.delivery = Delivery(
            ports.sink,
            ports.records,
            ports.blobs,
            clock,
            commit_before_answer=limits.commit_before_answer,
        )

    def deadline(self) -> Deadline:
        """A send's time budget, started when the send starts."""
        return Deadline(self.limits.queue_timeout_seconds, self.clock)

    # -- once per request ------------------------------------------------------------------------

    def check_method(self, request: PublishRequest) -> None:
        method = request.method.upper()
        if method != "POST":
            raise Rejected(problems.method_not_allowed(method))

    async def authenticate(self, request: PublishRequest, report: PublishReport) -> Publisher:
        """The bearer token and the publish scope, before the body is looked at."""
        # no span: the issuer's keys are almost always in memory (a failure marks the publish
        # span with its problem)
        publisher = await self.ports.verifier.authenticate(request.headers.get("authorization"))
        report.publisher = publisher.label[:128]
        if not publisher.has_scope(self.limits.publish_scope):
            raise Rejected(problems.insufficient_scope(self.limits.publish_scope))
        return publisher

    def content_mode(self, request: PublishRequest, report: PublishReport) -> ContentMode:
        """The content mode and the body's size."""
        headers = request.headers
        decision = content_mode(headers.get("content-type"), headers.keys())
        if decision.mode is ContentMode.UNSUPPORTED:
            raise Rejected(problems.unsupported_media_type(decision.reason))
        report.mode = decision.mode.value
        limit = self.limits.max_body_bytes
        declared = _declared_length(headers)
        if declared is not None and declared > limit:
            raise Rejected(problems.body_too_large(limit, declared))
        if len(request.body) > limit:
            raise Rejected(problems.body_too_large(limit, None))
        return decision.mode

    def read_event(
        self, mode: ContentMode, request: PublishRequest, report: PublishReport, trace: EventTrace
    ) -> ReadEvent:
        """One event, structured or binary, validated and ready for the queue."""
        if mode is ContentMode.BINARY:
            event = parse_binary(request.headers, request.body, ALTINN_PROFILE)
        else:
            event = parse_structured(request.body, ALTINN_PROFILE)
        return self.prepare(event, report, trace)

    # -- once per event ----------------------------------------------------------------------------

    def prepare(self, event: CloudEvent, report: PublishReport, trace: EventTrace) -> ReadEvent:
        """A valid event's queue message: the event with the distributed-tracing extension
        naming its publish span, unless it has a ``traceparent`` of its own (kept as sent). An
        event too large for one message, up to ``max_event_bytes``, gets a claim check
        (shared/core/claimcheck.py)."""
        extra = trace.extension_for(event.members)
        message = serialize(event, extra=extra)

        def as_sent() -> bytes:
            return message if extra is None else serialize(event)

        content = None
        if self.ports.records is not None:
            # records written before the canonical content hold the digest of this message
            # without the trace context (the event's own, if any, kept)
            content = content_of(event, as_sent)
        resource = str(event.attribute("resource"))
        report.event(event.id, event.source, event.type, resource)
        claimcheck.check_dataref(event, self.ports.blobs)
        if len(message) <= self.ports.sink.max_message_bytes:
            return ReadEvent(event, resource, content, message)
        # the event as sent, without the trace context: what the size limits measure
        message, check = claimcheck.plan(
            event,
            as_sent(),
            blobs=self.ports.blobs,
            message_limit=self.ports.sink.max_message_bytes,
            max_event_bytes=self.limits.max_event_bytes,
            serialize=lambda referenced: serialize(referenced, extra=extra),
            encode_json=encode_compact,
        )
        report.claim_checked = True
        return ReadEvent(event, resource, content, message, check)

    async def authorize(self, publisher: Publisher, read: ReadEvent, report: PublishReport) -> None:
        """May this publisher publish on the event's ``resource``? The admin scope skips the
        registry; otherwise its rules decide. Raises RegistryUnavailable."""
        if publisher.has_scope(self.limits.admin_scope):
            report.decision = "admin"
            return
        identifier = registry_identifier(read.resource)
        report.decision = "error"  # until the rules are known
        found = await self._rules(identifier, publisher, report)
        report.lookups.append(found.outcome.value)
        report.authz = found.outcome.value
        permitted = found.rules is not None and permits_publish(
            found.rules, subject_attributes(publisher), resource_attributes(identifier, read.event)
        )
        report.decision = "permit" if permitted else ("unknown" if found.rules is None else "deny")
        if not permitted:
            raise Rejected(problems.not_authorized_for_resource(read.resource))

    async def _rules(self, identifier: str, publisher: Publisher, report: PublishReport) -> Lookup:
        """The resource's rules: from memory without a span (the publish span's
        ``events.cache.outcome`` says so), else in the span of the lookup; the 429 when this
        publisher may not make the registry look up one more resource now (an answer, not a
        failed lookup: its span is not marked failed)."""
        cached = self.ports.rules.cached(identifier)
        if cached is not None:
            return cached
        attributes = {"events.resource": identifier} if self.telemetry.enabled else None
        limited: TooManyLookups | None = None
        with self.telemetry.step("look up resource rules", attributes) as step:
            try:
                found = await self.ports.rules.lookup(identifier, requester=publisher.label)
            except TooManyLookups as error:
                limited = error
            except RegistryUnavailable:
                report.lookups.append("error")
                raise
            else:
                if step is not None:
                    step.set_attribute("events.cache.outcome", found.outcome.value)
        if limited is None:
            return found
        report.decision = "limited"
        report.lookups.append("limited")
        per_minute = self.limits.lookups_per_minute
        raise Rejected(problems.too_many_resource_lookups(per_minute, limited.retry_after_seconds))

    async def claim(
        self,
        publisher: Publisher,
        read: ReadEvent,
        report: PublishReport,
        polls: Polls,
        claimer: Claimer | None = None,
    ) -> Claim | Published | None:
        """Claim the event's identity (idempotent publish): the claim to settle once the send
        ends (None: nothing claimed, de-duplication is off), or the replay (the event was
        published before); a conflict or a publish in flight is a rejection. A claim the
        records did not answer (in time) is published all the same, unless de-duplication is
        required: UncertainClaim (503) then, and what it may have written is taken back."""
        records = self.ports.records
        if records is None or read.content is None:
            return None
        key = record_key(publisher, read.event)
        try:
            with self.telemetry.step("claim event id") as step:
                claiming = claimer if claimer is not None else records.claim
                outcome = await claiming(key, read.content, polls)
                if step is not None:
                    found = outcome if isinstance(outcome, Reservation) else Reservation.NEW
                    step.set_attribute("events.dedup", found.value)
        except UncertainClaim as error:
            if self.limits.records_required:
                self.delivery.abandon(error.claim)
                raise
            report.dedup = "unavailable"
            log.warning("publishing without de-duplication: the records answered %s", error)
            return error.claim  # settled by what happens: committed if stored
        if isinstance(outcome, Claim):
            report.dedup = Reservation.NEW.value
            return outcome
        report.dedup = outcome.value
        return _recorded(outcome, read.event)

    async def look(
        self,
        publisher: Publisher,
        read: ReadEvent,
        report: PublishReport,
        polls: Polls,
        peeker: Peeker | None = None,
    ) -> Published:
        """A dry run's claim: the identity's record read, nothing written. What the publish
        would answer: published (new), a replay, or the 409 of a conflict or a publish in
        flight; records that do not answer are a 503 only where a publish would get one
        (``records_required``)."""
        records = self.ports.records
        if records is None or read.content is None:
            return PUBLISHED
        key = record_key(publisher, read.event)
        try:
            with self.telemetry.step("read event id") as step:
                looking = peeker if peeker is not None else records.peek
                found = await looking(key, read.content, polls)
                if step is not None:
                    step.set_attribute("events.dedup", found.value)
        except RecordsUnavailable as error:
            if self.limits.records_required:
                raise
            report.dedup = "unavailable"
            log.warning("a dry run without de-duplication: the records answered %s", error)
            return PUBLISHED
        report.dedup = found.value
        if found is Reservation.NEW:
            return PUBLISHED
        return _recorded(found, read.event)

    async def enqueue(
        self,
        read: ReadEvent,
        deadline: Deadline,
        claim: Claim | None,
        report: PublishReport,
        commits: HeldCommits | None = None,
        partition: int = 0,
    ) -> None:
        """The event on the queue within the deadline (its data first, when claim-checked), on
        the queue of ``partition``. Raises QueueUnavailable or BlobsUnavailable."""
        started = time.perf_counter()
        outcome = "failed"
        try:
            attributes = (
                self._enqueue_attributes(read, partition) if self.telemetry.enabled else None
            )
            with self.telemetry.step("enqueue", attributes, "producer"):
                await self.delivery.send(
                    read.message,
                    deadline,
                    claim=claim,
                    claim_check=read.claim_check,
                    commits=commits,
                    partition=partition,
                )
            outcome = "stored"
        finally:
            report.sends.append((time.perf_counter() - started, outcome))

    def _enqueue_attributes(self, read: ReadEvent, partition: int) -> dict[str, Any]:
        """The enqueue span's attributes (OpenTelemetry's messaging semantic conventions)."""
        return {
            "messaging.system": "azure_storage_queue",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send_message",
            "messaging.destination.name": self.ports.sink.destinations[partition],
            "messaging.message.body.size": len(read.message),
            "cloudevents.event_id": read.event.id,
            "events.claim_check": read.claim_check is not None,
        }

    async def publish_event(
        self,
        publisher: Publisher,
        read: ReadEvent,
        report: PublishReport,
        deadline: Deadline | None,
        polls: Polls,
        before_send: Callable[[Claim | None], Awaitable[None]] | None = None,
        *,
        claimer: Claimer | None = None,
        sending: AbstractAsyncContextManager[Any] | None = None,
        commits: HeldCommits | None = None,
        dry_run: bool = False,
        peeker: Peeker | None = None,
    ) -> Published:
        """The steps of one event after reading it: authorize, claim, enqueue. ``before_send``
        may stop the publish between its claim and its send, by raising once it has taken the
        claim back (``delivery.release``).

        A batch's element claims through ``claimer`` (with the batch's other elements), sends
        within ``sending`` (the batch's bound on sends in flight), its send's budget starting
        then (``deadline`` None), and its commit ``commits`` holds (written with the batch's
        others). A claim that waited there for longer than one budget is taken back and made
        again, so that every send starts within a budget of its claim, as a single publish's.

        A dry run (``dry_run``) stops after authorizing: it reads the identity's record
        (``look``, through ``peeker`` for a batch's element) instead of claiming it, and sends
        nothing."""
        await self.authorize(publisher, read, report)
        if dry_run:
            return await self.look(publisher, read, report, polls, peeker)
        claimed = await self.claim(publisher, read, report, polls, claimer)
        if isinstance(claimed, Published):
            return claimed
        async with sending if sending is not None else contextlib.nullcontext():
            if sending is not None and isinstance(claimed, Claim) and self.delivery.stale(claimed):
                await self.delivery.release(claimed)
                claimed = await self.claim(publisher, read, report, polls)
                if isinstance(claimed, Published):
                    return claimed
            if before_send is not None:
                await before_send(claimed)
            await self.enqueue(
                read,
                deadline or self.deadline(),
                claimed,
                report,
                commits,
                self._partition(publisher, read),
            )
        return PUBLISHED

    def _partition(self, publisher: Publisher, read: ReadEvent) -> int:
        """The queue of the event: one of the sink's, chosen by its identity."""
        partitions = len(self.ports.sink.destinations)
        if partitions <= 1:
            return 0
        return queue_partition(record_key(publisher, read.event), partitions)
