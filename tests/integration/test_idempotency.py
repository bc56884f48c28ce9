"""Idempotent publish (DESIGN.md, "Idempotent publish") through the real function handler, with
the records in Azurite's table service: replays, conflicts, two publishers, concurrency, batches,
the window, abandoned claims, a failing table, and the tables' cleanup."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devtools.azurite import Azurite
from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer
from devtools.registry import DevRegistry, publish_rule
from shared.identity import ManagedIdentity
from shared.model import Reservation
from shared.records import LEASE_SECONDS, TableRecords
from shared.runtime import current_runtime
from shared.settings import Settings
from tests.integration.conftest import Post, problem_of, registered_functions
from tests.support import VALID_EVENT, QueueReader

BATCH = "application/cloudevents-batch+json"
REPLAYED = "Idempotent-Replayed"


async def test_a_replay_is_200_with_the_header_and_queues_nothing(
    post: Post, queue: QueueReader
) -> None:
    first = await post(VALID_EVENT)
    again = await post(VALID_EVENT)
    assert (first.status_code, again.status_code) == (200, 200)
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"
    assert again.get_body() == b""
    assert queue.drain() == [VALID_EVENT]


async def test_other_content_under_the_same_identity_is_409(post: Post, queue: QueueReader) -> None:
    assert (await post(VALID_EVENT)).status_code == 200
    changed = await post({**VALID_EVENT, "data": {"status": "changed"}})
    assert changed.status_code == 409
    problem = problem_of(changed)
    assert problem["type"] == "urn:altinn:events:problem:duplicate-event-id"
    assert VALID_EVENT["id"] in problem["detail"]
    assert queue.drain() == [VALID_EVENT]


async def test_an_attribute_added_by_the_publisher_is_other_content(
    post: Post, queue: QueueReader
) -> None:
    assert (await post(VALID_EVENT)).status_code == 200
    assert (await post({**VALID_EVENT, "extra": "x"})).status_code == 409
    assert len(queue.drain()) == 1


async def test_two_publishers_never_block_each_others_ids(
    post: Post, issuer: DevIssuer, registry: DevRegistry, queue: QueueReader
) -> None:
    registry.rules["demo-events"].append(publish_rule("demo-events", ("urn:altinn:org", "skd")))
    ttd, skd = issuer.mint(org="ttd"), issuer.mint(org="skd")
    other_content = {**VALID_EVENT, "data": {"from": "skd"}}
    assert (await post(VALID_EVENT, token=ttd)).status_code == 200
    from_skd = await post(other_content, token=skd)  # same source and id, another publisher
    assert from_skd.status_code == 200
    assert REPLAYED not in from_skd.headers
    assert sorted(json.dumps(e, sort_keys=True) for e in queue.drain()) == sorted(
        json.dumps(e, sort_keys=True) for e in (VALID_EVENT, other_content)
    )


async def test_the_publisher_is_its_org_whatever_the_token(
    post: Post, issuer: DevIssuer, queue: QueueReader
) -> None:
    """A new token of the same organisation is the same publisher: its repeat is a replay."""
    assert (await post(VALID_EVENT, token=issuer.mint(org="ttd"))).status_code == 200
    again = await post(VALID_EVENT, token=issuer.mint(org="ttd", lifetime_seconds=60))
    assert again.headers[REPLAYED] == "true"
    assert len(queue.drain()) == 1


async def test_concurrent_duplicates_never_make_two_messages(
    post: Post, queue: QueueReader
) -> None:
    answers = await asyncio.gather(*(post(VALID_EVENT) for _ in range(20)))
    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 409}
    assert statuses.count(200) >= 1
    for answer in answers:
        if answer.status_code == 409:
            problem = problem_of(answer)
            assert problem["type"].endswith(":publish-in-progress")
            assert int(answer.headers["Retry-After"]) > 0
    assert queue.drain() == [VALID_EVENT]
    assert (await post(VALID_EVENT)).headers[REPLAYED] == "true"  # settled: now a replay


async def test_an_event_refused_before_the_queue_was_not_recorded(
    post: Post, issuer: DevIssuer, queue: QueueReader
) -> None:
    """Any non-2xx other than the 409s leaves no record: sending it again publishes it."""
    refused = await post(VALID_EVENT, token=issuer.mint(org="skd"))  # 403: not permitted
    assert refused.status_code == 403
    assert (await post(VALID_EVENT)).status_code == 200
    assert REPLAYED not in (await post({**VALID_EVENT, "id": "other"})).headers
    assert len(queue.drain()) == 2


async def test_binary_and_batch_elements_are_deduplicated_too(
    post: Post, queue: QueueReader
) -> None:
    events = [{**VALID_EVENT, "id": f"b{n}"} for n in range(3)]
    first = await post(json.dumps(events[:2]).encode(), content_type=BATCH)
    assert first.status_code == 200
    assert all("replayed" not in entry for entry in json.loads(first.get_body())["results"])
    changed = {**events[1], "data": "changed"}
    second = await post(json.dumps([events[0], changed, events[2]]).encode(), content_type=BATCH)
    assert second.status_code == 207
    results = json.loads(second.get_body())["results"]
    assert results[0] == {"index": 0, "id": "b0", "status": 200, "replayed": True}
    assert results[1]["status"] == 409
    assert results[1]["problem"]["type"].endswith(":duplicate-event-id")
    assert results[2] == {"index": 2, "id": "b2", "status": 200}
    assert sorted(event["id"] for event in queue.drain()) == ["b0", "b1", "b2"]


async def test_a_window_of_zero_hours_turns_de_duplication_off(
    post: Post, monkeypatch: pytest.MonkeyPatch, queue: QueueReader
) -> None:
    monkeypatch.setenv("EVENTS_IDEMPOTENCY_WINDOW_HOURS", "0")
    assert [(await post(VALID_EVENT)).status_code for _ in range(2)] == [200, 200]
    assert queue.drain() == [VALID_EVENT, VALID_EVENT]


# -- the record store against Azurite's table service, with a clock the test moves -----------


class WallClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def records(function_env: dict[str, str], clock: WallClock) -> Any:
    identity = ManagedIdentity()
    store = TableRecords.from_settings(Settings(), identity)  # type: ignore[call-arg]
    assert store is not None
    store._clock = clock
    yield store
    await store.close()


@pytest.fixture
def clock() -> WallClock:  # overrides the monotonic test clock: records use wall time
    return WallClock()


WINDOW = 24 * 3600.0


async def test_the_window_and_abandoned_claims(records: TableRecords, clock: WallClock) -> None:
    key, other = "a" * 64, "b" * 64
    assert await records.reserve(key, "f1") is Reservation.NEW
    assert await records.reserve(key, "f1") is Reservation.IN_FLIGHT
    assert await records.reserve(key, "f2") is Reservation.CONFLICT
    await records.commit(key)
    assert await records.reserve(key, "f1") is Reservation.REPLAY
    clock.now += WINDOW - 1
    assert await records.reserve(key, "f1") is Reservation.REPLAY  # the next generation's copy
    clock.now += 1
    assert await records.reserve(key, "f1") is Reservation.NEW  # a day later: published anew
    # a claim whose process died is taken over once its lease is over
    assert await records.reserve(other, "f") is Reservation.NEW
    clock.now += LEASE_SECONDS - 1
    assert await records.reserve(other, "f") is Reservation.IN_FLIGHT
    clock.now += 1
    assert await records.reserve(other, "f") is Reservation.NEW


async def test_a_commit_outlives_the_lease_of_its_claim(
    records: TableRecords, clock: WallClock
) -> None:
    """The claim's own record stays reserved; its commit, in the next generation's table, is
    what a later repeat finds: a replay, never a take-over, however old the claim."""
    key = "d" * 64
    assert await records.reserve(key, "f") is Reservation.NEW
    await records.commit(key)
    clock.now += LEASE_SECONDS + 1
    assert await records.reserve(key, "f") is Reservation.REPLAY
    assert await records.reserve(key, "other") is Reservation.CONFLICT


async def test_a_replay_costs_two_table_calls_and_a_new_event_one(
    function_env: dict[str, str], clock: WallClock
) -> None:
    """On the response path: a new event's claim is one insert; a replay's is the refused
    insert and one read, of the commit in the next generation's table."""
    calls: list[str] = []
    store = TableRecords.from_settings(
        Settings(),  # type: ignore[call-arg]
        ManagedIdentity(),
        raw_request_hook=lambda request: calls.append(request.http_request.method),
    )
    assert store is not None
    store._clock = clock
    try:
        key = "e" * 64
        assert await store.reserve(key, "f") is Reservation.NEW
        assert len(calls) in (1, 3)  # the insert (and, on a first run, the table made for it)
        await store.commit(key)
        calls.clear()
        assert await store.reserve(key, "f") is Reservation.REPLAY
        assert calls == ["POST", "GET"]
        calls.clear()
        assert await store.reserve(key, "other") is Reservation.CONFLICT
        assert calls == ["POST", "GET"]
        calls.clear()
        clock.now += WINDOW - 1  # the next generation: the commit is in the current table now
        assert await store.reserve(key, "f") is Reservation.REPLAY
        assert len(calls) == 3  # the refused insert, no commit in the next table, the record
    finally:
        await store.close()


