"""The dev host's own protection against slow and piled-up connections (devtools/guard.py,
docs/local.md "Slow connections"), over raw sockets: a connection that does not complete its
headers, or its body, in time is answered 408 and closed; one beyond the connection limit is
answered 503 at once. Each wait below is a bound on how long the dev host may take, not a
synchronisation: the test ends as soon as the dev host answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import pytest

from devtools.issuer import DevIssuer
from devtools.stack import LocalStack
from tests.support import VALID_EVENT, Served, body_of, serve_function

HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2
MAX_CONNECTIONS = 6
#: How long a test waits for an answer the dev host owes it: far above its timeouts.
BOUND = 20


@pytest.fixture(scope="module")
def served(stack: LocalStack) -> Iterator[Served]:
    variables = {
        "DEVHOST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "DEVHOST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "DEVHOST_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with serve_function(stack, queue_prefix="limits", variables=variables) as served:
        yield served


@asynccontextmanager
async def connection(
    served: Served,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.process.port)
    try:
        yield reader, writer
    finally:
        writer.close()


def events_path(served: Served) -> str:
    return urlsplit(served.url).path + "/events"


async def answer_then_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the dev host sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), BOUND)


async def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    async with connection(served) as (reader, _):
        assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")


async def test_headers_sent_too_slowly_are_answered_408(served: Served) -> None:
    async with connection(served) as (reader, writer):
        writer.write(f"POST {events_path(served)} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
        await writer.drain()
        assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")


async def test_the_header_timeout_applies_to_each_request_on_a_connection(served: Served) -> None:
    async with connection(served) as (reader, writer):
        writer.write(b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), BOUND)
        assert status.startswith(b"HTTP/1.1 404 ")
        await asyncio.wait_for(reader.readuntil(b"Not Found"), BOUND)
        writer.write(b"GET /nowhere HTTP/1.1\r\nHo")  # the next request, never finished
        await writer.drain()
        assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")


async def test_a_body_sent_too_slowly_is_answered_408(
    served: Served, issuer_service: DevIssuer
) -> None:
    body = body_of({**VALID_EVENT, "id": str(uuid.uuid4())})
    head = (
        f"POST {events_path(served)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {issuer_service.mint()}\r\n"
        f"Content-Type: application/cloudevents+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    async with connection(served) as (reader, writer):
        writer.write(head.encode() + body[:10])  # and the rest never
        await writer.drain()
        assert (await answer_then_close(reader)).startswith(b"HTTP/1.1 408 ")
    assert served.queue.drain() == []


async def test_connections_beyond_the_limit_are_refused_at_once(served: Served) -> None:
    async with asyncio.TaskGroup() as group:
        held = [group.create_task(asyncio.open_connection("127.0.0.1", served.process.port))]
        held += [
            group.create_task(asyncio.open_connection("127.0.0.1", served.process.port))
            for _ in range(MAX_CONNECTIONS - 1)
        ]
    writers = [task.result()[1] for task in held]
    try:
        # the dev host has accepted them all once it answers a request on the last one
        reader, writer = held[-1].result()
        writer.write(b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), BOUND)).startswith(b"HTTP/1.1 404 ")
        async with connection(served) as (extra, _):
            assert (await answer_then_close(extra)).startswith(b"HTTP/1.1 503 ")
    finally:
        for held_writer in writers:
            held_writer.close()
        await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def test_a_repeated_ce_header_is_refused_over_http(
    served: Served, issuer_service: DevIssuer
) -> None:
    """Two ``ce-id`` lines: the dev host joins them as the Functions host does, and the
    function refuses the joined value."""
    fields = {k: str(v) for k, v in VALID_EVENT.items() if k not in ("data", "datacontenttype")}
    lines = "".join(f"ce-{name}: {value}\r\n" for name, value in fields.items())
    head = (
        f"POST {events_path(served)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {issuer_service.mint()}\r\n{lines}ce-id: second\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    async with connection(served) as (reader, writer):
        writer.write(head.encode())
        await writer.drain()
        answer = await answer_then_close(reader)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"errors":{"id":' in answer
    assert served.queue.drain() == []
