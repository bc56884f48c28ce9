"""The dev host's invocation span is sampled as the Functions host samples its own, from the
standard OpenTelemetry variables (devtools/invocation.py, ``host_sampled``)."""

from __future__ import annotations

import pytest

from devtools.invocation import DevContext, host_sampled
from shared.core.tracecontext import Parent, TraceIds, parse_traceparent

CALLER_SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CALLER_UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def ids(low_bits: int) -> TraceIds:
    return TraceIds(f"{7:016x}{low_bits:016x}", "00f067aa0ba902b7", True)


def caller(traceparent: str) -> Parent:
    parsed = parse_traceparent(traceparent, None)
    assert parsed is not None
    return parsed


def test_without_a_sampler_every_trace_is_sampled() -> None:
    assert host_sampled(ids(2**64 - 1), None, {}) is True


@pytest.mark.parametrize("sampler", ["always_off", "parentbased_always_off"])
def test_the_off_samplers_sample_no_new_trace(sampler: str) -> None:
    assert host_sampled(ids(0), None, {"OTEL_TRACES_SAMPLER": sampler}) is False


@pytest.mark.parametrize(
    "sampler", ["traceidratio", "parentbased_traceidratio", "microsoft.fixed_percentage"]
)
def test_a_ratio_keeps_the_trace_ids_under_its_bound(sampler: str) -> None:
    environment = {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    bound = 2**62  # a quarter of the lower 64 bits' range
    assert host_sampled(ids(bound - 1), None, environment) is True
    assert host_sampled(ids(bound), None, environment) is False


def test_a_ratio_samples_about_its_share_of_new_traces() -> None:
    environment = {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    }
    contexts = [DevContext.for_headers("publish_event", {}) for _ in range(20_000)]
    sampled = sum(host_sampled(_ids(c), None, environment) for c in contexts)
    assert 100 <= sampled <= 300  # 200 expected; far outside only if the ratio is not applied


def _ids(context: DevContext) -> TraceIds:
    _, trace_id, span_id, _ = context.trace_context.trace_parent.split("-")
    return TraceIds(trace_id, span_id, True)


@pytest.mark.parametrize("sampler", ["", "parentbased_traceidratio", "microsoft.rate_limited"])
def test_a_callers_decision_is_followed(sampler: str) -> None:
    environment = {"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": "0"}
    assert host_sampled(ids(0), caller(CALLER_SAMPLED), environment) is True
    assert host_sampled(ids(0), caller(CALLER_UNSAMPLED), environment) is False


def test_traceidratio_alone_decides_by_the_trace_id_even_under_a_caller() -> None:
    environment = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    assert host_sampled(ids(0), caller(CALLER_SAMPLED), environment) is False


def test_an_unreadable_ratio_samples_everything() -> None:
    environment = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "most"}
    assert host_sampled(ids(2**64 - 1), None, environment) is True


def test_the_invocation_context_carries_the_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    context = DevContext.for_headers("publish_event", {})
    assert context.trace_context.trace_parent.endswith("-00")
    monkeypatch.delenv("OTEL_TRACES_SAMPLER")
    context = DevContext.for_headers("publish_event", {})
    assert context.trace_context.trace_parent.endswith("-01")
