"""Telemetry on and off: CPU per typical event through the whole pipeline in one process, no I/O
(bench/cpu.py's set-up: warm token and rules caches, a sink that only Base64-encodes).

- **off**: ``NoTelemetry``, what the pipeline uses when no OpenTelemetry SDK is configured (the
  default): W3C ids for every publish, nothing recorded;
- **on**: ``OpenTelemetry`` with an SDK ``TracerProvider`` (a ``BatchSpanProcessor``, as Azure
  Monitor's distro configures, exporting to an exporter that discards) and a ``MeterProvider``
  (an in-memory reader, never collected while timing): what shared/app/telemetry.py records when a
  provider is configured, without an exporter's network.

Both run interleaved, round after round (which goes first alternates), on the same structured
typical event; the ratio is the median of the per-round ratios.

Telemetry off should cost nothing measurable. Its work per request is measured directly: the
calls one typical publish makes of ``NoTelemetry`` are noted from a real request (a subclass that
writes them down), then made again, in a loop, on a plain ``NoTelemetry``, in the same rounds.
Dict arguments are copied on every call, standing for the pipeline building them; the loop's
own dispatch is included, so the figure is an upper bound. Making a publish's W3C ids, which the
trace context needs whatever the telemetry, is timed alone too.

End to end (``measure_http``): three dev hosts side by side on the same Azurite, ``make
serve``'s (no SDK), one with ``OTEL_TRACES_EXPORTER=none`` and ``OTEL_METRICS_EXPORTER=none``
(the SDK records every span and metric, through a batch span processor, and exports nothing),
and one with that SDK sampling 1% of the traces (``SDK_SAMPLED``: Azure's default sampling at
these rates), all with de-duplication at its default; in each round, in a rotating order, the
same load at concurrency ``HTTP_LEVEL`` against each, and the CPU each dev host spent per
request: what telemetry adds to a whole request's CPU (HTTP serving, the pipeline, the Storage
SDK's calls), the figure the operator pays for.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import set_span_in_context

from bench import targets
from bench.cpu import time_per_call, time_per_handle, warm_setup, with_token
from bench.endtoend import LevelResult, measure_run, rotated, specs
from bench.events import body, typical
from bench.services import Stack
from shared.app.telemetry import OpenTelemetry
from shared.core.pipeline import PublishPipeline
from shared.core.report import PublishReport
from shared.core.telemetry import IdsOnly, NoTelemetry, PublishSpan, StepKind, StepSpan, Telemetry
from shared.core.tracecontext import Parent, TraceIds, new_ids

#: One noted call: the method's name and its arguments.
Call = tuple[str, tuple[Any, ...]]
#: The methods that return a context manager (a span, or nothing without an SDK).
_SPANS = ("publish", "element", "step")


@dataclass
class TelemetryResult:
    calls: int
    #: CPU per typical event (µs), per round: NoTelemetry, OpenTelemetry.
    off_us: list[float]
    on_us: list[float]
    #: NoTelemetry's own calls per typical event (µs), per round, and how many calls they are.
    notelemetry_us: list[float]
    notelemetry_calls: int
    #: Of those, making one publish's W3C ids (µs), per round: the trace context needs them
    #: (a problem's traceId, a queued event's traceparent) whatever the telemetry.
    ids_us: list[float]
    #: Spans one typical publish records with an SDK (the publish and its steps).
    spans: int
    #: The SDK's floor (µs), per round: as many spans, the publish's and its steps' as its
    #: children, made and ended with the same provider, with no attribute and no metric: what
    #: recording those spans costs in the SDK whatever the product records in them.
    floor_us: list[float] = field(default_factory=list)

    @property
    def off(self) -> float:
        return statistics.median(self.off_us)

    @property
    def on(self) -> float:
        return statistics.median(self.on_us)

    @property
    def notelemetry(self) -> float:
        return statistics.median(self.notelemetry_us)

    @property
    def ids(self) -> float:
        return statistics.median(self.ids_us)

    @property
    def floor(self) -> float:
        return statistics.median(self.floor_us) if self.floor_us else float("nan")

    @property
    def ratio(self) -> float:
        """On over off, the median of the rounds' ratios."""
        return statistics.median(on / off for on, off in zip(self.on_us, self.off_us, strict=True))

    @property
    def off_ratio(self) -> float:
        """The pipeline with NoTelemetry over the same without NoTelemetry's calls, less the
        W3C ids those calls make: what telemetry off costs (the median of the rounds' ratios).
        The ids are the trace context's, not telemetry's: a problem's ``traceId`` and a queued
        event's ``traceparent`` need them, and the pipeline made a trace id per request before
        it had telemetry."""
        return statistics.median(
            off / (off - calls + ids)
            for off, calls, ids in zip(self.off_us, self.notelemetry_us, self.ids_us, strict=True)
        )


