"""A local stand-in for the Azure Functions host's HTTP front end. It is not the Functions host.

An ASGI application that routes each request to the registered function's user code (found with
``app.get_functions()``), passing real ``azure.functions.HttpRequest`` objects and turning the
returned ``HttpResponse`` back into HTTP. It honours host.json's ``routePrefix`` and
``customHeaders``. Served by uvicorn on 127.0.0.1 (``make serve``), and used by the HTTP tests.

With Azure Functions Core Tools installed, ``func start`` serves the same ``function_app.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.decorators.http import HttpTrigger

from devtools.guard import Limits, guarded_protocol
from devtools.invocation import DevContext

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
log = logging.getLogger("devhost")


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Callable[..., Any]
    arg_name: str
    name: str
    takes_context: bool


def _route_pattern(prefix: str, route: str) -> re.Pattern[str]:
    path = "/".join(part for part in (prefix.strip("/"), route.strip("/")) if part)
    regex = re.sub(r"\\\{(\w+)(?::\w+)?\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return re.compile(f"/{regex}/?")


def _http_trigger_arg(function: Any) -> str:
    for binding in json.loads(function.get_function_json())["bindings"]:
        if binding["type"] == "httpTrigger":
            return str(binding["name"])
    raise ValueError(f"{function.get_function_name()} has no httpTrigger binding")


class FunctionsDevHost:
    """ASGI app serving HTTP-triggered functions (``app.get_functions()``, which an app allows
    only once)."""

    def __init__(
        self,
        functions: Iterable[Function],
        *,
        host_json: Path = HOST_JSON,
        max_body_bytes: int = 100 * 1024 * 1024,
        body_timeout: float = Limits.body_timeout,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        settings = json.loads(host_json.read_text(encoding="utf-8"))
        http = settings.get("extensions", {}).get("http", {})
        prefix = http.get("routePrefix", "api")
        self.custom_headers: dict[str, str] = dict(http.get("customHeaders", {}))
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self._on_shutdown = on_shutdown
        self.routes: list[_Route] = []
        for function in functions:
            if not function.is_http_function():
                continue
            trigger = function.get_trigger()
            assert isinstance(trigger, HttpTrigger)
            methods = frozenset(str(getattr(m, "value", m)).upper() for m in trigger.methods or [])
            self.routes.append(
                _Route(
                    _route_pattern(prefix, trigger.route or str(function.get_function_name())),
                    methods or frozenset({"GET", "POST"}),
                    function.get_user_function(),
                    _http_trigger_arg(function),
                    str(function.get_function_name()),
                    "context" in inspect.signature(function.get_user_function()).parameters,
                )
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._on_shutdown is not None:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: Receive, declared: int | None) -> bytes:
        """The body, but never more than ``max_body_bytes + 1`` bytes: enough to refuse it.
        Raises TimeoutError when it has not all arrived within ``body_timeout`` seconds."""
        if declared is not None and declared > self.max_body_bytes:
            return b""  # the function refuses it from Content-Length alone
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.body_timeout):
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
                if size > self.max_body_bytes or not message.get("more_body", False):
                    return b"".join(chunks)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match:
                break
        else:
            await _send(send, 404, {"Content-Type": "text/plain"}, b"Not Found")
            return
        method = scope["method"].upper()
        if method not in route.methods:
            await _send(send, 404, {"Content-Type": "text/plain"}, b"Not Found")
            return

        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            # a repeated header's values joined with a bare ",", as the Functions host does
            # (docs/local.md, "How the dev host differs")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        length = headers.get("content-length", "")
        try:
            body = await self._read_body(receive, int(length) if length.isdigit() else None)
        except TimeoutError:
            log.warning("answered 408: the body did not arrive in %ss", self.body_timeout)
            headers_out = {"Content-Type": "text/plain", "Connection": "close"}
            await _send(send, 408, headers_out, b"Request Timeout")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        host = headers.get("host", "127.0.0.1")
        url = f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")
        request = func.HttpRequest(
            method,
            url,
            headers=headers,
            params=dict(parse_qsl(query)),
            route_params=match.groupdict(),
            body=body,
        )
        arguments: dict[str, Any] = {route.arg_name: request}
        if route.takes_context:  # the host's invocation context, trace context included
            arguments["context"] = DevContext.for_headers(route.name, headers)
        result = route.handler(**arguments)
        if inspect.isawaitable(result):
            result = await result
        response: func.HttpResponse = result
        out = dict(self.custom_headers)
        out.update(response.headers)
        if not any(name.lower() == "content-type" for name in out) and response.get_body():
            out["Content-Type"] = f"{response.mimetype}; charset={response.charset}"
        await _send(send, response.status_code, out, response.get_body())


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def build(*, broken_settings_allowed: bool = False) -> FunctionsDevHost:
    """The dev host for this repository's function app, configured from the environment.

    Invalid ``EVENTS_*`` settings stop it here, unless ``broken_settings_allowed``: then it
    serves anyway, as the Azure Functions host does (every request gets the function's 500)."""
    from pydantic import ValidationError

    from shared.app.runtime import close_current_runtime
    from shared.app.settings import Settings, describe_settings_error

    try:
        max_body_bytes = Settings().max_body_bytes  # type: ignore[call-arg]
    except ValidationError as error:
        if not broken_settings_allowed:
            raise
        log.error("serving with broken settings: %s", describe_settings_error(error))
        max_body_bytes = Settings.model_fields["max_body_bytes"].default
    from function_app import app

    return FunctionsDevHost(
        app.get_functions(),
        max_body_bytes=max_body_bytes,
        body_timeout=Limits.from_environment().body_timeout,
        on_shutdown=close_current_runtime,
    )


def configure_console_telemetry() -> None:
    """``OTEL_TRACES_EXPORTER=console`` (and ``OTEL_METRICS_EXPORTER=console``): the function's
    spans (and metrics, every 10 s) printed to stdout by OpenTelemetry's SDK, as Azure's exporter
    would send them. ``none``: the SDK records them as in Azure (spans through a batch processor)
    and nothing is exported (what ``make bench`` uses to measure telemetry's CPU without an
    exporter's network). Unset: no SDK, and the function records nothing
    (shared/core/telemetry.py)."""
    traces = os.environ.get("OTEL_TRACES_EXPORTER", "").lower()
    metrics = os.environ.get("OTEL_METRICS_EXPORTER", "").lower()
    if traces not in ("console", "none") and metrics not in ("console", "none"):
        return
    from collections.abc import Sequence

    from opentelemetry import metrics as metrics_api
    from opentelemetry import trace as trace_api
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        InMemoryMetricReader,
        MetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Discard(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "events")})
    provider = TracerProvider(resource=resource)
    if traces == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif traces == "none":
        provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace_api.set_tracer_provider(provider)
    readers: list[MetricReader] = []
    if metrics == "console":
        exporter = ConsoleMetricExporter()
        readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=10_000))
    elif metrics == "none":
        readers.append(InMemoryMetricReader())  # recorded, never collected
    metrics_api.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    log.info("OpenTelemetry: traces to %s, metrics to %s", traces or "none", metrics or "none")


def main(argv: list[str] | None = None) -> None:
    import uvicorn
    from pydantic import ValidationError

    from shared.app.settings import describe_settings_error

    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    parser = argparse.ArgumentParser(prog="make serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--serve-broken-settings",
        action="store_true",
        help="serve even with invalid EVENTS_* settings, as the Azure Functions host does "
        "(every request then gets 500 internal-error; the smoke test's tests use it)",
    )
    options = parser.parse_args(argv)
    port = int(os.environ.get("PORT", "7071"))
    configure_console_telemetry()
    try:
        host = build(broken_settings_allowed=options.serve_broken_settings)
    except ValidationError as error:
        sys.exit(f"make serve: {describe_settings_error(error)} (see the README's configuration)")
    log.info("dev host (not the Azure Functions host) on http://127.0.0.1:%d", port)
    uvicorn.run(
        host,
        http=guarded_protocol(Limits.from_environment()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
