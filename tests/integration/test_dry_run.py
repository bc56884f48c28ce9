"""Dry runs (``POST /events?validateOnly=true``, docs/errors.md "Dry run") through the real
function handler against the real local services: each content mode with a valid event, an
invalid one, one on a resource the publisher may not use, a replay, a conflict and a large
event that a publish would claim-check, and a batch mixing them all. After each dry run the
queue, the records' tables and the blob container hold exactly what they held before."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from devtools.issuer import DevIssuer
from shared.app.runtime import current_runtime
from shared.cloudevents.jsonformat import encode_compact
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader, records_table_for

BATCH = "application/cloudevents-batch+json"
DRY = "validateOnly=true"
LARGE_BYTES = 60 * 1024  # over one queue message: a publish stores its data as a blob


class Stores:
    """What the queue, the records' tables and the blob container of one test hold."""

    def __init__(self, connection: str, queue_name: str) -> None:
        self.queue = QueueClient.from_connection_string(connection, queue_name)
        self.tables = TableServiceClient.from_connection_string(connection)
        self.container = ContainerClient.from_connection_string(connection, queue_name)
        self.prefix = records_table_for(queue_name)

    def held(self) -> dict[str, Any]:
        messages: list[str] = []
        if self._queue_exists():
            messages = sorted(m.content for m in self.queue.peek_messages(max_messages=32))
        tables = {}
        for table in self.tables.list_tables():
            if table.name.startswith(self.prefix):
                client = self.tables.get_table_client(table.name)
                tables[table.name] = sorted(
                    (e["RowKey"], e["state"], e["fingerprint"], e.metadata["etag"])
                    for e in client.list_entities()
                )
        blobs = []
        if self.container.exists():
            blobs = sorted((b.name, b.etag) for b in self.container.list_blobs())
        return {"messages": messages, "tables": tables, "blobs": blobs}

    def _queue_exists(self) -> bool:
        try:
            self.queue.get_queue_properties()
        except ResourceNotFoundError:  # not made yet: nothing was ever sent
            return False
        return True


@pytest.fixture
def stores(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, queue_name: str
) -> Stores:
    monkeypatch.setenv("EVENTS_BLOB_CONTAINER", queue_name)
    return Stores(function_env["EVENTS_QUEUE_CONNECTION"], queue_name)


async def settled() -> None:
    """The commits the last real publishes left running have been written."""
    await current_runtime().pipeline.close(10)


def event(**members: Any) -> dict[str, Any]:
    return {**VALID_EVENT, **members}


def large(**members: Any) -> dict[str, Any]:
    return event(datacontenttype="text/plain", data="x" * LARGE_BYTES, **members)


