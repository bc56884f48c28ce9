"""Idempotent publish (docs/idempotency.md) through the real function handler, with the records
in Azurite's table service: replays, conflicts, two publishers, concurrency, batches, the window,
abandoned claims, the generation boundary, claims and commits without an answer (through a fault
proxy), a failing table, and the tables' cleanup."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devtools.azurite import Azurite
from devtools.issuer import ADMIN_SCOPE, PUBLISH_SCOPE, DevIssuer
from devtools.registry import DevRegistry, publish_rule
from shared.adapters.identity import ManagedIdentity
from shared.adapters.tables import TableStorage
from shared.app.runtime import current_runtime, record_tables
from shared.app.settings import Settings
from shared.core.idempotency import (
    FINGERPRINT_MARK,
    Claim,
    Content,
    IdempotentRecords,
    Polls,
    UncertainClaim,
)
from shared.core.model import Reservation
from tests.integration.conftest import Post, problem_of, registered_functions
from tests.support import VALID_EVENT, QueueReader
from tests.support.faults import Fault, FaultProxy, through_proxy
from tests.support.timing import ManualClock

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


WINDOW = 24 * 3600.0
BUDGET = 2.0  # function_env's EVENTS_QUEUE_TIMEOUT_SECONDS
LEASE = 5 * BUDGET


@pytest.fixture
def clock() -> ManualClock:  # overrides the monotonic test clock: records use wall time
    return ManualClock()


def records_over(tables: TableStorage, clock: ManualClock) -> IdempotentRecords:
    return IdempotentRecords(
        tables,
        prefix=Settings().idempotency_table,  # type: ignore[call-arg]
        window_seconds=WINDOW,
        budget_seconds=BUDGET,
        clock=clock,
    )


@pytest.fixture
async def records(function_env: dict[str, str], clock: ManualClock) -> Any:
    store = records_over(
        record_tables(Settings(), ManagedIdentity()),  # type: ignore[call-arg]
        clock,
    )
    yield store
    await store.close()


async def claim(records: IdempotentRecords, key: str, fingerprint: str) -> Any:
    return await records.claim(key, Content(FINGERPRINT_MARK + fingerprint), Polls(0))


async def held(records: IdempotentRecords, key: str, fingerprint: str) -> Claim:
    outcome = await claim(records, key, fingerprint)
    assert isinstance(outcome, Claim), outcome
    return outcome


async def test_the_window_and_abandoned_claims(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    key, other = "a" * 64, "b" * 64
    first = await held(records, key, "f1")
    assert await claim(records, key, "f1") is Reservation.IN_FLIGHT
    assert await claim(records, key, "f2") is Reservation.CONFLICT
    await records.commit(first)
    assert await claim(records, key, "f1") is Reservation.REPLAY
    clock.advance(WINDOW - 1)
    assert await claim(records, key, "f1") is Reservation.REPLAY  # the next generation's copy
    clock.advance(1)
    await held(records, key, "f1")  # a window later: published anew
    # a claim whose process died is taken over once its lease is over
    await held(records, other, "f")
    clock.advance(LEASE - 0.5)
    assert await claim(records, other, "f") is Reservation.IN_FLIGHT
    clock.advance(0.5)
    await held(records, other, "f")


async def test_a_commit_outlives_the_lease_of_its_claim(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    """The claim's own record stays reserved; its commit, in the next generation's table, is
    what a later repeat finds: a replay, never a take-over, however old the claim."""
    key = "d" * 64
    await records.commit(await held(records, key, "f"))
    clock.advance(LEASE + 1)
    assert await claim(records, key, "f") is Reservation.REPLAY
    assert await claim(records, key, "other") is Reservation.CONFLICT


async def test_a_release_forgets_the_claim(records: IdempotentRecords) -> None:
    key = "c" * 64
    await records.release(await held(records, key, "f"))
    await held(records, key, "f")


async def test_a_publish_in_flight_across_the_boundary_is_seen_on_the_other_side(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    """A is claimed 0.2 s before midnight (the default window's boundary) and still being sent;
    B, the same identity with other content, is claimed 0.1 s after it: a conflict, not a claim
    of its own. A's commit, across the boundary, is found on both sides."""
    key = "9" * 64
    clock.now = (clock.now // WINDOW + 1) * WINDOW - 0.2
    first = await held(records, key, "a")
    clock.advance(0.3)
    assert await claim(records, key, "b") is Reservation.CONFLICT
    assert await claim(records, key, "a") is Reservation.IN_FLIGHT
    await records.commit(first)
    assert await claim(records, key, "a") is Reservation.REPLAY
    clock.advance(WINDOW - 1)
    assert await claim(records, key, "a") is Reservation.REPLAY


async def test_old_generations_are_dropped_whole(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    for day in range(4):  # four days, a commit each: tables of five generations (the copies)
        if day:
            clock.advance(WINDOW)
        await records.commit(await held(records, f"{day:064x}", "f"))
    dropped = await records.drop_expired_tables()
    assert len(dropped) == 2  # the first two days'; the previous, this and the next stay
    # what counts is still found: today's commit, and yesterday's copy until it expires
    assert await claim(records, f"{3:064x}", "f") is Reservation.REPLAY
    await held(records, f"{2:064x}", "f")


# -- the record store through a fault proxy -----------------------------------------------------


@pytest.fixture
async def proxied(
    function_env: dict[str, str], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Records whose table calls go through a fault proxy, and the proxy."""
    connection = function_env["EVENTS_QUEUE_CONNECTION"]
    upstream = next(p.split("=", 1)[1] for p in connection.split(";") if p.startswith("Table"))
    with FaultProxy(upstream.rsplit("/", 1)[0]) as proxy:
        monkeypatch.setenv("EVENTS_QUEUE_CONNECTION", through_proxy(connection, "table", proxy))
        settings = Settings()  # type: ignore[call-arg]
        store = records_over(record_tables(settings, ManagedIdentity()), clock)
        yield store, proxy
        proxy.release()
        await store.close()


INSERT = {"method": "POST", "path_contains": "/t"}


async def test_a_replay_costs_two_table_calls_and_a_new_event_one(proxied: Any) -> None:
    """On the response path: a new event's claim is one insert; a replay's is the refused
    insert and one read, of the commit in the next generation's table."""
    records, proxy = proxied
    key = "e" * 64
    with proxy.counting() as calls:
        first = await held(records, key, "f")
    assert [call.method for call in calls if "Tables" not in call.path] in (
        ["POST"],  # the insert
        ["POST", "POST"],  # and, on a first run, the table made for it in between
    )
    await records.commit(first)
    for fingerprint, answer in (("f", Reservation.REPLAY), ("other", Reservation.CONFLICT)):
        with proxy.counting() as calls:
            assert await claim(records, key, fingerprint) is answer
        assert [call.method for call in calls] == ["POST", "GET"]


@pytest.mark.parametrize("fault", [Fault.DROP_ANSWER, Fault.RESET, Fault.HOLD_ANSWER])
async def test_a_claim_without_an_answer_is_settled_by_looking(proxied: Any, fault: Fault) -> None:
    """The insert's answer is lost (it was carried out), the connection is reset before it
    (nothing happened), or the answer comes after the budget: the claim is uncertain, and
    settling it finds what it wrote, if anything. Committed: a repeat is a replay; released:
    a repeat is a claim of its own, at once."""
    records, proxy = proxied
    await held(records, "8" * 64, "warm")  # the generation's table exists
    for number, settle in enumerate(("commit", "release")):
        key = f"{number}" + "7" * 63
        proxy.add(fault, **INSERT)
        with pytest.raises(UncertainClaim) as raised:
            await claim(records, key, "f")
        proxy.release()  # a held answer arrives late: the claim gave up on it
        uncertain = raised.value.claim
        assert not uncertain.certain
        await getattr(records, settle)(uncertain)
        if settle == "commit":
            assert await claim(records, key, "f") is Reservation.REPLAY
            assert await claim(records, key, "g") is Reservation.CONFLICT
        else:
            await held(records, key, "f")


async def test_a_commit_whose_answer_was_lost_still_counts(proxied: Any) -> None:
    records, proxy = proxied
    await records.commit(await held(records, "8" * 64, "warm"))  # the next table exists
    key = "6" * 64
    first = await held(records, key, "f")
    proxy.add(Fault.DROP_ANSWER, **INSERT)
    await records.commit(first)  # the commit was written; its answer was not seen
    assert await claim(records, key, "f") is Reservation.REPLAY


async def test_a_release_whose_connection_was_reset_lapses_with_its_lease(
    proxied: Any, clock: ManualClock
) -> None:
    records, proxy = proxied
    key = "5" * 64
    first = await held(records, key, "f")
    proxy.add(Fault.RESET, method="DELETE", times=None)
    await records.release(first)
    proxy.clear()
    assert await claim(records, key, "f") is Reservation.IN_FLIGHT
    clock.advance(LEASE)
    await held(records, key, "f")


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


async def test_with_commit_before_answer_the_record_is_written_before_the_200(
    post: Post, function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, stack: Any
) -> None:
    """EVENTS_COMMIT_BEFORE_ANSWER=true: nothing is left running after the answer, so a worker
    that is killed right after it (the Functions host does not wait for background work) loses
    no record (docs/deploy.md, "When an instance stops")."""
    from azure.data.tables import TableServiceClient

    monkeypatch.setenv("EVENTS_COMMIT_BEFORE_ANSWER", "true")
    assert (await post(VALID_EVENT)).status_code == 200
    assert current_runtime().pipeline.delivery.pending == 0
    service = TableServiceClient.from_connection_string(stack.azurite.connection_string)
    prefix = function_env["EVENTS_IDEMPOTENCY_TABLE"]
    states = [
        entity["state"]
        for table in service.query_tables(f"TableName ge '{prefix}'")
        if table.name.startswith(prefix)
        for entity in service.get_table_client(table.name).list_entities()
    ]
    assert sorted(states) == ["committed", "reserved"]
