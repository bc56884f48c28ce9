"""The publish pipeline: one request in, one response out, every step in the documented order.

method -> token -> scope -> content type -> body size -> parse and validate -> queue-size check ->
authorize on ``resource`` -> enqueue -> 200. Pure orchestration: each step's logic lives in its
own module, and all I/O goes through the verifier, the rule source and the sink it is given.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared import problems
from shared.altinn import ALTINN_PROFILE, registry_identifier
from shared.authorization import permits_publish, resource_attributes, subject_attributes
from shared.cloudevents import ContentMode, InvalidEvent, content_mode, parse_structured, serialize
from shared.problems import Problem
from shared.queue import MAX_EVENT_BYTES, EventSink, QueueUnavailable
from shared.registry import RegistryUnavailable
from shared.registry_cache import Lookup, TooManyLookups
from shared.tokens import InvalidToken, KeysUnavailable, MissingToken, TokenVerifier

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
    event_id: str = "-"
    resource: str = "-"
    #: How the rules were found: hit, miss or stale (see shared/registry_cache.py).
    authz: str = "-"
    #: permit, deny, unknown (resource not registered), admin (scope), limited (429) or error.
    decision: str = "-"
    problem: str = "-"
    note: str = ""

    def __str__(self) -> str:  # formatted only when the log line is emitted
        # Every value that comes from a caller (even a signed claim) is written with repr():
        # quoted and escaped, so no newline or quote in it can forge a log line or a field.
        note = f" note={self.note!r}" if self.note else ""
        return (
            f"publisher={self.publisher!r} resource={self.resource!r} id={self.event_id!r} "
            f"authz={self.authz} decision={self.decision} problem={self.problem} "
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


class PolicyLookup(Protocol):
    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        """A resource's rules and how they were found; RegistryUnavailable when unknowable,
        TooManyLookups when ``requester`` may not cause another registry call yet."""
        ...


class PublishPipeline:
    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        rules: PolicyLookup,
        sink: EventSink,
        publish_scope: str,
        admin_scope: str,
        max_body_bytes: int,
        lookups_per_minute: int = 0,
    ) -> None:
        self._verifier = verifier
        self._rules = rules
        self._sink = sink
        self._publish_scope = publish_scope
        self._admin_scope = admin_scope
        self._max_body_bytes = max_body_bytes
        self._lookups_per_minute = lookups_per_minute

    async def handle(self, request: PublishRequest) -> PublishResponse:
        started = time.perf_counter()
        record = RequestRecord(trace_id=trace_id_of(request.headers))
        try:
            problem = await self._publish(request, record)
        except Exception:
            log.exception("unexpected error trace=%s", record.trace_id)
            problem = problems.internal_error()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if problem is None:
            log.info("publish 200 ms=%.1f %s", elapsed_ms, record)
            return PublishResponse(200)
        record.problem = problem.kind.slug
        log.log(
            logging.WARNING if problem.status >= 500 else logging.INFO,
            "publish %d ms=%.1f %s",
            problem.status,
            elapsed_ms,
            record,
        )
        return problem_response(problem, instance=request.path, trace_id=record.trace_id)

    async def _publish(self, request: PublishRequest, record: RequestRecord) -> Problem | None:
        if request.method.upper() != "POST":
            return problems.method_not_allowed(request.method.upper())

        headers = request.headers
        try:
            publisher = await self._verifier.authenticate(headers.get("authorization"))
        except MissingToken:
            return problems.missing_token()
        except InvalidToken as error:
            return problems.invalid_token(str(error))
        except KeysUnavailable:
            return problems.issuer_unavailable()
        record.publisher = publisher.label[:128]
        if not publisher.has_scope(self._publish_scope):
            return problems.insufficient_scope(self._publish_scope)

        decision = content_mode(headers.get("content-type"), headers.keys())
        if decision.mode is ContentMode.UNSUPPORTED:
            return problems.unsupported_media_type(decision.reason)
        if decision.mode is ContentMode.BINARY:
            return problems.unsupported_media_type(
                "Binary content mode (ce- headers with a non-CloudEvents Content-Type) is not "
                "supported yet."
            )
        if decision.mode is ContentMode.BATCH:
            return problems.unsupported_media_type(
                "Batches (application/cloudevents-batch+json) are not supported yet."
            )

        declared = _declared_length(headers)
        if declared is not None and declared > self._max_body_bytes:
            return problems.body_too_large(self._max_body_bytes, declared)
        if len(request.body) > self._max_body_bytes:
            return problems.body_too_large(self._max_body_bytes, None)

        try:
            event = parse_structured(request.body, ALTINN_PROFILE)
            message = serialize(event)
        except InvalidEvent as invalid:
            return problems.invalid_event(invalid.errors)
        resource = str(event.attribute("resource"))
        record.event_id, record.resource = event.id[:128], resource  # ids are unbounded
        if len(message) > MAX_EVENT_BYTES:
            return problems.event_too_large(MAX_EVENT_BYTES, len(message))

        if publisher.has_scope(self._admin_scope):
            record.decision = "admin"
        else:
            identifier = registry_identifier(resource)
            try:
                found = await self._rules.lookup(identifier, requester=publisher.label)
            except RegistryUnavailable as error:
                record.decision, record.note = "error", str(error)
                return problems.registry_unavailable()
            except TooManyLookups as limited:
                record.decision = "limited"
                return problems.too_many_resource_lookups(
                    self._lookups_per_minute, limited.retry_after_seconds
                )
            record.authz = found.outcome.value
            permitted = found.rules is not None and permits_publish(
                found.rules, subject_attributes(publisher), resource_attributes(identifier, event)
            )
            record.decision = (
                "permit" if permitted else ("unknown" if found.rules is None else "deny")
            )
            if not permitted:
                return problems.not_authorized_for_resource(resource)

        try:
            await self._sink.send(message)
        except QueueUnavailable as error:
            record.note = str(error)
            return problems.queue_unavailable()
        return None


def problem_response(problem: Problem, *, instance: str, trace_id: str) -> PublishResponse:
    headers = {"Content-Type": problems.PROBLEM_CONTENT_TYPE, **problem.headers}
    return PublishResponse(
        problem.status, headers, problem.to_json(instance=instance, trace_id=trace_id)
    )
