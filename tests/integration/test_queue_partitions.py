"""Queue partitions (``EVENTS_QUEUE_PARTITIONS``, docs/capacity.md) through the real function
handler against Azurite with N = 4: every accepted event on exactly one queue, the spread of
1,000 events, a replay enqueued nowhere, and the outage cases with one partition's queue failing
behind a fault proxy (the others unaffected, a retry landing where the first try did)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.app.runtime import current_runtime
from shared.cloudevents.jsonformat import encode_compact
from shared.subscriber import queue_names
from tests.integration.conftest import Post, problem_of
from tests.support import VALID_EVENT, QueueReader
from tests.support.faults import Fault, FaultProxy

PARTITIONS = 4
BATCH = "application/cloudevents-batch+json"


@pytest.fixture
def partitions(
    function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, queue_name: str
) -> list[QueueReader]:
    monkeypatch.setenv("EVENTS_QUEUE_PARTITIONS", str(PARTITIONS))
    connection = function_env["EVENTS_QUEUE_CONNECTION"]
    return [QueueReader(connection, name) for name in queue_names(queue_name, PARTITIONS)]


def drained(readers: list[QueueReader]) -> list[list[str]]:
    """The ids on each partition's queue (removed from it)."""
    return [[event["id"] for event in reader.drain()] for reader in readers]


def flat(on_queues: list[list[str]]) -> list[str]:
    return [event_id for ids in on_queues for event_id in ids]


def event(event_id: str, **members: Any) -> dict[str, Any]:
    return {**VALID_EVENT, "id": event_id, **members}


async def test_every_accepted_event_is_on_exactly_one_queue_and_the_spread_is_even(
    post: Post, partitions: list[QueueReader], queue: QueueReader
) -> None:
    ids = [f"spread-{number}" for number in range(1000)]
    for start in range(0, len(ids), 100):
        elements = [event(event_id) for event_id in ids[start : start + 100]]
        response = await post(encode_compact(elements), content_type=BATCH)
        assert response.status_code == 200, response.get_body()[:300]
    on_queues = drained(partitions)
    assert sorted(flat(on_queues)) == sorted(ids)  # each once, none lost, none twice
    # an even spread: each queue within 20% of its share (250); a stable hash, so the same
    # 1,000 identities always spread the same way
    assert all(200 <= len(on_queue) <= 300 for on_queue in on_queues), [len(q) for q in on_queues]
    assert queue.drain() == []  # nothing on the unpartitioned name


async def test_a_replay_enqueues_nowhere_and_a_single_event_lands_on_one_queue(
    post: Post, partitions: list[QueueReader]
) -> None:
    first = await post(event("partitioned-once"))
    assert first.status_code == 200
    await current_runtime().pipeline.close(10)
    replay = await post(event("partitioned-once"))
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    on_queues = drained(partitions)
    assert sum(len(ids) for ids in on_queues) == 1
    assert flat(on_queues) == ["partitioned-once"]


async def test_one_partition_refusing_fails_only_its_events_and_a_retry_lands_there(
    post: Post, partitions: list[QueueReader], queue_proxy: FaultProxy, queue_name: str
) -> None:
    broken = f"/{queue_name}-2/messages"
    queue_proxy.add(Fault.REFUSE, method="POST", path_contains=broken, times=None)
    ids = [f"outage-{number}" for number in range(24)]
    statuses = {}
    for event_id in ids:
        response = await post(event(event_id))
        statuses[event_id] = response.status_code
        if response.status_code != 200:
            assert response.status_code == 503
            assert problem_of(response)["type"].endswith(":queue-unavailable")
    refused = [event_id for event_id, status in statuses.items() if status == 503]
    on_queues = drained(partitions)
    assert refused, "no event of the 24 chose partition 2"
    assert on_queues[2] == []
    assert sorted(flat(on_queues)) == sorted(set(ids) - set(refused))  # every 200 stored
    queue_proxy.clear()
    for event_id in refused:  # the queue is back: a retry publishes, on the same partition
        assert (await post(event(event_id))).status_code == 200
    assert sorted(drained(partitions)[2]) == sorted(refused)


async def test_an_answer_lost_on_a_partition_is_503_maybe_stored_and_a_retry_meets_the_same_queue(
    post: Post, partitions: list[QueueReader], queue_proxy: FaultProxy, queue_name: str
) -> None:
    warm_up = [event(f"warm-up-{number}") for number in range(40)]
    assert (await post(encode_compact(warm_up), content_type=BATCH)).status_code == 200
    assert all(drained(partitions)), "every partition's queue exists now"
    chosen = "lost-answer"
    queue_proxy.add(Fault.DROP_ANSWER, method="POST", path_contains=f"/{queue_name}-")
    lost = await post(event(chosen))
    assert lost.status_code == 503
    assert "may have been stored" in problem_of(lost)["detail"]
    queue_proxy.clear()
    await current_runtime().pipeline.close(10)
    retried = await post(event(chosen))  # what the 503 said: published again
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    again = drained(partitions)
    assert flat(again).count(chosen) == 2  # the documented "may queue it a second time"
    assert len({index for index, ids in enumerate(again) if chosen in ids}) == 1  # one queue


async def test_a_dry_run_with_partitions_writes_no_queue(
    post: Post, partitions: list[QueueReader]
) -> None:
    response = await post(event("partitioned-dry"), query="validateOnly=true")
    assert response.status_code == 200
    assert json.loads(response.get_body())["replayed"] is False
    assert drained(partitions) == [[], [], [], []]
