"""Fixtures shared by every test layer."""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.azurite import Azurite
from devtools.issuer import DevIssuer
from devtools.registry import BASE_PATH, DevRegistry, publish_rule
from devtools.servers import BackgroundServer, bind_loopback
from tests.queues import QueueReader
from tests.served import local_services_environment

VALID_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "f276b8b9-1d5c-4c5f-9f0a-2f3a0e8e6d11",
    "source": "https://ttd.apps.altinn.no/ttd/demo/instances/50015641/a72223a3",
    "type": "app.instance.process.completed",
    "time": "2024-05-17T13:45:00.123456Z",
    "subject": "/party/50015641",
    "alternativesubject": "/organisation/991825827",
    "resource": "urn:altinn:resource:demo-events",
    "resourceinstance": "50015641/a72223a3-16f3-4b2d-9ea6-9c6b1cd3b8b1",
    "datacontenttype": "application/json",
    "data": {"status": "completed", "items": [1, 2, 3], "note": "Ærlig talt 🎉"},
}


@pytest.fixture
def event() -> dict[str, Any]:
    """A fresh copy of a valid Altinn event, to change in a test."""
    return copy.deepcopy(VALID_EVENT)


def body_of(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class Clock:
    """A monotonic clock the test moves by hand (``clock.now += 60``)."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- real local services: Azurite, the dev issuer, the dev registry (started once per session) --


DEMO_IDENTIFIER = "demo-events"


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite's queue service, in memory, on a free port; stopped after the session."""
    service = Azurite().start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def issuer_service() -> Iterator[DevIssuer]:
    sock = bind_loopback()
    issuer = DevIssuer(f"http://127.0.0.1:{sock.getsockname()[1]}")
    server = BackgroundServer(issuer.app, sock).start()
    yield issuer
    server.stop()


@pytest.fixture
def issuer(issuer_service: DevIssuer) -> Iterator[DevIssuer]:
    """The session's dev issuer, available. Tests that rotate keys use their own issuer."""
    issuer_service.available = True
    yield issuer_service
    issuer_service.available = True


@pytest.fixture
def own_issuer() -> Iterator[DevIssuer]:
    """A dev issuer of the test's own (Altinn-style issuer URL), so that rotating its keys or
    taking it down affects no other test."""
    sock = bind_loopback()
    issuer = DevIssuer(f"http://127.0.0.1:{sock.getsockname()[1]}/authentication/api/v1/openid/")
    server = BackgroundServer(issuer.app, sock).start()
    yield issuer
    server.stop()


@pytest.fixture(scope="session")
def registry_service() -> Iterator[tuple[DevRegistry, str]]:
    registry = DevRegistry()
    sock = bind_loopback()
    server = BackgroundServer(registry.app, sock).start()
    yield registry, f"http://127.0.0.1:{server.port}{BASE_PATH}"
    server.stop()


def reset_registry(registry: DevRegistry) -> DevRegistry:
    """Org 'ttd' may publish on demo-events; nothing else is known; no failure switches."""
    registry.reset()
    registry.rules[DEMO_IDENTIFIER] = [publish_rule(DEMO_IDENTIFIER, ("urn:altinn:org", "ttd"))]
    return registry


@pytest.fixture
def registry(registry_service: tuple[DevRegistry, str]) -> Iterator[DevRegistry]:
    """The dev registry, reset before and after the test (see reset_registry)."""
    yield reset_registry(registry_service[0])
    reset_registry(registry_service[0])


@pytest.fixture
def queue_name() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def queue(azurite: Azurite, queue_name: str) -> QueueReader:
    """Reads what the function put on this test's own queue."""
    return QueueReader(azurite.connection_string, queue_name)


@pytest.fixture
def function_env(
    monkeypatch: pytest.MonkeyPatch,
    azurite: Azurite,
    issuer: DevIssuer,
    registry: DevRegistry,
    registry_service: tuple[DevRegistry, str],
    queue_name: str,
) -> dict[str, str]:
    """EVENTS_* for the function under test, pointing at the real local services."""
    for name in list(os.environ):
        if name.startswith("EVENTS_"):
            monkeypatch.delenv(name)
    variables = {
        **local_services_environment(azurite, issuer, registry_service[1], queue_name),
        "EVENTS_QUEUE_TIMEOUT_SECONDS": "2",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables
