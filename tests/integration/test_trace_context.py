"""Trace context (docs/contract.md, "Trace context") through the real function handler, Azurite, the
dev issuer and the dev registry: the queued event carries the distributed-tracing extension,
naming its publish span, in the caller's trace; and with an OpenTelemetry SDK configured, that
span is one that was recorded, with its steps as children."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devtools.invocation import DevContext, DevTraceContext
from devtools.issuer import DevIssuer
from shared.app.runtime import Runtime
from shared.app.settings import Settings
from shared.app.telemetry import OpenTelemetry
from shared.core.pipeline import PublishRequest
from shared.core.tracecontext import parse_traceparent
from tests.integration.conftest import Post, problem_of, registered_functions
from tests.support import VALID_EVENT, QueueReader, body_of

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CALLER_TRACE, CALLER_SPAN = CALLER.split("-")[1:3]
BATCH = "application/cloudevents-batch+json"


def trace_of(traceparent: str) -> tuple[str, str]:
    parent = parse_traceparent(traceparent)
    assert parent is not None, traceparent
    return parent.trace_id, parent.span_id


async def test_the_callers_trace_continues_into_the_queued_event(
    post: Post, queue: QueueReader
) -> None:
    response = await post(VALID_EVENT, headers={"traceparent": CALLER, "tracestate": "ro=1,x=y"})
    assert response.status_code == 200
    [event] = queue.drain(keep_trace=True)
    trace_id, span_id = trace_of(event["traceparent"])
    assert trace_id == CALLER_TRACE
    assert span_id != CALLER_SPAN  # it names the publish span, not the caller's
    assert event["tracestate"] == "ro=1,x=y"


async def test_without_a_traceparent_the_event_starts_a_new_trace(
    post: Post, queue: QueueReader
) -> None:
    assert (await post(VALID_EVENT)).status_code == 200
    [event] = queue.drain(keep_trace=True)
    assert trace_of(event["traceparent"])[0] != CALLER_TRACE
    assert "tracestate" not in event


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 with more
    ],
)
async def test_an_invalid_traceparent_is_ignored_not_refused(
    post: Post, queue: QueueReader, value: str
) -> None:
    response = await post(VALID_EVENT, headers={"traceparent": value, "tracestate": "a=b"})
    assert response.status_code == 200
    [event] = queue.drain(keep_trace=True)
    assert trace_of(event["traceparent"])[0] != CALLER_TRACE
    assert "tracestate" not in event  # the state of a trace that was not continued


async def test_a_later_traceparent_version_is_read_as_00(post: Post, queue: QueueReader) -> None:
    later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
    assert (await post(VALID_EVENT, headers={"traceparent": later})).status_code == 200
    [event] = queue.drain(keep_trace=True)
    assert trace_of(event["traceparent"])[0] == CALLER_TRACE


async def test_an_events_own_traceparent_is_kept_as_sent(post: Post, queue: QueueReader) -> None:
    own = {**VALID_EVENT, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    own["tracestate"] = "vendor=1"
    assert (await post(own, headers={"traceparent": CALLER})).status_code == 200
    assert queue.drain(keep_trace=True) == [own]


@pytest.mark.parametrize(
    "state",
    ['};{"x":1, <script>', "Upper=1", "a=1,a=2", "a=" + "x" * 257, ",".join(["k=v"] * 33)],
)
async def test_an_invalid_tracestate_header_is_not_queued(
    post: Post, queue: QueueReader, state: str
) -> None:
    response = await post(VALID_EVENT, headers={"traceparent": CALLER, "tracestate": state})
    assert response.status_code == 200
    [event] = queue.drain(keep_trace=True)
    assert trace_of(event["traceparent"])[0] == CALLER_TRACE  # the trace still continues
    assert "tracestate" not in event


async def test_an_events_own_tracestate_goes_only_with_its_own_traceparent(
    post: Post, queue: QueueReader
) -> None:
    """Without its own traceparent, the event gets the publish span's, and a state from another
    trace would be paired with it: the caller's tracestate (here none) is queued instead."""
    stray = {**VALID_EVENT, "tracestate": "vendor=1"}
    assert (await post(stray, headers={"traceparent": CALLER})).status_code == 200
    headers = {"traceparent": CALLER, "tracestate": "ro=2"}
    assert (await post({**stray, "id": "second"}, headers=headers)).status_code == 200
    without, with_callers = queue.drain(keep_trace=True)
    assert trace_of(without["traceparent"])[0] == CALLER_TRACE
    assert "tracestate" not in without
    assert with_callers["tracestate"] == "ro=2"


