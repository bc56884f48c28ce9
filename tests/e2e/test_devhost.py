"""Over real HTTP: the dev host (`make serve`) in its own process, configured only by EVENTS_*."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from devtools.azurite import ROOT, free_port
from devtools.issuer import DevIssuer
from devtools.stack import LocalStack
from tests.support import VALID_EVENT, Served, body_of, serve_function


@pytest.fixture(scope="module")
def served(stack: LocalStack) -> Iterator[Served]:
    with serve_function(stack, queue_prefix="e2e") as served:
        yield served


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


def headers(token: str, content_type: str = "application/cloudevents+json") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": content_type}


async def test_publish_over_http_lands_on_the_queue(
    served: Served, http: aiohttp.ClientSession, issuer_service: DevIssuer
) -> None:
    event = {**VALID_EVENT, "id": str(uuid.uuid4())}
    async with http.post(
        f"{served.url}/events", data=body_of(event), headers=headers(issuer_service.mint())
    ) as response:
        assert response.status == 200
        assert await response.read() == b""
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert served.queue.drain() == [event]


async def test_problem_over_http(served: Served, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{served.url}/events", data=b"{}") as response:
        assert response.status == 401
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="events"'
        body = await response.json(content_type=None)
        assert body["type"] == "urn:altinn:events:problem:missing-token"


async def test_other_methods_over_http(served: Served, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{served.url}/events") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/", "/api/events", "/events/x", "/eventsx"])
async def test_unknown_paths_are_404(
    served: Served, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.post(f"{served.url}{path}", data=b"{}") as response:
        assert response.status == 404


async def test_oversized_body_is_refused_without_reading_it(
    served: Served, http: aiohttp.ClientSession, issuer_service: DevIssuer
) -> None:
    async def endless() -> Any:
        chunk = b" " * 65536
        for _ in range(1024):  # 64 MiB, if anyone read it all
            yield chunk

    async with http.post(
        f"{served.url}/events", data=endless(), headers=headers(issuer_service.mint())
    ) as response:
        assert response.status == 413
        body = await response.json(content_type=None)
        assert body["type"] == "urn:altinn:events:problem:body-too-large"


async def test_declared_oversized_body_is_refused(
    served: Served, http: aiohttp.ClientSession, issuer_service: DevIssuer
) -> None:
    data = b" " * (1024 * 1024 + 10)
    async with http.post(
        f"{served.url}/events", data=data, headers=headers(issuer_service.mint())
    ) as response:
        assert response.status == 413


async def test_concurrent_publishes_all_land(
    served: Served, http: aiohttp.ClientSession, issuer_service: DevIssuer
) -> None:
    token = issuer_service.mint()
    ids = [f"concurrent-{n}" for n in range(40)]

    async def publish(event_id: str) -> int:
        body = body_of({**VALID_EVENT, "id": event_id})
        async with http.post(f"{served.url}/events", data=body, headers=headers(token)) as r:
            return r.status

    statuses = await asyncio.gather(*(publish(event_id) for event_id in ids))
    assert statuses == [200] * len(ids)
    assert sorted(message["id"] for message in served.queue.drain()) == sorted(ids)


def test_serve_refuses_to_start_with_a_broken_configuration() -> None:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("EVENTS_")},
        "PORT": str(free_port()),
        "EVENTS_TRUSTED_ISSUERS": "http://issuer.example",
    }
    result = subprocess.run(
        [sys.executable, "-m", "devtools.devhost"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "EVENTS_TRUSTED_ISSUERS" in result.stderr
    assert "EVENTS_REGISTRY_URL" in result.stderr
