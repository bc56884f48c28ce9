"""Telemetry on its own (shared/core/telemetry.py, shared/app/telemetry.py): W3C ids with and
without an SDK, and the metrics' shape (OpenTelemetry's in-memory reader and exporter; the
pipeline's spans are checked through the handler in tests/integration/test_trace_context.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from shared.app.telemetry import OpenTelemetry, telemetry_for
from shared.core.report import PublishReport
from shared.core.telemetry import NoTelemetry
from shared.core.tracecontext import Parent, parse_traceparent

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_and_its_state() -> None:
    parent = parse_traceparent(CALLER, " a=1,b=2 ")
    assert parent == Parent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True, "a=1,b=2")
    unsampled = parse_traceparent(CALLER[:-2] + "00")
    assert unsampled is not None
    assert not unsampled.sampled
    assert parse_traceparent(CALLER, "x" * 600) == Parent(parent.trace_id, parent.span_id, True)


def test_without_an_sdk_ids_are_made_and_nothing_is_recorded() -> None:
    telemetry = telemetry_for()  # no global provider is configured in the tests
    assert type(telemetry) is NoTelemetry
    parent = parse_traceparent(CALLER)
    with telemetry.publish("publish", parent) as span:
        assert span.ids.trace_id == parent.trace_id  # type: ignore[union-attr]
        assert span.ids.span_id != parent.span_id  # type: ignore[union-attr]
        span.set("anything", 1)  # no span to set it on: nothing happens
        with telemetry.element(span) as element:
            assert element.ids.trace_id == span.ids.trace_id
            assert element.ids.span_id != span.ids.span_id
    with telemetry.publish("publish", None) as fresh:
        assert len(fresh.ids.trace_id) == 32
        assert fresh.ids.traceparent.endswith("-01")


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    points: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = (point.count, point.sum)  # type: ignore[attr-defined]
                    points.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return points


def test_the_metrics_count_outcomes_lookups_enqueues_batches_and_replays() -> None:
    reader = InMemoryMetricReader()
    telemetry = OpenTelemetry(TracerProvider(), MeterProvider(metric_readers=[reader]))
    telemetry.published(200, "-", "structured", False)
    telemetry.published(200, "-", "structured", False)
    telemetry.published(200, "-", "binary", True)
    telemetry.published(503, "queue-unavailable", "batch", False)
    for outcome in ("hit", "hit", "miss", "error"):
        telemetry.looked_up(outcome)
    telemetry.enqueued(0.002, "stored")
    telemetry.batch(100)
    points = metric_points(reader)
    published = {
        (a["http.response.status_code"], a["events.problem"], a["events.content_mode"]): v
        for a, v in points["events.published"]
    }
    assert published == {
        (200, "-", "structured"): 2,
        (200, "-", "binary"): 1,
        (503, "queue-unavailable", "batch"): 1,
    }
    assert points["events.replays"] == [({}, 1)]
    lookups = {a["events.cache.outcome"]: v for a, v in points["events.registry.lookups"]}
    assert lookups == {"hit": 2, "miss": 1, "error": 1}
    assert points["events.enqueue.duration"] == [({"outcome": "stored"}, (1, 0.002))]
    assert points["events.batch.size"] == [({}, (1, 100))]


def test_with_an_sdk_the_ids_are_the_recorded_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = OpenTelemetry(provider, MeterProvider())
    with telemetry.publish("publish", parse_traceparent(CALLER)) as span:
        with telemetry.step("enqueue", {"messaging.operation.type": "send"}):
            pass
        with telemetry.element(span) as element:
            element.fail("queue-unavailable")
    recorded = {recorded.name: recorded for recorded in exporter.get_finished_spans()}
    publish, enqueue, event = recorded["publish"], recorded["enqueue"], recorded["publish event"]
    assert f"{publish.context.span_id:016x}" == span.ids.span_id
    assert f"{event.context.span_id:016x}" == element.ids.span_id
    assert enqueue.parent is not None
    assert event.parent is not None
    assert enqueue.parent.span_id == publish.context.span_id
    assert event.parent.span_id == publish.context.span_id
    assert event.attributes is not None
    assert event.attributes["error.type"] == "queue-unavailable"


_DEV_HOST_TELEMETRY = """
import io, sys
from contextlib import redirect_stdout
from devtools.devhost import configure_console_telemetry
from shared.app.telemetry import telemetry_for
from opentelemetry import trace
printed = io.StringIO()
with redirect_stdout(printed):
    configure_console_telemetry()
    telemetry = telemetry_for()
    with telemetry.publish("publish", None) as span:
        pass
    getattr(trace.get_tracer_provider(), "force_flush", lambda: None)()
