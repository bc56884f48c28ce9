"""Traces and metrics through the OpenTelemetry API (no exporter here: in Azure the Functions
Python worker configures Azure Monitor's, docs/deploy.md "Telemetry"; locally the dev host can
configure a console exporter, devtools/devhost.py).

``OpenTelemetry`` is the recording implementation of the core's ``Telemetry`` (shared/core/
telemetry.py, where ``NoTelemetry`` is the other); ``telemetry_for`` picks one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shared.core.report import PublishReport
from shared.core.telemetry import NoTelemetry, PublishSpan, StepKind, StepSpan, Telemetry
from shared.core.tracecontext import Parent, TraceIds, new_ids

_KINDS = {"internal": SpanKind.INTERNAL, "producer": SpanKind.PRODUCER}
#: The enqueue histogram's attributes, made once for each outcome.
_OUTCOMES = {outcome: {"outcome": outcome} for outcome in ("stored", "failed")}
#: What an unsampled publish's elements and steps get: ids only, nothing recorded.
_UNSAMPLED = NoTelemetry()


class _CurrentSpan:
    """A publish's span in the SDK, made current while the publish runs (its steps' spans and
    the elements' of a batch are its children), and its ids."""

    __slots__ = ("_span", "_token", "ids")

    def __init__(self, span: Span, parent: Parent | None) -> None:
        self._span = span
        ids = _ids_of(span)
        self.ids = ids if ids is not None else new_ids(parent)
        self._token: object = None

    def _attach(self) -> None:
        self._token = context_api.attach(trace.set_span_in_context(self._span))

    def _detach(self) -> None:
        context_api.detach(self._token)  # type: ignore[arg-type]


class RecordedSpan(_CurrentSpan):
    """A recorded publish span: its attributes, kept here and given to the span in one call when
    it ends (the SDK checks and locks for each call)."""

    __slots__ = ("_attributes",)
    recording = True

    def __init__(self, span: Span, parent: Parent | None) -> None:
        super().__init__(span, parent)
        self._attributes: dict[str, Any] = {}

    def set(self, name: str, value: Any) -> None:
        self._attributes[name] = value

    def fail(self, error_type: str) -> None:
        self._attributes["error.type"] = error_type
        self._span.set_status(Status(StatusCode.ERROR))

    def __enter__(self) -> RecordedSpan:
        self._attach()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        self._detach()
        span = self._span
        if error is not None and not isinstance(error, GeneratorExit):
            span.record_exception(error)  # as the SDK's start_as_current_span does
            span.set_status(Status(StatusCode.ERROR, f"{kind.__name__ if kind else ''}: {error}"))
        if self._attributes:
            span.set_attributes(self._attributes)
        span.end()


class UnrecordedSpan(_CurrentSpan):
    """A publish's span that the sampler did not record (in Azure, most of them): current while
    the publish runs, as a recorded one is, so that what the publish calls (the registry client's
    spans) stays in its trace, with its ids (the queued event's ``traceparent`` names it,
    unsampled), and nothing else. Its steps and a batch's elements record no span either,
    whatever the sampler would decide for them: a trace is whole or not there, never steps
    without their publish (docs/deploy.md, "Sampling")."""

    __slots__ = ()
    recording = False

    def set(self, name: str, value: Any) -> None:
        pass

    def fail(self, error_type: str) -> None:
        pass

    def __enter__(self) -> UnrecordedSpan:
        self._attach()
        return self

    def __exit__(self, *_: object) -> None:
        self._detach()


