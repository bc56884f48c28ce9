"""Idempotent publish at its edges, through the real function handler, with a fault proxy
(tests/support/faults.py) in front of Azurite's table or queue service: record writes whose
answer is lost or late, a queue answer lost after the message was stored, the same content in
another serializer's spelling, and one organisation under two spellings of its code
(docs/idempotency.md states each rule tested here)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from devtools.issuer import DevIssuer
from shared.app.runtime import current_runtime
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader
from tests.support.faults import Fault, FaultProxy

BATCH = "application/cloudevents-batch+json"
REPLAYED = "Idempotent-Replayed"


async def settled() -> None:
    """Every record write the last publishes left running in the background has ended."""
    await current_runtime().pipeline.close(10)


def records_insert(function_env: dict[str, str]) -> dict[str, Any]:
    """Matches the insert of a claim into one of this test's records tables."""
    return {"method": "POST", "path_contains": f"/{function_env['EVENTS_IDEMPOTENCY_TABLE']}"}


# -- a record write whose answer was lost or late -------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.DROP_ANSWER, Fault.HOLD_ANSWER])
async def test_a_claim_whose_answer_was_lost_does_not_block_its_retries(
    post: Post,
    queue: QueueReader,
    table_proxy: FaultProxy,
    function_env: dict[str, str],
    fault: Fault,
) -> None:
    """The insert lands but its answer is lost (or comes after the budget): the publish goes on
    without a known claim and answers 200; its retry is then a replay, not 409 in-progress, and
    the event is on the queue once."""
    # a first publish makes the tables, so that the fault hits the claim's own insert
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200
    await settled()
    queue.drain()
    table_proxy.add(fault, **records_insert(function_env))
    first = await post(VALID_EVENT)
    assert first.status_code == 200
    await settled()
    table_proxy.release()
    again = await post(VALID_EVENT)
    assert again.status_code == 200, again.get_body()
    assert again.headers.get(REPLAYED) == "true"
    assert queue.drain() == [VALID_EVENT]