class _Discard(SpanExporter):
    """An exporter that sends nothing anywhere."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _NotedSpan:
    recording = False

    def __init__(self, ids: TraceIds, calls: list[Call]) -> None:
        self.ids = ids
        self._calls = calls

    def set(self, name: str, value: Any) -> None:
        self._calls.append(("set", (name, value)))

    def fail(self, error_type: str) -> None:
        self._calls.append(("fail", (error_type,)))


class _Noting:
    """A Telemetry like NoTelemetry that writes down every call the pipeline makes of it."""

    enabled = False

    def __init__(self) -> None:
        self.calls: list[Call] = []

    @contextmanager
    def publish(
        self, name: str, parent: Parent | None, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[PublishSpan]:
        self.calls.append(("publish", (name, parent, attributes)))
        yield _NotedSpan(new_ids(parent), self.calls)

    @contextmanager
    def element(
        self, within: PublishSpan, attributes: Mapping[str, Any] | None = None
    ) -> Iterator[PublishSpan]:
        self.calls.append(("element", (within, attributes)))
        yield _NotedSpan(new_ids(None), self.calls)

    def step(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        kind: StepKind = "internal",
    ) -> AbstractContextManager[StepSpan | None]:
        self.calls.append(("step", (name, attributes, kind)))
        return NoTelemetry().step(name, attributes, kind)

    def finished(self, report: PublishReport, span: PublishSpan) -> None:
        self.calls.append(("finished", (report, span)))

    def element_finished(self, report: PublishReport, span: PublishSpan) -> None:
        self.calls.append(("element_finished", (report, span)))


def _span(method: Callable[..., AbstractContextManager[Any]], args: tuple[Any, ...]) -> None:
    with method(*args):
        pass


def bare_spans(tracer_provider: TracerProvider, count: int) -> Callable[[], None]:
    """``count`` spans as a publish makes them (one, and the rest its children), with no
    attribute, no metric and no context made current: the SDK's own cost of recording them."""
    tracer = tracer_provider.get_tracer("bench.floor")

    def spans() -> None:
        publish = tracer.start_span("publish")
        within = set_span_in_context(publish)
        for _ in range(count - 1):
            tracer.start_span("step", context=within).end()
        publish.end()

    return spans


def replay(telemetry: Telemetry, calls: list[Call]) -> Callable[[], None]:
    """The noted calls, made again on ``telemetry``: a span's context manager is entered and
    left (after a copy of each of its dict arguments, standing for the pipeline building them),
    a span's attributes go to a span without an SDK, as NoTelemetry's do."""
    span = IdsOnly(new_ids(None))
    made: list[Callable[[], object]] = []
    for name, args in calls:
        if name in _SPANS:
            made += [functools.partial(dict, arg) for arg in args if isinstance(arg, dict)]
            made.append(functools.partial(_span, getattr(telemetry, name), args))
        elif name in ("set", "fail"):
            made.append(functools.partial(getattr(span, name), *args))
        else:
            made.append(functools.partial(getattr(telemetry, name), *args))

    def again() -> None:
        for call in made:
            call()

    return again


async def measure(rounds: int = 15, calls: int = 200) -> TelemetryResult:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        async with warm_setup() as setup:
            request = with_token(
                {"content-type": "application/cloudevents+json"},
                body(typical()),
                setup.issuer.mint(lifetime_seconds=7200),
            )
            noting = _Noting()
            await setup.pipeline(telemetry=noting).handle(request)
            pipelines: dict[str, PublishPipeline] = {
                "off": setup.pipeline(telemetry=NoTelemetry()),
                "on": setup.pipeline(telemetry=OpenTelemetry(tracer_provider, meter_provider)),
            }
            calls_alone = replay(NoTelemetry(), noting.calls)
            spans = sum(1 for name, _ in noting.calls if name in _SPANS)
            floor = bare_spans(tracer_provider, spans)
            times: dict[str, list[float]] = {
                "off": [], "on": [], "calls": [], "ids": [], "floor": []
            }  # fmt: skip
            for pipeline in pipelines.values():
                await time_per_handle(pipeline, [request], 50)  # warm
            gc.collect()
            for round_number in range(rounds):
                order = list(pipelines) if round_number % 2 == 0 else list(pipelines)[::-1]
                for name in order:
                    times[name].append(await time_per_handle(pipelines[name], [request], calls))
                    # the batch processor's thread exports now, not while the next is timed
                    tracer_provider.force_flush()
                times["calls"].append(time_per_call(calls_alone, calls * 10))
                times["ids"].append(time_per_call(functools.partial(new_ids, None), calls * 10))
                times["floor"].append(time_per_call(floor, calls))
                tracer_provider.force_flush()
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    return TelemetryResult(
        calls=calls,
        off_us=times["off"],
        on_us=times["on"],
        notelemetry_us=times["calls"],
        notelemetry_calls=len(noting.calls),
        ids_us=times["ids"],
        spans=spans,
        floor_us=times["floor"],
    )


