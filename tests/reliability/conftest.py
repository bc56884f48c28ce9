"""The ``harness`` fixture: the real function handler against the session's local services."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from devtools.azurite import Azurite
from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer
from devtools.registry import DevRegistry
from tests.conftest import reset_registry
from tests.queues import QueueReader
from tests.reliability.harness import Harness
from tests.served import local_services_environment


@pytest.fixture(scope="module")
def harness(
    azurite: Azurite, issuer_service: DevIssuer, registry_service: tuple[DevRegistry, str]
) -> Iterator[Harness]:
    registry, registry_url = registry_service
    reset_registry(registry)
    issuer_service.available = True
    queue_name = f"prop-{uuid.uuid4().hex[:16]}"
    variables = local_services_environment(azurite, issuer_service, registry_url, queue_name)
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("EVENTS_")}
    os.environ.update(variables)
    harness = Harness(
        QueueReader(azurite.connection_string, queue_name),
        issuer_service.mint(lifetime_seconds=3600),
        issuer_service.mint(scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}", lifetime_seconds=3600),
    )
    try:
        yield harness
    finally:
        harness.close()
        for name in variables:
            os.environ.pop(name, None)
        os.environ.update(saved)
        reset_registry(registry)
