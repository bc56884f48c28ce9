"""Calling the real function handler (function_app.py) with real azure.functions requests."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl

import aiohttp
import azure.functions as func
import pytest

from devtools.invocation import DevContext
from devtools.issuer import DevIssuer
from devtools.registry import DevRegistry
from shared.adapters.registry import ResourceRegistryClient
from shared.app.runtime import close_current_runtime
from tests.support import body_of
from tests.support.faults import FaultProxy, through_proxy


@functools.cache
def registered_functions() -> dict[str, Any]:
    """The functions function_app.py registers, by name (an app lists its functions once)."""
    from function_app import app

    return {f.get_function_name(): f for f in app.get_functions()}


def publish_function() -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
    """The user function registered for /events, called with an invocation context as the host
    calls it (devtools/invocation.py)."""
    function = registered_functions()["publish_event"].get_user_function()

    def call(request: func.HttpRequest) -> Awaitable[func.HttpResponse]:
        headers = {name.lower(): value for name, value in request.headers.items()}
        context = DevContext.for_headers("publish_event", headers)
        return function(request, context)  # type: ignore[no-any-return]

    return call


class Post(Protocol):
    async def __call__(
        self,
        event: Mapping[str, Any] | bytes,
        *,
        token: str | None = ...,
        content_type: str | None = ...,
        headers: Mapping[str, str] | None = ...,
        method: str = ...,
        query: str = ...,
    ) -> func.HttpResponse: ...


@pytest.fixture
async def post(function_env: dict[str, str], issuer: DevIssuer) -> AsyncIterator[Post]:
    """POST an event to the function as org 'ttd' (override token, content type or headers)."""
    default_token = issuer.mint(org="ttd")
    unset: Any = object()

    async def call(
        event: Mapping[str, Any] | bytes,
        *,
        token: str | None = unset,
        content_type: str | None = "application/cloudevents+json",
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        query: str = "",
    ) -> func.HttpResponse:
        all_headers = dict(headers or {})
        token = default_token if token is unset else token
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        if content_type is not None:
            all_headers["Content-Type"] = content_type
        body = event if isinstance(event, bytes) else body_of(event)
        url = "http://localhost:7071/events" + (f"?{query}" if query else "")
        params = dict(parse_qsl(query, keep_blank_values=True))
        request = func.HttpRequest(method, url, headers=all_headers, body=body, params=params)
        return await publish_function()(request)

    yield call
    await close_current_runtime()


@pytest.fixture
async def registry_client(
    registry: DevRegistry, registry_service: tuple[DevRegistry, str]
) -> AsyncIterator[ResourceRegistryClient]:
    """The real registry client against the dev registry, with a 0.5 s time limit."""
    async with aiohttp.ClientSession() as session:
        yield ResourceRegistryClient(session, base_url=registry_service[1], timeout_seconds=0.5)


def problem_of(response: func.HttpResponse) -> dict[str, Any]:
    """The problem body of a response, after checking it is one."""
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(response.get_body())
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:altinn:events:problem:")
    assert body["instance"] == "/events"
    assert body["traceId"].startswith("00-")
    return body


# -- a fault proxy in front of one of Azurite's services (tests/support/faults.py) ---------------


def proxy_for(service: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A proxy in front of ``service``, the function's connection string pointed at it (also
    when another service is proxied already)."""
    connection = os.environ["EVENTS_QUEUE_CONNECTION"]
    endpoint = {"table": "TableEndpoint", "queue": "QueueEndpoint", "blob": "BlobEndpoint"}[service]
    upstream = next(
        part.split("=", 1)[1] for part in connection.split(";") if part.startswith(endpoint)
    )
    with FaultProxy(upstream.rsplit("/", 1)[0]) as proxy:
        monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", through_proxy(connection, service, proxy))
        yield proxy


@pytest.fixture
def table_proxy(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    yield from proxy_for("table", monkeypatch)


@pytest.fixture
def queue_proxy(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    yield from proxy_for("queue", monkeypatch)


@pytest.fixture
def blob_proxy(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    yield from proxy_for("blob", monkeypatch)