async def test_with_required_de_duplication_a_lost_claim_answer_does_not_block_the_retry(
    post: Post,
    queue: QueueReader,
    table_proxy: FaultProxy,
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """EVENTS_IDEMPOTENCY_REQUIRED=true: the lost answer is a 503 (nothing published), and the
    reservation it may have left is taken back, so the retry publishes at once."""
    monkeypatch.setenv("EVENTS_IDEMPOTENCY_REQUIRED", "true")
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200
    await settled()
    queue.drain()
    table_proxy.add(Fault.DROP_ANSWER, **records_insert(function_env))
    first = await post(VALID_EVENT)
    assert first.status_code == 503
    assert problem_of(first)["type"].endswith(":records-unavailable")
    await settled()
    again = await post(VALID_EVENT)
    assert again.status_code == 200, again.get_body()
    assert REPLAYED not in again.headers
    assert queue.drain() == [VALID_EVENT]


async def test_a_batch_of_copies_of_an_orphaned_identity_costs_a_handful_of_table_calls(
    post: Post,
    queue: QueueReader,
    table_proxy: FaultProxy,
    function_env: dict[str, str],
) -> None:
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200
    await settled()
    queue.drain()
    table_proxy.add(Fault.DROP_ANSWER, **records_insert(function_env))
    assert (await post(VALID_EVENT)).status_code == 200
    await settled()
    with table_proxy.counting() as calls:
        answer = await post(json.dumps([VALID_EVENT] * 100).encode(), content_type=BATCH)
    assert answer.status_code == 200
    results = json.loads(answer.get_body())["results"]
    assert [entry.get("replayed") for entry in results] == [True] * 100
    assert len(calls) <= 4, calls
    assert queue.drain() == [VALID_EVENT]


async def test_copies_in_one_batch_are_claimed_once(
    post: Post, queue: QueueReader, table_proxy: FaultProxy
) -> None:
    """The first copy is published, the other copies are its replays, other content under the
    same identity is 409."""
    other = {**VALID_EVENT, "data": {"other": True}}
    with table_proxy.counting() as calls:
        answer = await post(
            json.dumps([VALID_EVENT, VALID_EVENT, other]).encode(), content_type=BATCH
        )
    results = json.loads(answer.get_body())["results"]
    assert [entry["status"] for entry in results] == [200, 200, 409]
    assert "replayed" not in results[0]
    assert results[1]["replayed"] is True
    assert results[2]["problem"]["type"].endswith(":duplicate-event-id")
    claims = [seen for seen in calls if seen.method == "POST"]
    assert len(claims) <= 3  # one claim (and, on a first run, the tables made for it)
    assert queue.drain() == [VALID_EVENT]


# -- a queue answer lost after the message was stored ---------------------------------------------


async def test_a_maybe_stored_503_says_a_retry_may_queue_it_twice(
    post: Post, queue: QueueReader, queue_proxy: FaultProxy
) -> None:
    assert (await post({**VALID_EVENT, "id": "warm-up"})).status_code == 200  # the queue exists
    queue.drain()
    queue_proxy.add(Fault.DROP_ANSWER, method="POST", path_contains="/messages")
    first = await post(VALID_EVENT)
    assert first.status_code == 503
    detail = problem_of(first)["detail"]
    assert "may have been stored" in detail
    assert "may queue it a second time" in detail
    assert "queued only once" not in detail
    await settled()
    again = await post(VALID_EVENT)  # what the 503 said: published again, not a false replay
    assert again.status_code == 200
    assert REPLAYED not in again.headers
    assert queue.drain() == [VALID_EVENT, VALID_EVENT]


async def test_a_definitely_refused_send_is_a_503_that_says_nothing_was_published(
    post: Post, queue: QueueReader, queue_proxy: FaultProxy
) -> None:
    queue_proxy.add(Fault.REFUSE, method="POST", path_contains="/messages", times=None)
    first = await post(VALID_EVENT)
    assert first.status_code == 503
    detail = problem_of(first)["detail"]
    assert "may have been stored" not in detail
    queue_proxy.clear()
    await settled()
    again = await post(VALID_EVENT)
    assert (again.status_code, again.headers.get(REPLAYED)) == (200, None)
    assert queue.drain() == [VALID_EVENT]


# -- the same content in another spelling ---------------------------------------------------------


def binary(event: dict[str, Any]) -> dict[str, Any]:
    """Headers and body of the event in binary mode (values percent-encoded where needed)."""
    from urllib.parse import quote

    headers = {
        f"ce-{name}": quote(str(value).lower() if isinstance(value, bool) else str(value), safe="")
        for name, value in event.items()
        if name not in ("data", "data_base64", "datacontenttype")
    }
    return headers


SAME_CONTENT: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "data members in another order": (
        {**VALID_EVENT, "data": {"a": 1, "b": {"c": 2, "d": 3}}},
        {**VALID_EVENT, "data": {"b": {"d": 3, "c": 2}, "a": 1}},
    ),
    "1 and 1.0": ({**VALID_EVENT, "data": {"n": 1}}, {**VALID_EVENT, "data": {"n": 1.0}}),
    "1 and 1e0": ({**VALID_EVENT, "data": [1, 2.5]}, {**VALID_EVENT, "data": [1e0, 25e-1]}),
    "Z and +00:00": (
        {**VALID_EVENT, "time": "2024-05-17T13:45:00Z"},
        {**VALID_EVENT, "time": "2024-05-17T13:45:00.000+00:00"},
    ),
    "the same instant at another offset": (
        {**VALID_EVENT, "time": "2024-05-17T10:00:00Z"},
        {**VALID_EVENT, "time": "2024-05-17T11:00:00+01:00"},
    ),
    "an integer extension and its string": (
        {**VALID_EVENT, "ext": 5, "flag": True},
        {**VALID_EVENT, "ext": "5", "flag": "true"},
    ),
    "no datacontenttype and application/json": (
        {k: v for k, v in VALID_EVENT.items() if k != "datacontenttype"},
        {**VALID_EVENT, "datacontenttype": "application/json"},
    ),
    "charset=utf-8 and none, in another case": (
        {**VALID_EVENT, "datacontenttype": "application/json"},
        {**VALID_EVENT, "datacontenttype": "Application/JSON; charset=UTF-8"},
    ),
    "text data and the same bytes as data_base64": (
        {**VALID_EVENT, "datacontenttype": "text/plain", "data": "hello æ"},
        {
            **{k: v for k, v in VALID_EVENT.items() if k != "data"},
            "datacontenttype": "text/plain",
            "data_base64": base64.b64encode("hello æ".encode()).decode(),
        },
    ),
}


