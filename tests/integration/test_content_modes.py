"""Binary mode and batches through the real function handler, against Azurite, the dev issuer and
the dev registry (docs/contract.md: "Content modes", "Batches")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devtools.azurite import Azurite
from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer
from devtools.registry import DevRegistry, publish_rule
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader

BATCH = "application/cloudevents-batch+json"


def binary_headers(event: dict[str, Any] = VALID_EVENT) -> dict[str, str]:
    """The event's attributes as ce- headers in mixed case (the names are case-insensitive)."""
    return {
        f"Ce-{name.capitalize()}": str(value)
        for name, value in event.items()
        if name not in ("data", "datacontenttype")
    }


def batch_body(*events: Any) -> bytes:
    return json.dumps(list(events), ensure_ascii=False).encode()


def numbered(count: int, **changes: Any) -> list[dict[str, Any]]:
    return [{**VALID_EVENT, "id": f"e{number}", **changes} for number in range(count)]


def body_json(response: func.HttpResponse) -> Any:
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.get_body())


# -- binary mode ----------------------------------------------------------------------------------


async def test_binary_event_is_queued_as_the_same_bytes_as_its_structured_twin(
    post: Post, queue: QueueReader, issuer: DevIssuer
) -> None:
    # the event's own traceparent, kept as sent: no per-publish trace context tells them apart
    event = {
        **VALID_EVENT,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    data = json.dumps(event["data"], ensure_ascii=False).encode()
    response = await post(data, content_type="application/json", headers=binary_headers(event))
    assert response.status_code == 200, response.get_body()
    # the same event again, structured, from another publisher (the same one's is a replay)
    admin = issuer.mint(org="skd", scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}")
    twin = dict(reversed(list(event.items())))
    assert (await post(twin, token=admin)).status_code == 200
    from_binary, from_structured = queue.raw_bodies()
    assert from_binary == from_structured
    assert queue.drain(keep_trace=True) == [event, event]


async def test_the_same_event_in_binary_then_structured_mode_is_a_replay(
    post: Post, queue: QueueReader
) -> None:
    """ "The same content" is the event as parsed, whatever the content mode."""
    data = json.dumps(VALID_EVENT["data"], ensure_ascii=False).encode()
    first = await post(data, content_type="application/json", headers=binary_headers())
    second = await post(dict(reversed(list(VALID_EVENT.items()))))
    assert (first.status_code, second.status_code) == (200, 200)
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert queue.drain() == [VALID_EVENT]


async def test_binary_text_and_bytes_and_no_body(post: Post, queue: QueueReader) -> None:
    def headers(event_id: str) -> dict[str, str]:
        return binary_headers({**VALID_EVENT, "id": event_id})

    text_response = await post(
        "hei på deg".encode(), content_type="text/plain", headers=headers("t")
    )
    image_response = await post(b"\x00\x01", content_type="image/png", headers=headers("i"))
    empty_response = await post(b"", content_type=None, headers=headers("e"))
    statuses = [r.status_code for r in (text_response, image_response, empty_response)]
    assert statuses == [200, 200, 200]
    text, image, empty = queue.drain()
    assert (text["data"], text["datacontenttype"]) == ("hei på deg", "text/plain")
    assert (image["data_base64"], image["datacontenttype"]) == ("AAE=", "image/png")
    assert "data" not in empty
    assert "datacontenttype" not in empty


async def test_invalid_binary_event_is_one_400_with_every_problem(
    post: Post, queue: QueueReader
) -> None:
    headers = {**binary_headers(), "ce-id": "%ZZ", "ce-time": "soon", "ce-datacontenttype": "x/y"}
    response = await post(b"{not json", content_type="application/json", headers=headers)
    assert response.status_code == 400
    errors = problem_of(response)["errors"]
    assert set(errors) == {"id", "time", "datacontenttype", "data"}
    assert queue.drain() == []


async def test_binary_event_on_someone_elses_resource_is_403(
    post: Post, issuer: DevIssuer, queue: QueueReader
) -> None:
    response = await post(
        b"{}",
        content_type="application/json",
        headers=binary_headers(),
        token=issuer.mint(org="skd"),
    )
    assert response.status_code == 403
    assert queue.drain() == []


# -- batches --------------------------------------------------------------------------------------


async def test_a_batch_of_valid_events_is_200_with_every_entry(
    post: Post, queue: QueueReader
) -> None:
    events = numbered(3)
    response = await post(batch_body(*events), content_type=BATCH)
    assert response.status_code == 200
    assert body_json(response) == {
        "accepted": 3,
        "failed": 0,
        "results": [{"index": n, "id": f"e{n}", "status": 200} for n in range(3)],
    }
    assert "Retry-After" not in response.headers
    assert sorted(queue.drain(), key=lambda e: e["id"]) == events


async def test_a_mixed_batch_is_207_with_an_outcome_per_element(
    post: Post, queue: QueueReader
) -> None:
    elements: list[Any] = [
        {**VALID_EVENT, "id": "good"},
        {**VALID_EVENT, "id": "bad-time", "time": "yesterday"},
        {**VALID_EVENT, "id": "other", "resource": "urn:altinn:resource:not-registered"},
        [VALID_EVENT],  # an array nested inside the batch
        "not an object",
        {**VALID_EVENT, "id": 7},
    ]
    response = await post(batch_body(*elements), content_type=BATCH)
    assert response.status_code == 207
    body = body_json(response)
    assert (body["accepted"], body["failed"]) == (1, 5)
    results = body["results"]
    assert [entry["index"] for entry in results] == list(range(6))
    assert [entry["status"] for entry in results] == [200, 400, 403, 400, 400, 400]
    assert [entry.get("id") for entry in results] == ["good", "bad-time", "other", None, None, None]
    assert "problem" not in results[0]
    invalid = results[1]["problem"]
    assert invalid["type"] == "urn:altinn:events:problem:invalid-event"
    assert "time" in invalid["errors"]
    assert "instance" not in invalid
    assert "traceId" not in invalid
    assert results[2]["problem"]["type"].endswith(":not-authorized-for-resource")
    assert results[3]["problem"]["errors"]["RequestBody"] == [
        "Cannot decode JSON element of kind 'Array' as CloudEvent. Send one event as a JSON object."
    ]
    assert [event["id"] for event in queue.drain()] == ["good"]


async def test_an_empty_batch_is_200_and_queues_nothing(post: Post, queue: QueueReader) -> None:
    response = await post(b"[]", content_type=BATCH)
    assert response.status_code == 200
    assert body_json(response) == {"accepted": 0, "failed": 0, "results": []}
    assert queue.drain() == []


@pytest.mark.parametrize("body", [b"{}", b'"events"', b"[1,", b"\xff"])
async def test_a_batch_that_is_not_a_json_array_is_one_400(
    post: Post, body: bytes, queue: QueueReader
) -> None:
    response = await post(body, content_type=BATCH)
    assert response.status_code == 400
    assert "RequestBody" in problem_of(response)["errors"]
    assert queue.drain() == []


async def test_too_many_events_is_413_for_the_whole_batch(post: Post, queue: QueueReader) -> None:
    response = await post(batch_body(*numbered(101)), content_type=BATCH)
    assert response.status_code == 413
    problem = problem_of(response)
    assert problem["type"] == "urn:altinn:events:problem:batch-too-large"
    assert "at most 100" in problem["detail"]
    assert queue.drain() == []


async def test_ten_thousand_tiny_elements_are_413_not_a_hang(
    post: Post, queue: QueueReader
) -> None:
    response = await post(b"[" + b",".join([b"{}"] * 10_000) + b"]", content_type=BATCH)
    assert response.status_code == 413
    assert queue.drain() == []


async def test_a_batch_over_the_body_limit_is_413(post: Post, queue: QueueReader) -> None:
    big = {**VALID_EVENT, "data": "x" * 40_000}
    response = await post(batch_body(*[big] * 27), content_type=BATCH)  # about 1.08 MB
    assert response.status_code == 413
    assert problem_of(response)["type"].endswith(":body-too-large")
    assert queue.drain() == []


@pytest.mark.parametrize(
    ("token_kind", "status"), [("none", 401), ("garbage", 401), ("no-scope", 403)]
)
async def test_token_and_scope_failures_are_one_problem_for_the_batch(
    post: Post, issuer: DevIssuer, token_kind: str, status: int, queue: QueueReader
) -> None:
    token = {"none": None, "garbage": "x.y.z", "no-scope": issuer.mint(scope="openid")}[token_kind]
    response = await post(batch_body(*numbered(2)), content_type=BATCH, token=token)
    assert response.status_code == status
    problem_of(response)
    assert queue.drain() == []


async def test_100_events_on_one_cold_resource_make_one_registry_call(
    post: Post, registry: DevRegistry, queue: QueueReader
) -> None:
    registry.delay_seconds = 0.2  # the call is still open while the other elements ask
    response = await post(batch_body(*numbered(100)), content_type=BATCH)
    assert response.status_code == 200
    assert registry.requests["demo-events"] == 1
    stored = queue.drain()
    assert sorted(event["id"] for event in stored) == sorted(f"e{n}" for n in range(100))


async def test_100_unregistered_resources_cost_one_registry_call_each_and_are_remembered(
    post: Post, registry: DevRegistry, queue: QueueReader
) -> None:
    events = [
        {**VALID_EVENT, "id": f"e{n}", "resource": f"urn:altinn:resource:unknown-{n}"}
        for n in range(100)
    ]
    first = await post(batch_body(*events), content_type=BATCH)
    assert first.status_code == 207
    assert {entry["status"] for entry in body_json(first)["results"]} == {403}
    assert registry.total_requests == 100
    assert max(registry.requests.values()) == 1
    second = await post(batch_body(*events), content_type=BATCH)
    assert {entry["status"] for entry in body_json(second)["results"]} == {403}
    assert registry.total_requests == 100  # the negative cache answered
    assert queue.drain() == []


async def test_an_admin_batch_skips_the_registry(
    post: Post, issuer: DevIssuer, registry: DevRegistry, queue: QueueReader
) -> None:
    events = numbered(5, resource="urn:altinn:resource:anything")
    token = issuer.mint(scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}")
    response = await post(batch_body(*events), content_type=BATCH, token=token)
    assert response.status_code == 200
    assert registry.total_requests == 0
    assert len(queue.drain()) == 5


async def test_a_failing_registry_is_503_per_entry_with_retry_after(
    post: Post, registry: DevRegistry, queue: QueueReader
) -> None:
    registry.rules["other"] = [publish_rule("other", ("urn:altinn:org", "ttd"))]
    registry.fail_status = 500
    response = await post(batch_body(*numbered(2)), content_type=BATCH)
    assert response.status_code == 207
    assert [entry["status"] for entry in body_json(response)["results"]] == [503, 503]
    assert int(response.headers["Retry-After"]) > 0
    assert queue.drain() == []


async def test_a_stopped_queue_is_503_per_entry_and_nothing_is_lost(
    post: Post,
    registry: DevRegistry,
    monkeypatch: pytest.MonkeyPatch,
    queue_name: str,
    tmp_path: Path,
) -> None:
    """The queue's Azurite stops between two batches: the first batch is on the queue, every
    entry of the second is 503 with Retry-After, and once it is back only the first is there."""
    own = Azurite(services=("queue", "table"), location=tmp_path).start()
    try:
        monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", own.connection_string)
        reader = QueueReader(own.connection_string, queue_name)
        first = await post(batch_body(*numbered(3)), content_type=BATCH)
        assert first.status_code == 200
        own.stop_service("queue")
        second = await post(batch_body(*numbered(3, source="/second")), content_type=BATCH)
        assert second.status_code == 207
        assert [entry["status"] for entry in body_json(second)["results"]] == [503] * 3
        assert body_json(second)["results"][0]["problem"]["type"].endswith(":queue-unavailable")
        assert int(second.headers["Retry-After"]) > 0
        own.start_service("queue")  # from its folder: what was stored survived the stop
        assert sorted(event["id"] for event in reader.drain()) == ["e0", "e1", "e2"]
    finally:
        own.stop()


async def test_a_batch_element_too_large_for_the_queue_is_413_in_its_entry(
    post: Post, queue: QueueReader
) -> None:
    """Over one queue message with a dataref of its own, the claim check cannot take it."""
    big = {**VALID_EVENT, "id": "big", "data": "x" * 60_000, "dataref": "https://f.example/x"}
    response = await post(batch_body({**VALID_EVENT, "id": "small"}, big), content_type=BATCH)
    assert response.status_code == 207
    assert [entry["status"] for entry in body_json(response)["results"]] == [200, 413]
    assert [event["id"] for event in queue.drain()] == ["small"]
