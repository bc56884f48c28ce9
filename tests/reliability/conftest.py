"""The ``harness`` fixture: the real function handler against the session's local services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE
from devtools.stack import LocalStack
from tests.reliability.harness import Harness
from tests.support import QueueReader, records_table_for, reset_registry


@pytest.fixture(scope="module")
def harness(stack: LocalStack) -> Iterator[Harness]:
    assert stack.issuer is not None
    reset_registry(stack.registry)
    stack.issuer.available = True
    queue_name = f"prop-{uuid.uuid4().hex[:16]}"
    with stack.applied(
        EVENTS_QUEUE_NAME=queue_name, EVENTS_IDEMPOTENCY_TABLE=records_table_for(queue_name)
    ):
        harness = Harness(
            QueueReader(stack.azurite.connection_string, queue_name),
            stack.issuer.mint(lifetime_seconds=3600),
            stack.issuer.mint(scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}", lifetime_seconds=3600),
        )
        try:
            yield harness
        finally:
            harness.close()
            reset_registry(stack.registry)