text = printed.getvalue()
print(type(telemetry).__name__, len(span.ids.trace_id), len(text), "0x" + span.ids.trace_id in text)
"""


@pytest.mark.parametrize(
    ("exporter", "recorded", "prints"),
    [
        ("console", "OpenTelemetry", True),
        ("none", "OpenTelemetry", False),
        ("", "NoTelemetry", False),
    ],
)
def test_the_dev_hosts_otel_traces_exporter_switch(
    exporter: str, recorded: str, prints: bool
) -> None:
    """console prints every span; none records them through the SDK and exports nothing (the
    benchmark's telemetry on); unset configures no SDK at all."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("OTEL_")
    }
    result = subprocess.run(  # noqa: S603 - our own interpreter, our own script
        [sys.executable, "-c", _DEV_HOST_TELEMETRY],
        env={**environment, "OTEL_TRACES_EXPORTER": exporter},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    kind, id_length, printed, names_the_span = result.stdout.split()
    assert kind == recorded
    assert id_length == "32"
    assert (int(printed) > 0) is prints
    assert names_the_span == str(prints)


def test_dry_runs_are_told_apart_in_the_span_the_metrics_and_the_log_line() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    telemetry = OpenTelemetry(provider, MeterProvider(metric_readers=[reader]))
    dry = PublishReport("00-" + "1" * 32 + "-" + "2" * 16 + "-01", mode="structured")
    dry.validate_only, dry.replayed, dry.status = True, True, 200
    real = PublishReport("00-" + "3" * 32 + "-" + "4" * 16 + "-01", mode="structured")
    real.replayed, real.status = True, 200
    for report in (dry, real):
        with telemetry.publish("publish", None) as span:
            telemetry.finished(report, span)
    spans = exporter.get_finished_spans()
    assert [dict(s.attributes or {}).get("events.validate_only") for s in spans] == [True, None]
    points = metric_points(reader)
    by_dry = {a["events.validate_only"]: v for a, v in points["events.published"]}
    assert by_dry == {True: 1, False: 1}
    assert points["events.replays"] == [({}, 1)]  # a dry run's "would be a replay" is not one
    assert dry.log_line().startswith("validate_only=true ")
    assert "validate_only" not in real.log_line()


class _AllButThePublish(Sampler):
    """Drops the spans named ``publish`` and samples every other: not parent-based, so that the
    SDK alone would record a dropped publish's children as orphans."""

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, *_: Any, **__: Any
    ) -> SamplingResult:
        decision = Decision.DROP if name == "publish" else Decision.RECORD_AND_SAMPLE
        return SamplingResult(decision)

    def get_description(self) -> str:
        return "all but the publish"


def test_an_unsampled_publish_records_no_step_or_element_span_whatever_the_sampler() -> None:
    """A trace is whole or absent: the steps and elements of a publish the sampler dropped are
    not recorded, though this sampler would keep them; the ids still name the publish (in its
    trace, unsampled), and the metrics are still counted."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=_AllButThePublish())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    telemetry = OpenTelemetry(provider, MeterProvider(metric_readers=[reader]))
    caller = parse_traceparent(CALLER)
    assert caller is not None
    report = PublishReport("-", mode="batch")
    report.status, report.batch_size = 200, 2
    report.sends.append((0.003, "stored"))
    with telemetry.publish("publish", caller) as span:
        assert not span.recording
        with telemetry.step("enqueue", {"messaging.operation.type": "send"}) as step:
            assert step is None
        with telemetry.element(span) as element:
            assert not element.recording
            element.fail("queue-unavailable")  # nowhere to go
            telemetry.element_finished(report, element)
        telemetry.finished(report, span)
    with telemetry.step("enqueue") as outside:  # no publish span current: nothing recorded
        assert outside is None
    assert exporter.get_finished_spans() == ()
    assert span.ids.trace_id == element.ids.trace_id == caller.trace_id
    assert span.ids.traceparent.endswith("-00")
    assert element.ids.span_id not in (span.ids.span_id, caller.span_id)
    points = metric_points(reader)
    assert points["events.enqueue.duration"] == [({"outcome": "stored"}, (1, 0.003))]
    assert points["events.batch.size"] == [({}, (1, 2))]
    assert [v for _, v in points["events.published"]] == [1]
