"""The publish pipeline: one request in, one response out, the steps in the documented order.

method -> authenticate (token, scope) -> content mode and body size -> read the event (parse and
validate; one queue message, or a claim check for its data) -> authorize on ``resource`` ->
claim its identity -> enqueue -> 200. A batch goes to the batch processor after the body size.

The steps are shared/core/steps.py's; what ends a request is raised there and answered here,
by one table (shared/core/problems.py, ``problem_for``). Each request has one report, rendered
once at the end into its log line, its span and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.cloudevents import ContentMode
from shared.core import problems
from shared.core.batch import BatchOutcome, BatchProcessor
from shared.core.idempotency import Polls
from shared.core.model import Published
from shared.core.ports import Clock, Unavailable
from shared.core.problems import Problem, Rejected, problem_for
from shared.core.report import PublishReport
from shared.core.steps import (
    VALIDATE_ONLY,
    EventTrace,
    Limits,
    Ports,
    PublishRequest,
    PublishSteps,
    validate_only,
)
from shared.core.telemetry import NoTelemetry, PublishSpan, Telemetry
from shared.core.timing import SYSTEM_CLOCK
from shared.core.tracecontext import Parent, parse_traceparent

__all__ = ["Limits", "Ports", "PublishPipeline", "PublishRequest", "PublishResponse"]

log = logging.getLogger("events.publish")

REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}
#: On every answer of a dry run.
VALIDATE_ONLY_HEADERS = {"Validate-Only": "true"}


@dataclass(frozen=True, slots=True)
class PublishResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


def parent_of(request: PublishRequest) -> Parent | None:
    """The span a request's publish continues: the host's invocation span (which continues the
    caller's), else the caller's valid ``traceparent``; None starts a new trace."""
    return parse_traceparent(request.trace_parent, request.trace_state) or parse_traceparent(
        request.headers.get("traceparent"), request.headers.get("tracestate")
    )


def problem_response(problem: Problem, *, instance: str, trace_id: str) -> PublishResponse:
    headers = {"Content-Type": problems.PROBLEM_CONTENT_TYPE, **problem.headers}
    return PublishResponse(
        problem.status, headers, problem.to_json(instance=instance, trace_id=trace_id)
    )


def _dry_run_body(answer: Published) -> bytes:
    """A dry run's 200 for one event: what the publish would answer."""
    replayed = b"true" if answer.replayed else b"false"
    return b'{"validateOnly":true,"status":200,"replayed":' + replayed + b"}"


class PublishPipeline:
    """The documented steps, in order, over the ports, within the limits."""

    def __init__(
        self,
        ports: Ports,
        limits: Limits | None = None,
        *,
        telemetry: Telemetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.telemetry: Telemetry = telemetry if telemetry is not None else NoTelemetry()
        self.steps = PublishSteps(ports, limits or Limits(), self.telemetry, clock)
        self.batch = BatchProcessor(self.steps)
        self.delivery = self.steps.delivery

    async def handle(self, request: PublishRequest) -> PublishResponse:
        started = time.perf_counter()
        parent = parent_of(request)
        attributes = (
            {"http.request.method": request.method, "url.path": request.path}
            if self.telemetry.enabled
            else None
        )
        with self.telemetry.publish("publish", parent, attributes) as span:
            report = PublishReport(
                span.ids.problem_trace_id, method=request.method, path=request.path
            )
            trace = EventTrace(span.ids, parent.tracestate if parent is not None else None)
            answer: Published | BatchOutcome | Problem
            try:
                answer = await self._publish(request, report, span, trace)
            except Exception as error:
                answer = self._problem(error, report)
            response = self._respond(answer, request, report)
            self.telemetry.finished(report, span)
            # the request's one log line, inside its span: exporters join the two
            log.log(
                logging.WARNING if response.status >= 500 else logging.INFO,
                "publish %d ms=%.1f %s",
                response.status,
                (time.perf_counter() - started) * 1000,
                report,
            )
            return response

    async def _publish(
        self, request: PublishRequest, report: PublishReport, span: PublishSpan, trace: EventTrace
    ) -> Published | BatchOutcome:
        steps = self.steps
        dry_run = validate_only(request.query)
        report.validate_only = dry_run is True  # every answer says so, from here on
        steps.check_method(request)
        if dry_run is None:
            raise Rejected(problems.invalid_parameter(VALIDATE_ONLY))
        publisher = await steps.authenticate(request, report)
        mode = steps.content_mode(request, report)
        if mode is ContentMode.BATCH:
            return await self.batch.publish(
                publisher, request.body, report, span, trace, dry_run=dry_run
            )
        read = steps.read_event(mode, request, report, trace)
        return await steps.publish_event(
            publisher, read, report, steps.deadline(), Polls(), dry_run=dry_run
        )

    def _problem(self, error: Exception, report: PublishReport) -> Problem:
        problem = problem_for(error)
        if problem is None:
            log.exception("unexpected error trace=%s", report.trace_id)
            return problems.internal_error()
        if isinstance(error, Unavailable):  # every dependency: 503 with Retry-After, naming it
            report.note = str(error)
        return problem

    def _respond(
        self,
        answer: Published | BatchOutcome | Problem,
        request: PublishRequest,
        report: PublishReport,
    ) -> PublishResponse:
        dry = report.validate_only
        if isinstance(answer, BatchOutcome):
            report.note = answer.summary()
            response = PublishResponse(answer.status, answer.headers(), answer.to_json())
        elif isinstance(answer, Published):
            report.replayed = answer.replayed
            headers = REPLAYED_HEADERS if answer.replayed else {}
            if dry:
                response = PublishResponse(
                    200, {"Content-Type": "application/json", **headers}, _dry_run_body(answer)
                )
            else:
                response = PublishResponse(200, headers)
        else:
            report.problem = answer.kind.slug
            response = problem_response(answer, instance=request.path, trace_id=report.trace_id)
        if dry:
            response = PublishResponse(
                response.status, {**response.headers, **VALIDATE_ONLY_HEADERS}, response.body
            )
        report.status = response.status
        return response

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Let sends and record settlements still running finish."""
        await self.delivery.drain(grace_seconds)