async def test_a_release_forgets_the_claim(records: TableRecords) -> None:
    key = "c" * 64
    assert await records.reserve(key, "f") is Reservation.NEW
    await records.release(key)
    assert await records.reserve(key, "f") is Reservation.NEW


async def test_old_generations_are_dropped_whole(records: TableRecords, clock: WallClock) -> None:
    for day in range(4):  # four days, a commit each: tables of five generations (the copies)
        if day:
            clock.now += WINDOW
        assert await records.reserve(f"{day:064x}", "f") is Reservation.NEW
        await records.commit(f"{day:064x}")
    dropped = await records.drop_expired_tables()
    assert len(dropped) == 2  # the first two days'; the previous, this and the next stay
    # what counts is still found: today's commit, and yesterday's copy until it expires
    assert await records.reserve(f"{3:064x}", "f") is Reservation.REPLAY
    assert await records.reserve(f"{2:064x}", "f") is Reservation.NEW


# -- a failing table -------------------------------------------------------------------------


@pytest.fixture
def own_table(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    azurite = Azurite(services=("queue", "table"), location=tmp_path / "azurite").start()
    monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", azurite.connection_string)
    monkeypatch.setenv("EVENTS_QUEUE_TIMEOUT_SECONDS", "1")
    yield azurite
    azurite.stop()


@pytest.mark.parametrize("failure", ["stopped", "frozen"])
async def test_without_the_table_publishing_goes_on_with_a_warning(
    post: Post, own_table: Azurite, queue_name: str, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    stop = own_table.stop_service if failure == "stopped" else own_table.pause
    stop("table")
    try:
        answers = [await post(VALID_EVENT) for _ in range(2)]
    finally:
        if failure == "frozen":
            own_table.resume("table")
    assert [answer.status_code for answer in answers] == [200, 200]
    assert "publishing without de-duplication" in caplog.text
    stored = QueueReader(own_table.connection_string, queue_name).drain()
    assert stored == [VALID_EVENT, VALID_EVENT]  # no de-duplication while the table was away


@pytest.mark.parametrize("failure", ["stopped", "frozen"])
async def test_without_the_table_a_required_de_duplication_is_503(
    post: Post,
    own_table: Azurite,
    monkeypatch: pytest.MonkeyPatch,
    queue_name: str,
    failure: str,
) -> None:
    monkeypatch.setenv("EVENTS_IDEMPOTENCY_REQUIRED", "true")
    stop = own_table.stop_service if failure == "stopped" else own_table.pause
    stop("table")
    try:
        answer = await post(VALID_EVENT)
    finally:
        if failure == "frozen":
            own_table.resume("table")
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert problem_of(answer)["type"].endswith(":records-unavailable")
    assert QueueReader(own_table.connection_string, queue_name).drain() == []


async def test_admin_publishers_are_deduplicated_like_any_other(
    post: Post, issuer: DevIssuer, queue: QueueReader
) -> None:
    admin = issuer.mint(scope=f"{PUBLISH_SCOPE} {ADMIN_SCOPE}")
    assert (await post(VALID_EVENT, token=admin)).status_code == 200
    assert (await post(VALID_EVENT, token=admin)).headers[REPLAYED] == "true"
    assert len(queue.drain()) == 1


async def test_the_timer_function_drops_the_expired_tables(
    post: Post, function_env: dict[str, str], stack: Any
) -> None:
    """function_app.py's timer, hourly: the tables older than the previous generation go."""
    from azure.data.tables import TableServiceClient
    from azure.functions.timer import TimerRequest

    timer = registered_functions()["drop_expired_records_tables"]
    binding = json.loads(timer.get_function_json())["bindings"][0]
    assert (binding["type"], binding["schedule"]) == ("timerTrigger", "0 17 * * * *")
    prefix = function_env["EVENTS_IDEMPOTENCY_TABLE"]
    assert (await post(VALID_EVENT)).status_code == 200  # this generation's table, and the next
    await current_runtime().pipeline.delivery.drain(10)  # the commit (and its copy) has landed
    service = TableServiceClient.from_connection_string(stack.azurite.connection_string)
    service.create_table(f"{prefix}1")  # a generation long gone
    service.create_table(f"{prefix}9{'9' * 12}")  # one far in the future: left alone
    await timer.get_user_function()(TimerRequest())
    names = {table.name for table in service.query_tables(f"TableName ge '{prefix}'")}
    assert f"{prefix}1" not in names
    assert f"{prefix}9{'9' * 12}" in names
    assert len([name for name in names if name.startswith(prefix)]) == 3