#: The dev host with an OpenTelemetry SDK that records everything and exports nothing.
SDK_NO_EXPORT = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}
#: The same SDK sampling traces as Azure Monitor's distro does by default: at most 5 traces per
#: second (docs/deploy.md, Sampling), about 1% of the requests at this benchmark's rates; the
#: others' spans are made non-recording. The host decides for its invocation span, and the
#: function's spans follow it: the dev host decides with these same variables
#: (devtools/invocation.py, ``host_sampled``). Metrics are never sampled.
SDK_SAMPLED = {
    **SDK_NO_EXPORT,
    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    "OTEL_TRACES_SAMPLER_ARG": "0.01",
}
#: The end-to-end targets and the dev hosts' environments: telemetry off (make serve's dev
#: host), on (every span recorded) and on with Azure's default sampling.
HTTP_TARGETS = {"ours": None, "ours-telemetry": SDK_NO_EXPORT, "ours-sampled": SDK_SAMPLED}


def measure_http(
    stack: Stack,
    *,
    rounds: int = 3,
    seconds: float = 5.0,
    warmup_seconds: float = 1.0,
    progress: Callable[[str], None] = print,
) -> LevelResult:
    """Telemetry off and on end to end, side by side (see the module's docstring)."""
    made = specs(stack, stack.tokens(8))
    names = list(HTTP_TARGETS)
    level = LevelResult(targets.HTTP_LEVEL, {target: [] for target in names})
    stack.restart_azurite()
    stack.start_devhost()  # fresh, as the others
    with ExitStack() as hosts:
        others = {
            target: hosts.enter_context(stack.another_devhost(environment))
            for target, environment in HTTP_TARGETS.items()
            if environment is not None
        }
        for round_number in range(rounds):
            for target in rotated(names, round_number):
                options = {
                    "concurrency": targets.HTTP_LEVEL,
                    "duration_seconds": seconds,
                    "warmup_seconds": warmup_seconds,
                }
                if target in others:
                    other = others[target]
                    spec = made["ours"](url=f"{other.url}/events", **options)
                    run = measure_run(stack, spec, pid=other.process.pid)
                else:
                    run = measure_run(stack, made["ours"](**options))
                level.runs[target].append(run)
                progress(
                    f"telemetry round {round_number + 1}/{rounds} {target:14} "
                    f"{run['throughput']:7.0f} req/s  dev host {_cpu_us(run):6.0f} us/request  "
                    f"errors {run['errors']}  queue {run['on_queue']}/{run['enqueued_expected']}"
                )
    return level


def _cpu_us(run: dict[str, Any]) -> float:
    """The dev host's CPU per request of a run, warm-up included (µs)."""
    return float(run["devhost_cpu_seconds"]) / int(run["requests"] + run["warmup_requests"]) * 1e6


def cpu_ratios(level: LevelResult, target: str = "ours-telemetry") -> list[float]:
    """Per round: the dev host's CPU per request with telemetry on (``target``) over off."""
    return [
        _cpu_us(on) / _cpu_us(off)
        for on, off in zip(level.runs[target], level.runs["ours"], strict=True)
    ]


if __name__ == "__main__":
    result = asyncio.run(measure())
    print(
        f"off {result.off:.1f} us, on {result.on:.1f} us ({result.spans} spans): "
        f"{result.ratio:.2f}x; NoTelemetry's {result.notelemetry_calls} calls "
        f"{result.notelemetry:.2f} us ({result.off_ratio:.3f}x), of which ids {result.ids:.2f} us"
    )
