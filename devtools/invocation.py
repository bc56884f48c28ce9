"""The Functions host's invocation context, as the dev host and the tests make it.

The host gives every invocation a ``func.Context`` whose ``trace_context`` names the host's own
invocation span: a child of the caller's ``traceparent`` when it sent a valid one, the root of a
new trace otherwise. ``DevContext.for_headers`` does the same, so that the function sees locally
what it sees in Azure.

The host also decides whether its span is sampled, with the sampler the standard variables name
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; docs/deploy.md, "Sampling"), and the
function's spans follow that decision. ``host_sampled`` makes the same decision here: a fixed
share of the new traces (the ``*traceidratio`` samplers and ``microsoft.fixed_percentage``,
decided by the trace id), none (``*always_off``), or all (no sampler, or any other: the
``microsoft.rate_limited`` default keeps everything at a local rate). A caller's ``traceparent``
is followed, except by ``traceidratio`` alone, which decides by the trace id.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import replace

import azure.functions as func
from azure.functions._abc import RetryContext, RpcException, TraceContext

from shared.core.tracecontext import Parent, TraceIds, new_ids, parse_traceparent

_random = random.Random()

#: The samplers that keep a fixed share of the traces (OTEL_TRACES_SAMPLER_ARG, 0 to 1).
_RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio", "microsoft.fixed_percentage")
_OFF_SAMPLERS = ("always_off", "parentbased_always_off")


def host_sampled(
    ids: TraceIds, caller: Parent | None, environment: Mapping[str, str] = os.environ
) -> bool:
    """Whether the host samples its invocation span ``ids`` (see the module docstring)."""
    sampler = environment.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if caller is not None and sampler != "traceidratio":
        return caller.sampled
    if sampler in _OFF_SAMPLERS:
        return False
    if sampler not in _RATIO_SAMPLERS:
        return True
    try:
        ratio = min(1.0, max(0.0, float(environment.get("OTEL_TRACES_SAMPLER_ARG", "1"))))
    except ValueError:
        ratio = 1.0
    # as OpenTelemetry's TraceIdRatioBased: the trace id's lower 64 bits under the bound
    return int(ids.trace_id[16:], 16) < round(ratio * (1 << 64))


class DevTraceContext(TraceContext):
    def __init__(self, trace_parent: str, trace_state: str) -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class DevRetryContext(RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> RpcException:
        return _NoException()


class _NoException(RpcException):
    source = stack_trace = message = ""


class DevContext(func.Context):
    def __init__(self, function_name: str, trace_context: DevTraceContext) -> None:
        self._function_name = function_name
        self._trace_context = trace_context
        self._invocation_id = str(uuid.UUID(int=_random.getrandbits(128), version=4))

    @classmethod
    def for_headers(cls, function_name: str, headers: Mapping[str, str]) -> DevContext:
        """The context of an invocation for a request with these (lower-case) headers."""
        caller = parse_traceparent(headers.get("traceparent"), headers.get("tracestate"))
        host_span = new_ids(caller)
        sampled = host_sampled(host_span, caller)
        if sampled != host_span.sampled:
            host_span = replace(host_span, sampled=sampled)
        state = caller.tracestate if caller is not None and caller.tracestate else ""
        return cls(function_name, DevTraceContext(host_span.traceparent, state))

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return threading.local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return DevRetryContext()