@pytest.mark.parametrize("case", SAME_CONTENT)
async def test_the_same_content_in_another_spelling_is_a_replay(
    post: Post, queue: QueueReader, case: str
) -> None:
    first, second = SAME_CONTENT[case]
    assert (await post(first)).status_code == 200
    again = await post(second)
    assert again.status_code == 200, again.get_body()
    assert again.headers.get(REPLAYED) == "true"
    assert len(queue.drain()) == 1


async def test_a_structured_extension_and_its_binary_header_are_the_same_content(
    post: Post, queue: QueueReader
) -> None:
    event = {**VALID_EVENT, "ext": 5}
    assert (await post(event)).status_code == 200
    body = json.dumps(event["data"], ensure_ascii=False).encode()
    again = await post(body, content_type="application/json", headers=binary(event))
    assert again.status_code == 200, again.get_body()
    assert again.headers.get(REPLAYED) == "true"
    assert len(queue.drain()) == 1


async def test_structured_without_datacontenttype_and_binary_json_are_the_same_content(
    post: Post, queue: QueueReader
) -> None:
    event = {k: v for k, v in VALID_EVENT.items() if k != "datacontenttype"}
    assert (await post(event)).status_code == 200
    body = json.dumps(event["data"]).encode()  # ASCII escapes: JSON values compare equal
    again = await post(body, content_type="application/json", headers=binary(event))
    assert again.headers.get(REPLAYED) == "true", again.get_body()
    assert len(queue.drain()) == 1


OTHER_CONTENT: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "NFC and NFD": (
        {**VALID_EVENT, "subject": "/party/\u00e6\u00f8\u00e5-\u00e9"},
        {**VALID_EVENT, "subject": "/party/\u00e6\u00f8\u00e5-e\u0301"},
    ),
    "another instant": (
        {**VALID_EVENT, "time": "2024-05-17T10:00:00Z"},
        {**VALID_EVENT, "time": "2024-05-17T10:00:00+01:00"},
    ),
    "1 and true": ({**VALID_EVENT, "data": {"n": 1}}, {**VALID_EVENT, "data": {"n": True}}),
    "1 and the string 1 in data": (
        {**VALID_EVENT, "data": {"n": 1}},
        {**VALID_EVENT, "data": {"n": "1"}},
    ),
    "another charset parameter": (
        {**VALID_EVENT, "datacontenttype": "text/plain", "data": "x"},
        {**VALID_EVENT, "datacontenttype": "text/plain; format=flowed", "data": "x"},
    ),
}


@pytest.mark.parametrize("case", OTHER_CONTENT)
async def test_other_content_is_still_409(post: Post, queue: QueueReader, case: str) -> None:
    first, second = OTHER_CONTENT[case]
    assert (await post(first)).status_code == 200
    again = await post(second)
    assert again.status_code == 409
    assert problem_of(again)["type"].endswith(":duplicate-event-id")
    assert len(queue.drain()) == 1


# -- one organisation, one publisher -----------------------------------------------------------


async def test_an_org_code_in_another_case_is_the_same_publisher(
    post: Post, issuer: DevIssuer, queue: QueueReader
) -> None:
    assert (await post(VALID_EVENT, token=issuer.mint(org="TTD"))).status_code == 200
    again = await post(VALID_EVENT, token=issuer.mint(org="ttd"))
    assert again.status_code == 200
    assert again.headers.get(REPLAYED) == "true"
    assert queue.drain() == [VALID_EVENT]
