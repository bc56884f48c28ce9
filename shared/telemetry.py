"""Traces and metrics of the pipeline, through the OpenTelemetry API only (no exporter here: the
edge configures one, see function_app.py and docs/deploy.md).

Two implementations with one interface:

- ``OpenTelemetry``, when an OpenTelemetry SDK is configured (in Azure, the Functions Python
  worker configures Azure Monitor's): a ``publish`` span per request (a ``publish event`` span
  per element of a batch), a child span per step that talks to the outside (token verification,
  the registry lookup, the event's record, the enqueue), and metrics;
- ``NoTelemetry``, when none is: nothing is recorded, and it costs nothing measurable. It still
  gives every request its W3C ids, which problems quote and queued events carry.

Every publish gets ids either way: the caller's trace continues when it sent a valid
``traceparent`` (or, under the Functions host, the host's invocation span is the parent), and a
new trace starts otherwise.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
#: Ids need to be unique, not secret: a seeded PRNG, not a system call per request.
_ids = random.Random()  # noqa: S311
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: tracestate: at most 32 list members of at most 256 characters each (W3C), 512 kept in all.
_TRACESTATE = re.compile(r"[\x20-\x7e]{1,512}")


@dataclass(frozen=True, slots=True)
class Parent:
    """The trace a publish continues: the caller's (or the Functions host's) span."""

    trace_id: str
    span_id: str
    sampled: bool
    tracestate: str | None = None


def parse_traceparent(value: str | None, tracestate: str | None = None) -> Parent | None:
    """A valid W3C ``traceparent`` (version 00, or a later one read as 00), else None."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    state = tracestate.strip() if tracestate else None
    if state is not None and not _TRACESTATE.fullmatch(state):
        state = None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1), state or None)


@dataclass(frozen=True, slots=True)
class TraceIds:
    """A span's W3C ids: what a problem's ``traceId`` and an event's ``traceparent`` name."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def new_ids(parent: Parent | None) -> TraceIds:
    """Ids of a new span, in the parent's trace when there is one."""
    span_id = f"{_ids.getrandbits(64):016x}"
    if parent is None:
        return TraceIds(f"{_ids.getrandbits(128):032x}", span_id, True)
    return TraceIds(parent.trace_id, span_id, parent.sampled)


class PublishSpan:
    """The span of one publish (a request, or an element of a batch): its ids, and where its
    attributes go."""

    def __init__(self, ids: TraceIds, span: Span | None = None) -> None:
        self.ids = ids
        self._span = span

    @property
    def recording(self) -> bool:
        """Whether attributes set here go anywhere (an SDK's span), or nowhere."""
        return self._span is not None

    def set(self, name: str, value: Any) -> None:
        if self._span is not None:
            self._span.set_attribute(name, value)

    def fail(self, error_type: str) -> None:
        if self._span is not None:
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR))


class _Given:
    """A context manager that gives ``span`` and does nothing else (cheaper than a generator
    one: NoTelemetry makes one per publish)."""

    __slots__ = ("span",)

    def __init__(self, span: PublishSpan) -> None:
        self.span = span

    def __enter__(self) -> PublishSpan:
        return self.span

    def __exit__(self, *_: object) -> None:
        return None


class NoTelemetry:
    """No OpenTelemetry SDK configured: ids only, nothing recorded.

    ``enabled`` is False: callers may skip building attributes that nothing would record."""

    enabled = False

    def publish(
        self, name: str, parent: Parent | None, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        return _Given(PublishSpan(new_ids(parent)))

    def element(
        self, within: PublishSpan, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[PublishSpan]:
        """The span of one element of a batch, a child of the batch's ``publish`` span."""
        ids = within.ids
        return _Given(PublishSpan(new_ids(Parent(ids.trace_id, ids.span_id, ids.sampled))))

    def step(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> AbstractContextManager[Span | None]:
        """A child span of the current one, for a step that talks to the outside."""
        return _NOTHING

    def published(self, status: int, problem: str, mode: str, replayed: bool) -> None:
        pass

    def looked_up(self, outcome: str) -> None:
        pass

    def enqueued(self, seconds: float, outcome: str) -> None:
        pass

    def batch(self, size: int) -> None:
        pass


_NOTHING: AbstractContextManager[None] = nullcontext()


class OpenTelemetry(NoTelemetry):
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
        self._published: Counter[tuple[int, str, str, bool]] = Counter()
        self._lookups: Counter[str] = Counter()
        meter.create_observable_counter(
            "events.published",
            callbacks=[self._observe_published],
            unit="{event}",
            description="Events answered, by HTTP status, problem type and content mode",
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

    @contextmanager
    def publish(
        self, name: str, parent: Parent | None, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[PublishSpan]:
        context = None if parent is None else _context_of(parent)
        with self._tracer.start_as_current_span(
            name, context=context, kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            ids = _ids_of(span)
            yield PublishSpan(ids if ids is not None else new_ids(parent), span)

    @contextmanager
    def element(
        self, within: PublishSpan, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[PublishSpan]:
        # the batch's span is the current one in every element's task: the new span's parent
        with self._tracer.start_as_current_span(
            "publish event", kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            ids = _ids_of(span)
            yield PublishSpan(ids if ids is not None else new_ids(None), span)

    def step(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> AbstractContextManager[Span | None]:
        return self._tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def published(self, status: int, problem: str, mode: str, replayed: bool) -> None:
        with self._lock:
            self._published[(status, problem, mode, replayed)] += 1

    def looked_up(self, outcome: str) -> None:
        with self._lock:
            self._lookups[outcome] += 1

    def enqueued(self, seconds: float, outcome: str) -> None:
        self._enqueue.record(seconds, {"outcome": outcome})

    def batch(self, size: int) -> None:
        self._batch.record(size)

    def _observe_published(self, options: Any) -> Iterator[metrics.Observation]:
        with self._lock:
            counts = list(self._published.items())
        for (status, problem, mode, replayed), count in counts:
            yield metrics.Observation(
                count,
                {
                    "http.response.status_code": status,
                    "events.problem": problem,
                    "events.content_mode": mode,
                    "events.replayed": replayed,
                },
            )

    def _observe_replays(self, options: Any) -> Iterator[metrics.Observation]:
        with self._lock:
            replays = sum(n for (_, _, _, replayed), n in self._published.items() if replayed)
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


def telemetry_for(tracer_provider: Any = None, meter_provider: Any = None) -> NoTelemetry:
    """OpenTelemetry when an SDK's provider is configured (or given), else NoTelemetry."""
    provider = tracer_provider or trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return NoTelemetry()
    return OpenTelemetry(provider, meter_provider)
