"""The storage HTTP client under the table and queue adapters (shared/adapters/storage_http.py)
against a real local HTTP server on 127.0.0.1 that answers as each test scripts it: which
answers are asked again, that a request which went out unanswered is never sent twice, that a
connection never opened is reported as such, and how a bearer token is kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.adapters.queue import StorageQueueSink
from shared.adapters.storage_http import (
    AnswerLost,
    BearerToken,
    NoAuthorization,
    NotReached,
    QueueSharedKey,
    StorageHttp,
)
from shared.core.ports import QueueUnavailable

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Scripted:
    """A server that reads each request whole and then answers with the next of ``script``: a
    status (with an ``x-ms-error-code`` when given as ``(status, code)``), or ``"cut"`` (the
    connection closed without an answer). Every request read is kept."""

    script: list[Any]
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((line, headers, body))
                step = self.script.pop(0) if self.script else 201
                if step == "cut":
                    writer.close()
                    return
                status, code = step if isinstance(step, tuple) else (step, "")
                extra = f"x-ms-error-code: {code}\r\n" if code else ""
                writer.write(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    scripted = Scripted([])
    listening = await asyncio.start_server(scripted._handle, "127.0.0.1", 0)
    scripted.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield scripted
        listening.close()


def client(**options: Any) -> StorageHttp:
    settings: dict[str, Any] = {
        "headers": {"x-ms-version": "2021-12-02"},
        "connection_timeout": 1.0,
        "read_timeout": 5.0,
        "status_retries": 3,
        "retry_pause": 0.0,
        "connect_pause": 0.0,
        **options,
    }
    authorization = settings.pop("authorization", QueueSharedKey("devstoreaccount1", KEY))
    return StorageHttp(authorization, **settings)


async def test_a_busy_answer_is_asked_again_each_time_signed_anew(server: Scripted) -> None:
    server.script = [503, (500, "InternalError"), 201]
    http = client()
    try:
        answer = await http.request(
            "POST", f"http://127.0.0.1:{server.port}/a/q/messages", None, b"x"
        )
    finally:
        await http.close()
    assert answer.status_code == 201
    assert len(server.requests) == 3
    assert all(
        headers["authorization"].startswith("SharedKey ") for _, headers, _ in server.requests
    )
    assert all(body == b"x" for _, _, body in server.requests)


async def test_busy_answers_are_asked_again_only_so_often(server: Scripted) -> None:
    server.script = [503] * 10
    http = client(status_retries=2)
    try:
        answer = await http.request("PUT", f"http://127.0.0.1:{server.port}/a/q")
    finally:
        await http.close()
    assert answer.status_code == 503
    assert len(server.requests) == 3  # the first and two more


@pytest.mark.parametrize("status", [400, 403, 404, 409, 412, 501])
async def test_an_answer_that_is_not_busy_is_final(server: Scripted, status: int) -> None:
    server.script = [status, 201]
    http = client()
    try:
        answer = await http.request("PUT", f"http://127.0.0.1:{server.port}/a/q")
    finally:
        await http.close()
    assert (answer.status_code, len(server.requests)) == (status, 1)


async def test_a_request_that_went_out_unanswered_is_never_sent_again(server: Scripted) -> None:
    server.script = ["cut", 201, 201]
    http = client()
    try:
        with pytest.raises(AnswerLost):
            await http.request("POST", f"http://127.0.0.1:{server.port}/a/q/messages", None, b"x")
    finally:
        await http.close()
    assert len(server.requests) == 1


async def test_a_connection_never_opened_is_not_reached() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()  # the port now refuses connections
    http = client(connect_attempts=3)
    try:
        with pytest.raises(NotReached, match="ClientConnectorError"):
            await http.request("POST", f"http://127.0.0.1:{port}/a/q/messages", None, b"x")
    finally:
        await http.close()


async def test_the_queue_sink_tells_maybe_stored_from_refused(server: Scripted) -> None:
    account = f"http://127.0.0.1:{server.port}/devstoreaccount1"
    connection = (
        f"AccountName=devstoreaccount1;AccountKey={KEY};QueueEndpoint={account};"
        "DefaultEndpointsProtocol=http"
    )
    sink = StorageQueueSink.connect(
        connection_string=connection, account_url=None, queue_name="q", budget_seconds=1.0
    )
    try:
        server.script = ["cut"]
        with pytest.raises(QueueUnavailable) as lost:
            await sink.send(b'{"id":"1"}')
        server.script = [(403, "AuthenticationFailed")]
        with pytest.raises(QueueUnavailable) as refused:
            await sink.send(b'{"id":"2"}')
        server.script = [(404, "QueueNotFound"), 201, 201]
        await sink.send(b'{"id":"3"}')  # the queue is made, and the message sent again
    finally:
        await sink.close()
    assert lost.value.maybe_stored is True
    assert refused.value.maybe_stored is False
    assert "refused the credential: 403 AuthenticationFailed" in str(refused.value)
    lines = [line for line, _, _ in server.requests]
    assert lines[-3:] == [
        "POST /devstoreaccount1/q/messages HTTP/1.1",
        "PUT /devstoreaccount1/q HTTP/1.1",
        "POST /devstoreaccount1/q/messages HTTP/1.1",
    ]


@dataclass
class Token:
    token: str
    expires_on: int


class Credential:
    """A token credential that counts its calls, its tokens lasting ``lifetime`` seconds."""

    def __init__(self, lifetime: float, fail: bool = False) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.fail = fail

    async def get_token(self, *scopes: str) -> Token:
        self.calls += 1
        if self.fail:
            raise RuntimeError("no identity endpoint")
        return Token(f"t{self.calls}", int(time.time() + self.lifetime))


async def test_a_bearer_token_is_kept_until_near_its_end(server: Scripted) -> None:
    lasting, short = Credential(3600), Credential(200)  # 200 s: inside the renewal margin
    for credential, expected in ((lasting, 1), (short, 3)):
        http = client(authorization=BearerToken(credential, "https://storage.azure.com/.default"))
        try:
            for _ in range(3):
                await http.request("GET", f"http://127.0.0.1:{server.port}/a/q")
        finally:
            await http.close()
        assert credential.calls == expected
    sent = [headers["authorization"] for _, headers, _ in server.requests]
    assert sent == ["Bearer t1"] * 3 + ["Bearer t1", "Bearer t2", "Bearer t3"]


async def test_no_token_is_not_reached_and_sends_nothing(server: Scripted) -> None:
    http = client(authorization=BearerToken(Credential(3600, fail=True), "scope"))
    try:
        with pytest.raises(NotReached, match="no token for storage"):
            await http.request("GET", f"http://127.0.0.1:{server.port}/a/q")
    finally:
        await http.close()
    assert server.requests == []


async def test_a_shared_access_signature_adds_no_authorization(server: Scripted) -> None:
    http = client(authorization=NoAuthorization())
    try:
        await http.request("GET", f"http://127.0.0.1:{server.port}/a/q?sv=1&sig=x")
    finally:
        await http.close()
    ((line, headers, _),) = server.requests
    assert "authorization" not in headers
    assert line == "GET /a/q?sv=1&sig=x HTTP/1.1"
