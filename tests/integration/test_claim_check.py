"""Large events (docs/contract.md, "Large events") through the real function handler, with
the data in Azurite's blob service: the sizes around the queue's limit and the event limit, every
content mode, a publisher's own ``dataref``, replays, no blob service, a blob service that is
down, and reading the events back with shared/subscriber.py."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.storage.blob import ContainerClient

from devtools.azurite import Azurite
from devtools.stack import LocalStack
from shared.adapters.queue import MAX_EVENT_BYTES
from shared.app.runtime import current_runtime
from shared.cloudevents.jsonformat import encode_compact
from shared.subscriber import FORM_METADATA, restore_event
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader
from tests.support.faults import Fault, FaultProxy

KiB, MiB = 1024, 1024 * 1024
BATCH = "application/cloudevents-batch+json"
BINARY_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "binary-1",
    "ce-source": "https://example.org/orders/42",
    "ce-type": "no.example.order.created",
    "ce-resource": "urn:altinn:resource:demo-events",
}


@pytest.fixture
def container(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, queue_name: str
) -> ContainerClient:
    """This test's own container of large events' data (named after its queue)."""
    monkeypatch.setenv("EVENTS_BLOB_CONTAINER", queue_name)
    client = ContainerClient.from_connection_string(
        function_env["EVENTS_QUEUE_CONNECTION"], queue_name
    )
    return client


async def settled() -> None:
    """Every send and record write the last publishes left running has ended."""
    await current_runtime().pipeline.close(10)


def blobs(container: ContainerClient) -> dict[str, tuple[bytes, dict[str, str], str]]:
    """Every blob of the container: name -> (content, metadata, content type)."""
    if not container.exists():
        return {}
    found = {}
    for item in container.list_blobs(include=["metadata"]):
        download = container.download_blob(item.name)
        settings = download.properties.content_settings
        found[item.name] = (download.readall(), dict(item.metadata or {}), settings.content_type)
    return found


def fetcher(container: ContainerClient) -> Any:
    def fetch(url: str) -> tuple[bytes, dict[str, str]]:
        name = url.removeprefix(container.url.rstrip("/") + "/")
        download = container.download_blob(name)
        return download.readall(), dict(download.properties.metadata or {})

    return fetch


def sized(size: int, **members: Any) -> dict[str, Any]:
    """VALID_EVENT with text data, exactly ``size`` bytes as compact JSON."""
    event = {**VALID_EVENT, "datacontenttype": "text/plain", **members, "data": ""}
    event["data"] = "x" * (size - len(encode_compact(event)))
    assert len(encode_compact(event)) == size
    return event


def body(event: dict[str, Any]) -> bytes:
    return encode_compact(event)


def queued_raw(queue: QueueReader) -> list[dict[str, Any]]:
    """The queued events, with their trace context (which the claim check's URL sits beside)."""
    return queue.drain(keep_trace=True)


@pytest.mark.parametrize(
    ("size", "claim_checked"),
    [(47 * KiB, False), (49 * KiB, True), (64 * KiB, True), (500 * KiB, True), (MiB, True)],
    ids=["47KiB", "49KiB", "64KiB", "500KiB", "1MiB"],
)
async def test_events_up_to_1_mib_are_accepted(
    post: Post, queue: QueueReader, container: ContainerClient, size: int, claim_checked: bool
) -> None:
    event = sized(size)
    answer = await post(body(event))
    assert answer.status_code == 200, answer.get_body()[:500]
    [message] = queued_raw(queue)
    stored = blobs(container)
    if not claim_checked:
        assert message["data"] == event["data"]
        assert "dataref" not in message
        assert stored == {}
        return
    assert "data" not in message
    assert "data_base64" not in message
    assert message["datacontenttype"] == "text/plain"
    [(name, (content, metadata, content_type))] = stored.items()
    assert message["dataref"] == f"{container.url.rstrip('/')}/{name}"
    assert content == event["data"].encode()
    assert metadata == {FORM_METADATA: "data"}
    assert content_type == "text/plain"
    assert {k: v for k, v in message.items() if k not in ("dataref", "traceparent")} == {
        k: v for k, v in event.items() if k != "data"
    }
    restored = restore_event(json.dumps(message), fetcher(container), container_url=container.url)
    assert {k: v for k, v in restored.items() if k != "traceparent"} == event


async def test_one_byte_over_1_mib_is_413(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    """Structured, the body is the event: the body limit (also 1 MiB) refuses it first."""
    answer = await post(body(sized(MiB + 1)))
    assert answer.status_code == 413
    problem = problem_of(answer)
    assert problem["type"] == "urn:altinn:events:problem:body-too-large"
    assert "1048576" in problem["detail"]
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_an_event_over_1_mib_in_a_larger_body_limit_is_413(
    post: Post, queue: QueueReader, container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_MAX_BODY_BYTES", str(2 * MiB))
    answer = await post(body(sized(MiB + 1)))
    assert answer.status_code == 413
    problem = problem_of(answer)
    assert problem["type"] == "urn:altinn:events:problem:event-too-large"
    assert "1048577 bytes" in problem["detail"]
    assert "at most 1048576 bytes (EVENTS_MAX_EVENT_BYTES)" in problem["detail"]
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_binary_data_over_1_mib_as_an_event_is_413(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    """800 KiB of bytes fit the body limit, but as data_base64 the event is over 1 MiB."""
    answer = await post(
        os.urandom(800 * KiB), content_type="application/octet-stream", headers=BINARY_HEADERS
    )
    assert answer.status_code == 413
    assert "EVENTS_MAX_EVENT_BYTES" in problem_of(answer)["detail"]
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_json_data_is_stored_as_its_compact_json(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    data = {"rows": [{"n": n, "name": "ærlig ❤", "value": n / 7} for n in range(3000)]}
    event = {k: v for k, v in VALID_EVENT.items() if k != "datacontenttype"}
    event |= {"id": "json-1", "data": data}
    assert (await post(event)).status_code == 200
    [message] = queued_raw(queue)
    [(content, metadata, content_type)] = blobs(container).values()
    assert content == encode_compact(data)
    assert json.loads(content) == data
    assert metadata == {FORM_METADATA: "data"}
    assert content_type == "application/json"
    assert "datacontenttype" not in message, "none was sent, none is added"
    restored = restore_event(
        base64.b64encode(json.dumps(message).encode()).decode(),  # as a queue trigger sees it
        fetcher(container),
        container_url=container.url,
    )
    assert encode_compact(restored["data"]) == encode_compact(data)


async def test_binary_mode_bytes_are_stored_exactly(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    payload = os.urandom(100 * KiB)  # data_base64 in the event: 136 KiB of JSON
    answer = await post(payload, content_type="application/octet-stream", headers=BINARY_HEADERS)
    assert answer.status_code == 200
    [message] = queued_raw(queue)
    assert message["datacontenttype"] == "application/octet-stream"
    assert "data_base64" not in message
    [(content, metadata, content_type)] = blobs(container).values()
    assert content == payload
    assert metadata == {FORM_METADATA: "data_base64"}
    assert content_type == "application/octet-stream"
    restored = restore_event(json.dumps(message), fetcher(container), container_url=container.url)
    assert base64.b64decode(restored["data_base64"]) == payload


async def test_binary_mode_text_and_json(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    text = "Blåbærsyltetøy på skiva. " * 3000  # 84 KiB of UTF-8
    headers = {**BINARY_HEADERS, "ce-id": "text-1"}
    assert (
        await post(text.encode(), content_type="text/plain; charset=utf-8", headers=headers)
    ).status_code == 200
    document = encode_compact({"items": list(range(20000))})  # 109 KiB, already compact
    headers = {**BINARY_HEADERS, "ce-id": "json-1"}
    assert (
        await post(document, content_type="application/json", headers=headers)
    ).status_code == 200
    messages = {m["id"]: m for m in queued_raw(queue)}
    stored = blobs(container)
    by_url = {f"{container.url.rstrip('/')}/{name}": value for name, value in stored.items()}
    assert by_url[messages["text-1"]["dataref"]][0] == text.encode()
    assert by_url[messages["json-1"]["dataref"]][0] == document, "the body's bytes, exactly"
    restored = restore_event(
        json.dumps(messages["text-1"]), fetcher(container), container_url=container.url
    )
    assert restored["data"] == text


async def test_in_a_batch_each_element_is_checked_on_its_own(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    small = {**VALID_EVENT, "id": "small"}
    large = sized(100 * KiB, id="large")
    answer = await post(json.dumps([small, large]).encode(), content_type=BATCH)
    assert answer.status_code == 200
    assert [r["status"] for r in json.loads(answer.get_body())["results"]] == [200, 200]
    messages = {m["id"]: m for m in queued_raw(queue)}
    assert messages["small"]["data"] == small["data"]
    assert "data" not in messages["large"]
    [(content, _, _)] = blobs(container).values()
    assert content == large["data"].encode()


async def test_a_batch_keeps_the_body_limit(post: Post, queue: QueueReader) -> None:
    elements = [sized(600 * KiB, id="a"), sized(600 * KiB, id="b")]
    answer = await post(json.dumps(elements).encode(), content_type=BATCH)
    assert answer.status_code == 413
    assert problem_of(answer)["type"] == "urn:altinn:events:problem:body-too-large"
    assert queue.drain() == []


async def test_an_own_dataref_without_data_is_queued_as_sent(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    event = {k: v for k, v in VALID_EVENT.items() if k != "data"}
    event["dataref"] = "https://files.example.org/orders/42.pdf"
    assert (await post(event)).status_code == 200
    assert queue.drain() == [event]
    assert blobs(container) == {}
    relative = {**event, "id": "relative", "dataref": "/orders/42.pdf"}
    assert (await post(relative)).status_code == 200, "a URI-reference may be relative"


@pytest.mark.parametrize("dataref", ["a b", "http://[::1", 42])
async def test_a_dataref_must_be_a_uri_reference(
    post: Post, queue: QueueReader, dataref: Any
) -> None:
    answer = await post({**VALID_EVENT, "dataref": dataref})
    assert answer.status_code == 400
    assert "dataref" in problem_of(answer)["errors"]
    assert queue.drain() == []


async def test_a_dataref_into_our_container_is_refused(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    """Nobody may point subscribers at another event's data."""
    someone_elses = f"{container.url.rstrip('/')}/2026/11/30/0123456789abcdef"
    answer = await post(
        {k: v for k, v in VALID_EVENT.items() if k != "data"} | {"dataref": someone_elses}
    )
    assert answer.status_code == 400
    assert "own storage" in problem_of(answer)["errors"]["dataref"][0]
    assert queue.drain() == []


def spellings_of(container_url: str) -> list[str]:
    """The container's own blob ``x``, spelled as a storage service reads it but not as the
    endpoint writes it (the findings of docs/errors.md, "dataref")."""
    parts = urlsplit(container_url.rstrip("/"))
    host, port, path = parts.hostname, parts.port, parts.path
    assert host == "127.0.0.1"
    assert port is not None
    account, container = path.strip("/").split("/")
    encoded = (
        container.replace("-", "%2D")
        if "-" in container
        else "%" + container[0].encode().hex() + container[1:]
    )
    return [
        f"HTTP://{host}:{port}/{account}/{container}/x",
        f"http://{host}:{port}/{account}/{encoded}/x",
        f"http://{host}:{port}/{account}/./{container}/x",
        f"http://{host}:{port}/{account}/elsewhere/../{container}/x",
        f"http://{host}:{port}/{account}//{container}/x",
        f"http://{host}:{port}/{account}\\{container}\\x",
        f"http://user@{host}:{port}/{account}/{container}/x",
        f"http://{host}.:{port}/{account}/{container}/x",
        f"http://0x7f000001:{port}/{account}/{container}/x",
        f"http://127.1:{port}/{account}/{container}/x",
        f"http://{host}:{port}/{account.upper()}/{container.upper()}/x",
    ]


async def test_a_dataref_into_our_container_is_refused_however_it_is_spelled(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    attributes = {k: v for k, v in VALID_EVENT.items() if k != "data"}
    for n, spelling in enumerate(spellings_of(container.url)):
        answer = await post({**attributes, "id": f"spelled-{n}", "dataref": spelling})
        assert answer.status_code == 400, spelling
        [message] = problem_of(answer)["errors"]["dataref"]
        # a backslash is no URI character: refused before the container is looked at
        assert ("own storage" if "\\" not in spelling else "not allowed") in message, spelling
    assert queue.drain() == []


@pytest.mark.parametrize(
    "dataref",
    [
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://files.example.org/a.pdf",  # cleartext: a subscriber would follow it unprotected
        "ftp://files.example.org/a.pdf",
        "//files.example.org/a.pdf",  # scheme-relative: whatever scheme the reader has
        "data:text/plain,hello",
    ],
)
async def test_a_dataref_may_only_be_https_or_relative(
    post: Post, queue: QueueReader, container: ContainerClient, dataref: str
) -> None:
    answer = await post(
        {k: v for k, v in VALID_EVENT.items() if k != "data"} | {"dataref": dataref}
    )
    assert answer.status_code == 400
    [message] = problem_of(answer)["errors"]["dataref"]
    assert "https" in message
    assert queue.drain() == []


async def test_the_reader_follows_only_references_into_its_own_container(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    """restore_event fetches our own blobs, whatever the spelling, and nothing else: a
    reference anywhere else is the publisher's own, left for the subscriber to judge."""
    event = sized(80 * KiB, id="restored")
    assert (await post(body(event))).status_code == 200
    [message] = queued_raw(queue)
    fetched: list[str] = []

    def fetch(url: str) -> tuple[bytes, dict[str, str]]:
        fetched.append(url)
        return fetcher(container)(url)

    restored = restore_event(json.dumps(message), fetch, container_url=container.url)
    assert restored["data"] == event["data"]
    assert fetched == [message["dataref"]]
    name = message["dataref"].removeprefix(container.url.rstrip("/") + "/")
    for spelling in spellings_of(container.url):
        spelled = {
            **message,
            "dataref": spelling.removesuffix("x") + name,
        }
        fetched.clear()
        assert (
            restore_event(json.dumps(spelled), fetch, container_url=container.url)["data"]
            == event["data"]
        ), spelling
        assert fetched == [message["dataref"]], "fetched by its own URL, not as spelled"
    for elsewhere in (
        "https://files.example.org/a.pdf",
        "file:///etc/passwd",
        f"{container.url}-other/{name}",
    ):
        fetched.clear()
        foreign = {**message, "dataref": elsewhere}
        assert restore_event(json.dumps(foreign), fetch, container_url=container.url) == foreign
        assert fetched == []


async def test_a_non_ascii_media_type_of_a_large_event_is_400_not_503(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    """Its blob would carry it as Content-Type, which a storage call refuses: a client's error,
    found before anything is stored."""
    answer = await post(body(sized(80 * KiB, datacontenttype='text/plain; x="\u00e9"')))
    assert answer.status_code == 400
    assert "ASCII" in problem_of(answer)["errors"]["datacontenttype"][0]
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_a_large_events_blob_is_deleted_when_its_send_definitely_failed(
    post: Post, queue: QueueReader, container: ContainerClient, queue_proxy: FaultProxy
) -> None:
    """The queue refuses the message: nothing refers to the blob, so it goes; the retry stores
    one blob, not a second."""
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200  # makes the queue
    queue.drain()
    event = sized(80 * KiB, id="refused")
    queue_proxy.add(Fault.REFUSE, method="POST", path_contains="/messages", times=None)
    answer = await post(body(event))
    assert answer.status_code == 503
    await settled()
    assert blobs(container) == {}
    queue_proxy.clear()
    assert (await post(body(event))).status_code == 200
    [message] = queued_raw(queue)
    assert list(blobs(container)) == [
        message["dataref"].removeprefix(container.url.rstrip("/") + "/")
    ]


async def test_a_large_events_blob_is_deleted_when_its_send_failed_after_the_answer(
    post: Post, queue: QueueReader, container: ContainerClient, queue_proxy: FaultProxy
) -> None:
    """The finding: the queue refuses, but only after the answer's budget (2 s here), so the
    publisher got 503 "may have been stored". When the refusal comes, the send has definitely
    failed: nothing refers to the blob, and it is deleted then."""
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200  # makes the queue
    queue.drain()
    queue_proxy.add(Fault.REFUSE, method="POST", path_contains="/messages", times=None, seconds=1)
    answer = await post(body(sized(80 * KiB, id="refused-late")))
    assert answer.status_code == 503
    assert "may have been stored" in problem_of(answer)["detail"]
    await settled()
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_a_large_events_blob_is_kept_when_its_send_may_have_been_stored(
    post: Post, queue: QueueReader, container: ContainerClient, queue_proxy: FaultProxy
) -> None:
    """The queue stored the message but its answer was lost: the message refers to the blob,
    so the blob stays (nobody can tell that the send failed)."""
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200  # makes the queue
    queue.drain()
    queue_proxy.add(Fault.DROP_ANSWER, method="POST", path_contains="/messages", times=None)
    answer = await post(body(sized(80 * KiB, id="maybe")))
    assert answer.status_code == 503
    await settled()
    queue_proxy.clear()
    messages = queued_raw(queue)
    assert messages, "the message was stored, only its answer lost"
    for message in messages:
        name = message["dataref"].removeprefix(container.url.rstrip("/") + "/")
        assert name in blobs(container)


async def test_an_own_dataref_with_data_too_large_is_413(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    answer = await post(body(sized(60 * KiB, dataref="https://files.example.org/x")))
    assert answer.status_code == 413
    assert "its own 'dataref'" in problem_of(answer)["detail"]
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_attributes_too_large_for_a_message_are_413(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    event = {**VALID_EVENT, "subject": "s" * MAX_EVENT_BYTES}
    answer = await post(event)
    assert answer.status_code == 413
    assert "attributes alone" in problem_of(answer)["detail"]
    assert queue.drain() == []
    assert blobs(container) == {}


async def test_a_replay_of_a_large_event_stores_nothing_more(
    post: Post, queue: QueueReader, container: ContainerClient
) -> None:
    event = sized(200 * KiB, id="large-replayed")
    assert (await post(body(event))).status_code == 200
    again = await post(body(event))
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(queue.drain()) == 1
    assert len(blobs(container)) == 1


async def test_without_a_blob_service_large_events_are_413(
    post: Post,
    queue: QueueReader,
    stack: LocalStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    azurite = stack.azurite
    connection = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={azurite.connection_string.split('AccountKey=')[1].split(';')[0]};"
        f"QueueEndpoint={azurite.endpoint('queue')};TableEndpoint={azurite.endpoint('table')};"
    )
    monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", connection)
    answer = await post(body(sized(60 * KiB)))
    assert answer.status_code == 413
    assert "no blob service" in problem_of(answer)["detail"]
    assert (await post(VALID_EVENT)).status_code == 200, "events that fit are unaffected"
    assert len(queue.drain()) == 1


async def test_a_stopped_blob_service_is_503_and_nothing_is_queued(
    post: Post,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    queue_name: str,
) -> None:
    own = Azurite(services=("blob", "queue", "table"), location=tmp_path / "azurite").start()
    try:
        monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", own.connection_string)
        reader = QueueReader(own.connection_string, queue_name)
        event = sized(80 * KiB, id="while-down")
        own.stop_service("blob")
        answer = await post(body(event))
        assert answer.status_code == 503
        problem = problem_of(answer)
        assert problem["type"] == "urn:altinn:events:problem:blobs-unavailable"
        assert int(answer.headers["Retry-After"]) > 0
        assert (await post({**VALID_EVENT, "id": "small"})).status_code == 200, "small ones go"
        assert [m["id"] for m in reader.drain()] == ["small"]
        own.start_service("blob")
        retried = await post(body(event))
        assert retried.status_code == 200, "the claim was released: the retry publishes"
        assert "Idempotent-Replayed" not in retried.headers
        [message] = reader.drain()
        container = ContainerClient.from_connection_string(own.connection_string, "events-data")
        [(content, _, _)] = blobs(container).values()
        assert content == event["data"].encode()
        assert message["dataref"].endswith("/" + next(iter(blobs(container))))
    finally:
        own.stop()


async def test_the_limit_measures_the_event_as_sent_also_without_de_duplication(
    post: Post, queue: QueueReader, container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly 1 MiB as sent is accepted: the trace context the endpoint adds does not count."""
    monkeypatch.setenv("EVENTS_IDEMPOTENCY_WINDOW_HOURS", "0")
    event = sized(MiB)
    assert (await post(body(event))).status_code == 200
    [message] = queued_raw(queue)
    assert "traceparent" in message
    [(content, _, _)] = blobs(container).values()
    assert content == event["data"].encode()
