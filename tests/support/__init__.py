"""What the tests share besides fixtures: a valid event, body helpers, a clock the test moves,
the registry's reset, reading the queue the way a queue trigger does, and the function served
over HTTP by the dev host."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devtools.registry import DevRegistry, publish_rule
from devtools.stack import FunctionProcess, LocalStack
from shared.core.tracecontext import parse_traceparent

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


def body_of(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class Clock:
    """A monotonic clock the test moves by hand (``clock.now += 60``)."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sorted_events(events: list[dict[str, Any]]) -> list[str]:
    """Events in a comparable order: a batch's elements are enqueued concurrently."""
    return sorted(json.dumps(event, sort_keys=True) for event in events)


def records_table_for(queue_name: str) -> str:
    """The records tables' prefix of a test's function: its own, like its queue."""
    return "t" + "".join(ch for ch in queue_name if ch.isalnum())[:30]


DEMO_IDENTIFIER = "demo-events"


def reset_registry(registry: DevRegistry) -> DevRegistry:
    """Org 'ttd' may publish on demo-events; nothing else is known; no failure switches."""
    registry.reset()
    registry.rules[DEMO_IDENTIFIER] = [publish_rule(DEMO_IDENTIFIER, ("urn:altinn:org", "ttd"))]
    return registry


class QueueReader:
    def __init__(self, connection_string: str, queue_name: str) -> None:
        #: The (traceparent, tracestate) of each event the last drain() returned.
        self.traces: list[tuple[str, str | None]] = []
        self.raw = QueueClient.from_connection_string(connection_string, queue_name)
        self.decoding = QueueClient.from_connection_string(
            connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy()
        )

    def drain(self, *, keep_trace: bool = False) -> list[dict[str, Any]]:
        """Every message on the queue, oldest first, decoded from Base64 JSON; removes them.

        Every queued event carries a valid W3C ``traceparent`` (docs/contract.md, "Trace context"):
        checked here for every message any test reads. Unless ``keep_trace``, the trace context
        is then taken out (into ``traces``), so that an event compares equal to the one sent.
        """
        events: list[dict[str, Any]] = []
        try:
            while batch := list(self.decoding.receive_messages(max_messages=32)):
                for message in batch:
                    events.append(json.loads(message.content))
                    self.decoding.delete_message(message)
        except ResourceNotFoundError:
            pass  # the queue was never created: nothing was sent
        for event in events:
            traceparent = event.get("traceparent")
            assert parse_traceparent(traceparent) is not None, f"no valid traceparent: {event}"
        if keep_trace:
            return events
        self.traces = [
            (event.pop("traceparent"), event.pop("tracestate", None)) for event in events
        ]
        return events

    def raw_bodies(self) -> list[str]:
        """The message bodies exactly as stored (Base64 text), without removing them."""
        try:
            return [message.content for message in self.raw.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []


@dataclass
class Served:
    url: str
    queue: QueueReader
    process: FunctionProcess


@contextmanager
def serve_function(
    stack: LocalStack, *, queue_prefix: str, variables: Mapping[str, str] | None = None
) -> Iterator[Served]:
    """`make serve` on a free port with a queue of its own (and ``variables`` set), until the
    block ends; the registry reset and the issuer available."""
    reset_registry(stack.registry)
    assert stack.issuer is not None
    stack.issuer.available = True
    queue_name = f"{queue_prefix}-{uuid.uuid4().hex[:16]}"
    environment = {"LOG_LEVEL": "WARNING", **(variables or {})}
    with stack.serve(queue_name=queue_name, variables=environment) as function:
        yield Served(
            function.url, QueueReader(stack.azurite.connection_string, queue_name), function
        )