def binary(members: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An event in binary mode: its attributes as ce- headers, its data as the body."""
    data = members["data"]
    headers = {
        f"ce-{name}": str(value)
        for name, value in members.items()
        if name not in ("data", "datacontenttype")
    }
    body = data.encode() if isinstance(data, str) else json.dumps(data).encode()
    headers["Content-Type"] = members.get("datacontenttype", "application/json")
    return body, headers


async def send(
    post: Post, mode: str, members: dict[str, Any], query: str = DRY, **options: Any
) -> func.HttpResponse:
    if mode == "binary":
        body, headers = binary(members)
        return await post(body, content_type=None, headers=headers, query=query, **options)
    return await post(members, query=query, **options)


def dry_answer(response: func.HttpResponse) -> dict[str, Any]:
    assert response.headers["Validate-Only"] == "true"
    if response.status_code not in (200, 207):
        return problem_of(response)
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = json.loads(response.get_body())
    return body


MODES = ["structured", "binary"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_valid_event_is_200_and_nothing_is_written(
    post: Post, stores: Stores, queue: QueueReader, mode: str
) -> None:
    before = stores.held()
    response = await send(post, mode, event(id="dry-valid"))
    assert response.status_code == 200
    assert dry_answer(response) == {"validateOnly": True, "status": 200, "replayed": False}
    assert "Idempotent-Replayed" not in response.headers
    assert stores.held() == before
    # the same request without the parameter publishes: the dry run told the truth
    published = await send(post, mode, event(id="dry-valid"), query="")
    assert published.status_code == 200
    assert "Validate-Only" not in published.headers
    assert [e["id"] for e in queue.drain()] == ["dry-valid"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_invalid_event_gets_the_publish_problem(
    post: Post, stores: Stores, mode: str
) -> None:
    before = stores.held()
    response = await send(post, mode, event(id="dry-invalid", time="soon"))
    assert response.status_code == 400
    assert set(dry_answer(response)["errors"]) == {"time"}
    assert stores.held() == before


@pytest.mark.parametrize("mode", MODES)
async def test_a_resource_the_publisher_may_not_use_is_403(
    post: Post, stores: Stores, issuer: DevIssuer, mode: str
) -> None:
    before = stores.held()
    response = await send(post, mode, event(id="dry-403"), token=issuer.mint(org="skd"))
    assert response.status_code == 403
    assert dry_answer(response)["type"].endswith(":not-authorized-for-resource")
    assert stores.held() == before


@pytest.mark.parametrize("mode", MODES)
async def test_a_replay_and_a_conflict_are_answered_as_a_publish_would(
    post: Post, stores: Stores, mode: str
) -> None:
    assert (await send(post, mode, event(id="dry-seen"), query="")).status_code == 200
    await settled()
    before = stores.held()
    replay = await send(post, mode, event(id="dry-seen"))
    assert replay.status_code == 200
    assert dry_answer(replay) == {"validateOnly": True, "status": 200, "replayed": True}
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = {**VALID_EVENT["data"], "status": "cancelled"}
    conflict = await send(post, mode, event(id="dry-seen", data=other))
    assert conflict.status_code == 409
    assert dry_answer(conflict)["type"].endswith(":duplicate-event-id")
    assert stores.held() == before


@pytest.mark.parametrize("mode", MODES)
async def test_a_large_event_is_checked_as_the_claim_check_would_store_it(
    post: Post, stores: Stores, mode: str
) -> None:
    before = stores.held()
    response = await send(post, mode, large(id="dry-large"))
    assert response.status_code == 200
    assert dry_answer(response)["replayed"] is False
    too_large = await send(post, mode, event(id="dry-huge", data="x" * (2 * 1024 * 1024)))
    assert too_large.status_code == 413
    assert stores.held() == before


async def test_a_batch_mixing_every_case_answers_each_as_its_publish(
    post: Post, stores: Stores, issuer: DevIssuer
) -> None:
    assert (await post(event(id="b-seen"))).status_code == 200
    await settled()
    before = stores.held()
    elements = [
        event(id="b-new"),
        event(id="b-invalid", time="soon"),
        event(id="b-elsewhere", resource="urn:altinn:resource:someone-else"),
        event(id="b-seen"),
        event(id="b-seen", data={"other": True}),
        large(id="b-large"),
        event(id="b-new"),  # a repeat of the first, within the batch
    ]
    response = await post(encode_compact(elements), content_type=BATCH, query=DRY)
    assert response.status_code == 207
    answer = dry_answer(response)
    assert next(iter(answer)) == "validateOnly"
    assert answer["validateOnly"] is True
    statuses = [(entry["status"], entry.get("replayed", False)) for entry in answer["results"]]
    assert statuses == [
        (200, False),
        (400, False),
        (403, False),
        (200, True),
        (409, False),
        (200, False),
        (200, True),
    ]
    assert (answer["accepted"], answer["failed"]) == (4, 3)
    assert stores.held() == before
    # and a publish of the same batch answers the same
    published = await post(encode_compact(elements), content_type=BATCH)
    results = json.loads(published.get_body())["results"]
    assert [(e["status"], e.get("replayed", False)) for e in results] == statuses


BAD_VALUES = [
    "validateOnly=yes",
    "validateOnly=",
    "validateonly=true",
    "validateOnly=true&validateOnly=true",
    "validateOnly=TRUE",
]


@pytest.mark.parametrize("query", BAD_VALUES)
async def test_any_other_value_is_a_400_naming_the_parameter(
    post: Post, stores: Stores, query: str
) -> None:
    before = stores.held()
    response = await post(event(id="dry-param"), query=query)
    assert response.status_code == 400
    problem = problem_of(response)
    assert problem["type"].endswith(":invalid-parameter")
    assert "validateOnly" in problem["detail"]
    assert stores.held() == before


async def test_validate_only_false_publishes(post: Post, queue: QueueReader) -> None:
    response = await post(event(id="dry-false"), query="validateOnly=false")
    assert response.status_code == 200
    assert "Validate-Only" not in response.headers
    assert [e["id"] for e in queue.drain()] == ["dry-false"]


async def test_every_answer_of_a_dry_run_says_so(post: Post) -> None:
    unauthenticated = await post(event(id="dry-401"), token=None, query=DRY)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["Validate-Only"] == "true"
    wrong_method = await post(event(id="dry-405"), method="GET", query=DRY)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Validate-Only"] == "true"


async def test_dry_runs_count_against_the_lookup_budget(
    post: Post, monkeypatch: pytest.MonkeyPatch, registry: Any
) -> None:
    monkeypatch.setenv("EVENTS_REGISTRY_LOOKUPS_PER_MINUTE", "2")
    statuses = []
    for number in range(4):
        resource = f"urn:altinn:resource:unknown-{number}"
        response = await post(event(id=f"dry-budget-{number}", resource=resource), query=DRY)
        statuses.append(response.status_code)
        assert response.headers["Validate-Only"] == "true"
    assert statuses[:2] == [403, 403]  # looked up: not registered
    assert 429 in statuses[2:]


async def test_the_hosts_parsed_parameters_count_when_its_url_has_no_query(post: Post) -> None:
    """A host that hands over the parameters but a URL without its query still gets a dry run
    (``post`` for its environment and its clean-up)."""
    from tests.integration.conftest import publish_function  # the real handler

    request = func.HttpRequest(
        "POST",
        "http://localhost:7071/events",
        headers={"Content-Type": "application/cloudevents+json"},
        params={"validateOnly": "true"},
        body=encode_compact(event(id="dry-params")),
    )
    response = await publish_function()(request)
    assert response.status_code == 401  # no token: the answer of a dry run all the same
    assert response.headers["Validate-Only"] == "true"