class _Step:
    """A step's span, recorded when the step ends: started then with the step's start time and
    ended at once, a child of the current (publish) span, with every attribute the step set
    given at its start. It is never made the current span, which saves making and restoring a
    context per step (about a fifth of a span's cost in the SDK); what the step calls (the
    blob SDK's own spans, when Azure SDK tracing is on) is then a child of the publish span,
    next to the step's span, not under it."""

    __slots__ = ("_attributes", "_kind", "_name", "_started", "_tracer")

    def __init__(
        self, tracer: trace.Tracer, name: str, kind: SpanKind, attributes: Mapping[str, Any] | None
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self._started = 0

    def __enter__(self) -> _Step:
        self._started = time.time_ns()
        return self

    def set_attribute(self, key: str, value: Any) -> None:
        self._attributes[key] = value

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is not None:
            self._attributes["error.type"] = kind.__qualname__ if kind is not None else "error"
        span = self._tracer.start_span(
            self._name, kind=self._kind, attributes=self._attributes, start_time=self._started
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()


def _describe(span: PublishSpan, report: PublishReport) -> None:
    """What the steps answered from memory (the rules' cache, the authorization, the record),
    and the CloudEvents semantic conventions' attributes (never data or alternativesubject)."""
    if report.authz != "-":
        span.set("events.cache.outcome", report.authz)
    if report.decision != "-":
        span.set("events.decision", report.decision)
    if report.dedup != "-":
        span.set("events.dedup", report.dedup)
    if report.event_id == "-":
        return
    span.set("cloudevents.event_id", report.event_id)
    span.set("cloudevents.event_source", report.source)
    span.set("cloudevents.event_type", report.type)
    span.set("cloudevents.event_spec_version", "1.0")


def _describe_publish(span: PublishSpan, report: PublishReport) -> None:
    """A request's publish span: its content mode, batch size, dry run and status, then
    ``_describe``'s attributes."""
    if report.mode != "-":
        span.set("events.content_mode", report.mode)
    if report.batch_size is not None:
        span.set("events.batch.size", report.batch_size)
    if report.validate_only:
        span.set("events.validate_only", True)
    _describe(span, report)
    span.set("http.response.status_code", report.status)
    if report.problem != "-":
        span.fail(report.problem)


class OpenTelemetry:
    """Spans and metrics through the configured OpenTelemetry SDK.

    Counts go to observable counters, read at each export from counters kept here (one
    dictionary increment on the request's path); durations and sizes to histograms.
    """

    enabled = True

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer("events.publish", tracer_provider=tracer_provider)
        meter = metrics.get_meter("events.publish", meter_provider=meter_provider)
        self._lock = threading.Lock()
        self._published: Counter[tuple[int, str, str, bool, bool]] = Counter()
        self._lookups: Counter[str] = Counter()
        meter.create_observable_counter(
            "events.published",
            callbacks=[self._observe_published],
            unit="{event}",
            description=(
                "Requests answered, by HTTP status, problem type, content mode, replay and dry run"
            ),
        )
        meter.create_observable_counter(
            "events.replays",
            callbacks=[self._observe_replays],
            unit="{event}",
            description="Events answered as a replay (published before; not queued again)",
        )
        meter.create_observable_counter(
            "events.registry.lookups",
            callbacks=[self._observe_lookups],
            unit="{lookup}",
            description="Resource Registry rule lookups, by how the cache answered",
        )
        self._enqueue = meter.create_histogram(
            "events.enqueue.duration",
            unit="s",
            description="How long the queue took to confirm a message (or the answer gave up)",
        )
        self._batch = meter.create_histogram(
            "events.batch.size", unit="{event}", description="Events in one batch request"
        )

    def publish(
        self, name: str, parent: Parent | None, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        context = None if parent is None else _context_of(parent)
        span = self._tracer.start_span(
            name, context=context, kind=SpanKind.INTERNAL, attributes=attributes
        )
        if span.is_recording():
            return RecordedSpan(span, parent)
        return UnrecordedSpan(span, parent)

    def element(
        self, within: PublishSpan, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        if not within.recording:  # the batch's span was not sampled: nor are its elements'
            return _UNSAMPLED.element(within, attributes)
        # the batch's span is the current one in every element's task: the new span's parent
        span = self._tracer.start_span(
            "publish event", kind=SpanKind.INTERNAL, attributes=attributes
        )
        return RecordedSpan(span, None)

    def step(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: StepKind = "internal",
    ) -> AbstractContextManager[StepSpan | None]:
        # the current span is the publish's (a batch's, for its elements' steps)
        if not trace.get_current_span().is_recording():
            return _UNSAMPLED.step(name, attributes, kind)
        return _Step(self._tracer, name, _KINDS[kind], attributes)

    def finished(self, report: PublishReport, span: PublishSpan) -> None:
        if report.batch_size is not None:
            self.batch(report.batch_size)
        if span.recording:
            _describe_publish(span, report)
        for outcome in report.lookups:
            self.looked_up(outcome)
        for seconds, sent in report.sends:
            self.enqueued(seconds, sent)
        self.published(
            report.status, report.problem, report.mode, report.replayed, report.validate_only
        )

    def element_finished(self, report: PublishReport, span: PublishSpan) -> None:
        if span.recording:
            _describe(span, report)
            if report.problem != "-":
                span.fail(report.problem)

    def published(
        self, status: int, problem: str, mode: str, replayed: bool, validate_only: bool = False
    ) -> None:
        with self._lock:
            self._published[(status, problem, mode, replayed, validate_only)] += 1

    def looked_up(self, outcome: str) -> None:
        with self._lock:
            self._lookups[outcome] += 1

    def enqueued(self, seconds: float, outcome: str) -> None:
        attributes = _OUTCOMES.get(outcome)
        self._enqueue.record(seconds, attributes if attributes else {"outcome": outcome})

    def batch(self, size: int) -> None:
        self._batch.record(size)

    def _observe_published(self, options: Any) -> Iterator[metrics.Observation]:
        with self._lock:
            counts = list(self._published.items())
        for (status, problem, mode, replayed, validate_only), count in counts:
            yield metrics.Observation(
                count,
                {
                    "http.response.status_code": status,
                    "events.problem": problem,
                    "events.content_mode": mode,
                    "events.replayed": replayed,
                    "events.validate_only": validate_only,
                },
            )

    def _observe_replays(self, options: Any) -> Iterator[metrics.Observation]:
        with self._lock:
            replays = sum(  # a dry run's "would be a replay" is not one
                n for (_, _, _, replayed, dry), n in self._published.items() if replayed and not dry
            )
        yield metrics.Observation(replays)

    def _observe_lookups(self, options: Any) -> Iterator[metrics.Observation]:
        with self._lock:
            counts = list(self._lookups.items())
        for outcome, count in counts:
            yield metrics.Observation(count, {"events.cache.outcome": outcome})


def _context_of(parent: Parent) -> Any:
    span_context = trace.SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(1 if parent.sampled else 0),
        trace_state=trace.TraceState.from_header([parent.tracestate])
        if parent.tracestate
        else None,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


def _ids_of(span: Span) -> TraceIds | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return TraceIds(
        f"{context.trace_id:032x}", f"{context.span_id:016x}", bool(context.trace_flags.sampled)
    )


def telemetry_for(tracer_provider: Any = None, meter_provider: Any = None) -> Telemetry:
    """OpenTelemetry when an SDK's provider is configured (or given), else NoTelemetry."""
    provider = tracer_provider or trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return NoTelemetry()
    return OpenTelemetry(provider, meter_provider)