async def test_an_events_own_invalid_tracestate_is_dropped_its_traceparent_kept(
    post: Post, queue: QueueReader
) -> None:
    own = {**VALID_EVENT, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert (await post({**own, "tracestate": "<script>"})).status_code == 200
    assert queue.drain(keep_trace=True) == [own]


async def test_binary_mode_carries_the_trace_context_too(post: Post, queue: QueueReader) -> None:
    headers = {
        f"ce-{name}": str(value)
        for name, value in VALID_EVENT.items()
        if name not in ("data", "datacontenttype")
    }
    headers["traceparent"] = CALLER
    response = await post(b'{"a":1}', content_type="application/json", headers=headers)
    assert response.status_code == 200
    [event] = queue.drain(keep_trace=True)
    assert trace_of(event["traceparent"])[0] == CALLER_TRACE


async def test_each_batch_element_carries_its_own_span(post: Post, queue: QueueReader) -> None:
    own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    events = [{**VALID_EVENT, "id": f"b{n}"} for n in range(3)]
    events.append({**VALID_EVENT, "id": "b3", "traceparent": own})
    response = await post(
        json.dumps(events).encode(), content_type=BATCH, headers={"traceparent": CALLER}
    )
    assert response.status_code == 200
    stored = {event["id"]: event["traceparent"] for event in queue.drain(keep_trace=True)}
    assert stored["b3"] == own
    spans = {trace_of(stored[f"b{n}"]) for n in range(3)}
    assert {trace_id for trace_id, _ in spans} == {CALLER_TRACE}
    assert len({span_id for _, span_id in spans}) == 3  # each element, its own span


async def test_a_problems_trace_id_is_the_hosts_trace(function_env: dict[str, str]) -> None:
    """Under the Functions host the publish span is a child of the host's invocation span, so a
    problem's traceId names the trace App Insights calls operation_Id."""
    host_span = "00-12345678901234567890123456789012-1234567890abcdef-01"
    context = DevContext("publish_event", DevTraceContext(host_span, ""))
    request = func.HttpRequest("POST", "http://localhost/events", headers={}, body=b"{}")
    function = registered_functions()["publish_event"].get_user_function()
    response = await function(request, context)
    assert response.status_code == 401
    assert problem_of(response)["traceId"].split("-")[1] == "12345678901234567890123456789012"


# -- with an OpenTelemetry SDK: the recorded spans and metrics --------------------------------


@pytest.fixture
def exporter() -> Iterator[tuple[InMemorySpanExporter, InMemoryMetricReader, OpenTelemetry]]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = OpenTelemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    yield spans, reader, telemetry
    tracer_provider.shutdown()


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_the_queued_traceparent_names_a_recorded_span_in_the_callers_trace(
    function_env: dict[str, str],
    exporter: tuple[InMemorySpanExporter, InMemoryMetricReader, OpenTelemetry],
    issuer: DevIssuer,
    queue: QueueReader,
) -> None:
    spans, reader, telemetry = exporter
    built = Runtime.build(Settings(), telemetry=telemetry)  # type: ignore[call-arg]
    token = issuer.mint()
    try:
        response = await built.pipeline.handle(
            PublishRequest(
                "POST",
                "/events",
                {
                    "authorization": f"Bearer {token}",
                    "content-type": "application/json",
                    "traceparent": CALLER,
                },
                body_of(VALID_EVENT),
            )
        )
        assert response.status == 200
        await built.pipeline.delivery.drain(10)
    finally:
        await built.close()
    [event] = queue.drain(keep_trace=True)
    recorded = by_name(spans.get_finished_spans())
    [publish] = recorded["publish"]
    assert publish.context is not None
    assert trace_of(event["traceparent"]) == (
        f"{publish.context.trace_id:032x}",
        f"{publish.context.span_id:016x}",
    )
    assert f"{publish.context.trace_id:032x}" == CALLER_TRACE
    assert publish.parent is not None
    assert f"{publish.parent.span_id:016x}" == CALLER_SPAN
    # A span for each step that talked to the outside (the registry, on this first lookup; the
    # table; the queue), none for the token, checked with the issuer's keys in memory.
    for step in ("look up resource rules", "claim event id", "enqueue"):
        [child] = recorded[step]
        assert child.parent is not None
        assert child.parent.span_id == publish.context.span_id, step
    assert set(recorded) == {"publish", "look up resource rules", "claim event id", "enqueue"}
    attributes: dict[str, Any] = dict(publish.attributes or {})
    assert attributes["http.response.status_code"] == 200
    assert attributes["cloudevents.event_id"] == VALID_EVENT["id"]
    assert attributes["events.cache.outcome"] == "miss"
    assert attributes["events.decision"] == "permit"
    assert attributes["events.dedup"] == "new"
    assert recorded["look up resource rules"][0].attributes["events.cache.outcome"] == "miss"
    enqueue = recorded["enqueue"][0]
    assert enqueue.attributes is not None
    assert enqueue.attributes["messaging.destination.name"] == function_env["EVENTS_QUEUE_NAME"]
    # never the token, the data or alternativesubject in any attribute
    everything = json.dumps(
        [dict(span.attributes or {}) for span in spans.get_finished_spans()], default=str
    )
    for secret in (token, VALID_EVENT["alternativesubject"], "Ærlig talt"):
        assert secret not in everything
    names = {
        metric.name
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {"events.published", "events.registry.lookups", "events.enqueue.duration"} <= names


async def test_steps_answered_from_memory_are_attributes_not_spans(
    function_env: dict[str, str],
    exporter: tuple[InMemorySpanExporter, InMemoryMetricReader, OpenTelemetry],
    issuer: DevIssuer,
    queue: QueueReader,
) -> None:
    """The second publish on a resource finds its rules in the cache and the issuer's keys in
    memory: three spans (the publish, the record's claim, the send), the cache's answer an
    attribute of the publish span. A batch element's span carries the same attributes."""
    spans, _, telemetry = exporter
    built = Runtime.build(Settings(), telemetry=telemetry)  # type: ignore[call-arg]
    token = issuer.mint()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    try:
        first = {**VALID_EVENT, "id": "memory-1"}
        second = {**VALID_EVENT, "id": "memory-2"}
        assert (
            await built.pipeline.handle(PublishRequest("POST", "/events", headers, body_of(first)))
        ).status == 200
        spans.clear()
        response = await built.pipeline.handle(
            PublishRequest("POST", "/events", headers, body_of(second))
        )
        assert response.status == 200
        await built.pipeline.delivery.drain(10)
        recorded = by_name(spans.get_finished_spans())
        assert sorted(recorded) == ["claim event id", "enqueue", "publish"]
        [publish] = recorded["publish"]
        attributes: dict[str, Any] = dict(publish.attributes or {})
        assert attributes["events.cache.outcome"] == "hit"
        assert attributes["events.decision"] == "permit"
        assert attributes["events.dedup"] == "new"
        spans.clear()
        batch = [{**VALID_EVENT, "id": "memory-3"}, {**VALID_EVENT, "id": "memory-2"}]
        batch_headers = {**headers, "content-type": "application/cloudevents-batch+json"}
        response = await built.pipeline.handle(
            PublishRequest("POST", "/events", batch_headers, json.dumps(batch).encode())
        )
        assert response.status == 200
        await built.pipeline.delivery.drain(10)
        recorded = by_name(spans.get_finished_spans())
        assert "look up resource rules" not in recorded
        elements = {
            (span.attributes or {})["cloudevents.event_id"]: dict(span.attributes or {})
            for span in recorded["publish event"]
        }
        assert elements["memory-3"]["events.dedup"] == "new"
        assert elements["memory-2"]["events.dedup"] == "replay"
        assert {e["events.cache.outcome"] for e in elements.values()} == {"hit"}
    finally:
        await built.close()
    assert {event["id"] for event in queue.drain()} == {"memory-1", "memory-2", "memory-3"}
