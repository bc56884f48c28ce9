"""Fixtures shared by every test layer. Helpers that are not fixtures are in tests/support/."""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.azurite import Azurite
from devtools.issuer import DevIssuer
from devtools.registry import DevRegistry
from devtools.servers import BackgroundServer, bind_loopback
from devtools.stack import LocalStack
from tests.support import VALID_EVENT, Clock, QueueReader, records_table_for, reset_registry


@pytest.fixture
def event() -> dict[str, Any]:
    """A fresh copy of a valid Altinn event, to change in a test."""
    return copy.deepcopy(VALID_EVENT)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- the local stack: Azurite, the dev issuer, the dev registry (started once per session) -----


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The local services (devtools/stack.py), Azurite in memory; stopped after the session."""
    with LocalStack() as started:
        yield started


@pytest.fixture(scope="session")
def azurite(stack: LocalStack) -> Azurite:
    return stack.azurite


@pytest.fixture(scope="session")
def issuer_service(stack: LocalStack) -> DevIssuer:
    assert stack.issuer is not None
    return stack.issuer


@pytest.fixture
def issuer(issuer_service: DevIssuer) -> Iterator[DevIssuer]:
    """The session's dev issuer, available. Tests that rotate keys use their own issuer."""
    issuer_service.available = True
    issuer_service.redirect_to = None
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
def registry_service(stack: LocalStack) -> tuple[DevRegistry, str]:
    return stack.registry, stack.registry_url


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
    stack: LocalStack,
    issuer: DevIssuer,
    registry: DevRegistry,
    queue_name: str,
) -> dict[str, str]:
    """EVENTS_* for the function under test, pointing at the real local services."""
    for name in list(os.environ):
        if name.startswith("EVENTS_"):
            monkeypatch.delenv(name)
    variables = {
        **stack.environment(queue_name=queue_name, records_table=records_table_for(queue_name)),
        "EVENTS_QUEUE_TIMEOUT_SECONDS": "2",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables
