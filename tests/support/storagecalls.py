"""How many storage requests a publish makes, counted from the outside: the function's table and
queue calls go through pass-through fault proxies (tests/support/faults.py), which count every
request they see. Used by tests/integration/test_storage_calls.py (which fails when a count
grows) and by ``make bench`` (which reports them, docs/performance.md).

Counted after a warm-up (the queue, the tables and the caches exist), with every background
record write finished before the next scenario starts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devtools.stack import LocalStack
from shared.app.runtime import Runtime
from shared.app.settings import Settings
from shared.core.pipeline import PublishRequest
from tests.support.faults import FaultProxy, Seen, through_proxy

BATCH = "application/cloudevents-batch+json"
STRUCTURED = "application/cloudevents+json"


@dataclass(frozen=True)
class Calls:
    """The storage requests of one scenario, and how many events it published."""

    events: int
    table: int
    queue: int

    @property
    def total(self) -> int:
        return self.table + self.queue

    @property
    def per_event(self) -> float:
        return self.total / self.events


def _origin(endpoint: str) -> str:
    return endpoint.rsplit("/", 1)[0]


@contextmanager
def proxied_environment(
    stack: LocalStack, **variables: str
) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """The process's EVENTS_* pointing at the stack, with the table and queue services behind
    counting proxies, inside the block."""
    azurite = stack.azurite
    with (
        FaultProxy(_origin(azurite.endpoint("table"))) as tables,
        FaultProxy(_origin(azurite.endpoint("queue"))) as queues,
    ):
        connection = through_proxy(azurite.connection_string, "table", tables)
        connection = through_proxy(connection, "queue", queues)
        suffix = uuid.uuid4().hex[:12]
        with stack.applied(
            EVENTS_QUEUE_CONNECTION=connection,
            EVENTS_QUEUE_NAME=f"calls-{suffix}",
            EVENTS_IDEMPOTENCY_TABLE=f"calls{suffix}",
            **variables,
        ):
            yield tables, queues


def event(number: int, resource: str, run: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{run}-{number}",
        "source": "/storage-calls",
        "type": "storage.calls.counted",
        "resource": resource,
        "data": {"number": number},
    }


async def count(stack: LocalStack, *, resource: str, org: str = "ttd") -> dict[str, Calls]:
    """The storage requests of: a new event, its replay, a batch of 100 new events, the same
    batch replayed, and a batch of 100 copies of one new event."""
    assert stack.issuer is not None
    token = stack.issuer.mint(org=org)
    found: dict[str, Calls] = {}
    with proxied_environment(stack) as (tables, queues):
        runtime = Runtime.build(Settings())  # type: ignore[call-arg]
        try:

            async def publish(body: Any, content_type: str) -> int:
                request = PublishRequest(
                    method="POST",
                    path="/events",
                    headers={"authorization": f"Bearer {token}", "content-type": content_type},
                    body=json.dumps(body).encode(),
                )
                response = await runtime.pipeline.handle(request)
                await runtime.pipeline.close(10)  # the record writes after the answer
                return response.status

            async def measured(name: str, events: int, body: Any, content_type: str) -> None:
                with tables.counting() as table_calls, queues.counting() as queue_calls:
                    status = await publish(body, content_type)
                assert status == 200, (name, status)
                found[name] = Calls(events, _records(table_calls), len(queue_calls))

            run = uuid.uuid4().hex[:8]
            await publish(event(0, resource, f"warm-{run}"), STRUCTURED)  # queue, tables, caches
            single = event(0, resource, run)
            await measured("new event", 1, single, STRUCTURED)
            await measured("replay", 1, single, STRUCTURED)
            batch = [event(number, resource, f"batch-{run}") for number in range(100)]
            await measured("batch of 100 new events", 100, batch, BATCH)
            await measured("batch of 100 replays", 100, batch, BATCH)
            copies = [event(0, resource, f"copies-{run}")] * 100
            await measured("batch of 100 copies of one event", 100, copies, BATCH)
        finally:
            await runtime.close()
    return found


def _records(calls: list[Seen]) -> int:
    """Table calls on records (the tables' own creation, once per generation, is not counted)."""
    return sum(1 for call in calls if not call.path.rstrip("/").endswith("/Tables"))
