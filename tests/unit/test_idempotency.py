"""The decisions of idempotent publish (shared/core/idempotency.py) against the in-memory store
and a clock moved by hand: the states of a record, the lease, the window and its generations, what a
claim that finds a record decides, claims whose answer was lost, and records written before the
canonical content. Milliseconds each, no I/O."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from shared.cloudevents import CloudEvent
from shared.core.idempotency import (
    FINGERPRINT_MARK,
    LEGACY_LEASE_SECONDS,
    Claim,
    Content,
    IdempotentRecords,
    Polls,
    UncertainClaim,
    content_of,
    record_key,
)
from shared.core.model import Publisher, Record, RecordState, Reservation
from tests.support.memory import Gate, MemoryTables
from tests.support.timing import ManualClock

WINDOW = 3600.0
BUDGET = 3.0
LEASE = 5 * BUDGET
KEY = "ab" * 32
A = Content(FINGERPRINT_MARK + "a")
B = Content(FINGERPRINT_MARK + "b")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=100 * WINDOW + 60)  # a minute into a generation


@pytest.fixture
def tables() -> MemoryTables:
    return MemoryTables()


def records_on(tables: MemoryTables, clock: ManualClock) -> IdempotentRecords:
    return IdempotentRecords(
        tables, prefix="ids", window_seconds=WINDOW, budget_seconds=BUDGET, clock=clock
    )


@pytest.fixture
def records(tables: MemoryTables, clock: ManualClock) -> IdempotentRecords:
    return records_on(tables, clock)


async def claim(records: IdempotentRecords, content: Content, key: str = KEY) -> Any:
    return await records.claim(key, content, Polls(0))


async def held(records: IdempotentRecords, content: Content, key: str = KEY) -> Claim:
    outcome = await claim(records, content, key)
    assert isinstance(outcome, Claim), outcome
    return outcome


# -- the states of a record ------------------------------------------------------------------------


async def test_new_in_flight_conflict_replay(records: IdempotentRecords) -> None:
    first = await held(records, A)
    assert await claim(records, A) is Reservation.IN_FLIGHT
    assert await claim(records, B) is Reservation.CONFLICT
    await records.commit(first)
    assert await claim(records, A) is Reservation.REPLAY
    assert await claim(records, B) is Reservation.CONFLICT


async def test_a_release_frees_the_identity(records: IdempotentRecords) -> None:
    await records.release(await held(records, A))
    await held(records, B)


async def test_a_replay_costs_two_calls_and_a_new_event_one(
    records: IdempotentRecords, tables: MemoryTables
) -> None:
    first = await held(records, A)
    assert tables.calls == 1
    await records.commit(first)
    assert tables.calls == 2  # the commit: one write, off the response path
    tables.calls = 0
    assert await claim(records, A) is Reservation.REPLAY
    assert tables.calls == 2  # the refused insert, and the commit read in the next table


async def test_the_window(records: IdempotentRecords, clock: ManualClock) -> None:
    await records.commit(await held(records, A))
    clock.advance(WINDOW - 1)
    assert await claim(records, A) is Reservation.REPLAY  # the next generation's copy
    clock.advance(1)
    await held(records, B)  # a window later: the identity is free


async def test_a_lease_lapses_and_the_claim_is_taken_over(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    await held(records, A)  # its process died: never settled
    clock.advance(LEASE - 0.01)
    assert await claim(records, A) is Reservation.IN_FLIGHT
    clock.advance(0.01)
    await held(records, A)


async def test_the_lease_is_five_queue_budgets_and_recorded(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    first = await held(records, A)
    stored = tables.do_read(records.generations.table(first.generation), KEY)
    assert stored is not None
    assert stored.record.until == clock.now + 15.0 == first.until
    assert records.budgets.lease == 15.0


async def test_a_commit_outlives_the_lease_of_its_claim(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    await records.commit(await held(records, A))
    clock.advance(LEASE + 1)
    assert await claim(records, A) is Reservation.REPLAY
    assert await claim(records, B) is Reservation.CONFLICT


# -- the generation boundary -----------------------------------------------------------------------


def to_boundary(clock: ManualClock, before: float) -> None:
    """Move the clock to ``before`` seconds before the next generation starts."""
    clock.now = (clock.now // WINDOW + 1) * WINDOW - before


@pytest.mark.parametrize("content", [A, B])
async def test_a_publish_in_flight_across_the_boundary_is_seen_on_the_other_side(
    records: IdempotentRecords, clock: ManualClock, content: Content
) -> None:
    """A is claimed 0.2 s before the boundary and still being sent; B, the same identity, is
    claimed 0.1 s after it: in flight (same content) or a conflict, never a claim of its own."""
    to_boundary(clock, 0.2)
    first = await held(records, A)
    assert first.near_end
    clock.advance(0.3)
    expected = Reservation.IN_FLIGHT if content is A else Reservation.CONFLICT
    assert await claim(records, content) is expected
    await records.commit(first)  # across the boundary
    assert await claim(records, A) is Reservation.REPLAY
    assert await claim(records, B) is Reservation.CONFLICT
    clock.advance(WINDOW - 1)  # the generation after: the commit is still found
    assert await claim(records, A) is Reservation.REPLAY


async def test_a_claim_released_across_the_boundary_frees_both_tables(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    to_boundary(clock, 0.2)
    first = await held(records, A)
    clock.advance(0.3)
    await records.release(first)
    await held(records, B)


async def test_a_claim_far_from_the_boundary_writes_one_table(
    records: IdempotentRecords, tables: MemoryTables
) -> None:
    first = await held(records, A)
    assert not first.near_end
    assert list(first.held) == [first.generation]
    assert tables.calls == 1


# -- claims of one identity in one process ---------------------------------------------------------


async def test_two_claims_of_one_identity_never_settle_each_other(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    first = await held(records, A)
    clock.advance(LEASE)  # its lease lapsed: the identity is claimed anew
    second = await held(records, B)
    await records.release(first)  # the first's release must not free the second's claim
    assert await claim(records, B) is Reservation.IN_FLIGHT
    await records.commit(second)
    assert await claim(records, B) is Reservation.REPLAY
    assert await claim(records, A) is Reservation.CONFLICT


# -- a claim whose answer was lost -----------------------------------------------------------------


async def lost_claim(records: IdempotentRecords, gate: Gate, *, applied: bool) -> Claim:
    """A claim whose insert is carried out (or not) and its answer lost."""
    import asyncio

    task = asyncio.ensure_future(records.claim(KEY, A, Polls(0)))
    await asyncio.sleep(0)
    (insert,) = gate.pending
    gate.lose(insert) if applied else gate.fail(insert)
    with pytest.raises(UncertainClaim) as raised:
        await task
    return raised.value.claim


@pytest.mark.parametrize("applied", [True, False])
async def test_an_uncertain_claim_that_is_published_is_committed(
    clock: ManualClock, applied: bool
) -> None:
    gate = Gate()
    tables = MemoryTables(gate)
    records = records_on(tables, clock)
    uncertain = await lost_claim(records, gate, applied=applied)
    assert not uncertain.certain
    tables.gate = None  # the table answers again
    await records.commit(uncertain)
    assert await claim(records, A) is Reservation.REPLAY
    assert await claim(records, B) is Reservation.CONFLICT


@pytest.mark.parametrize("applied", [True, False])
async def test_an_uncertain_claim_that_is_not_published_is_taken_back(
    clock: ManualClock, applied: bool
) -> None:
    gate = Gate()
    tables = MemoryTables(gate)
    records = records_on(tables, clock)
    uncertain = await lost_claim(records, gate, applied=applied)
    tables.gate = None
    await records.release(uncertain)
    await held(records, A)  # at once, not after a lease


async def test_an_uncertain_claim_never_removes_another_claims_record(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    other = await held(records, B)
    uncertain = Claim(KEY, other.generation, "someone-else", A.fingerprint, clock.now, 0, False)
    await records.release(uncertain)
    await records.commit(uncertain)  # another's record that counts is left as it is
    assert await claim(records, A) is Reservation.CONFLICT
    await records.commit(other)
    assert await claim(records, B) is Reservation.REPLAY


async def test_an_earlier_try_of_the_same_claim_is_recognised(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    """A retried insert finds the record its own first try wrote: it holds it."""
    first = await held(records, A)
    table = records.generations.table(first.generation)
    stored = tables.do_read(table, KEY)
    assert stored is not None
    tables.do_delete(table, KEY, stored.etag)
    mine = Record(A.fingerprint, RecordState.RESERVED, clock.now, clock.now + LEASE, "owner")
    tables.do_insert(table, KEY, mine)
    import shared.core.idempotency as idempotency

    original = idempotency.secrets.token_hex
    idempotency.secrets.token_hex = lambda _: "owner"  # type: ignore[assignment]
    try:
        again = await held(records, A)
    finally:
        idempotency.secrets.token_hex = original
    assert again.owner == "owner"


# -- polling a publish in flight -------------------------------------------------------------------


async def test_a_repeat_waits_for_the_publish_in_flight_and_is_its_replay(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    import asyncio

    first = await held(records, A)
    waiting = asyncio.ensure_future(records.claim(KEY, A, Polls()))
    await asyncio.sleep(0)
    assert not waiting.done()
    await records.commit(first)
    clock.advance(0.01)  # the first pause
    assert await waiting is Reservation.REPLAY


async def test_polling_is_bounded_by_the_requests_budget(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    import asyncio

    await held(records, A)
    tables.calls = 0
    polls = Polls(3)
    waiting = asyncio.ensure_future(records.claim(KEY, A, polls))
    for _ in range(10):
        await asyncio.sleep(0)
        clock.advance(0.2)
    assert await waiting is Reservation.IN_FLIGHT
    assert polls.left == 0
    assert tables.calls <= 4 * 3  # four attempts (the first and three polls) of three calls


async def test_polling_stops_within_most_of_the_budget(
    records: IdempotentRecords, clock: ManualClock
) -> None:
    import asyncio

    await held(records, A)
    started = clock.now
    waiting = asyncio.ensure_future(records.claim(KEY, A, Polls(1000)))
    while not waiting.done():
        await asyncio.sleep(0)
        clock.advance(0.05)
    assert waiting.result() is Reservation.IN_FLIGHT
    assert clock.now - started <= BUDGET * 0.8 + 0.25


# -- records written before the canonical content --------------------------------------------------


def event(**members: Any) -> CloudEvent:
    base = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": {"a": 1}}
    return CloudEvent({**base, **members})


async def test_a_record_written_before_the_mark_is_compared_in_its_own_form(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    old_message = b'{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}'
    content = content_of(event(), lambda: old_message)
    legacy = hashlib.sha256(old_message).hexdigest()
    table = records.generations.table(records.generations.of(clock.now) + 1)
    tables.do_insert(table, KEY, Record(legacy, RecordState.COMMITTED, clock.now - 60))
    tables.do_insert(records.generations.table(records.generations.of(clock.now)), KEY, Record(
        legacy, RecordState.RESERVED, clock.now - 61
    ))  # fmt: skip
    assert await claim(records, content) is Reservation.REPLAY
    other = content_of(event(data={"a": 2}), lambda: b"{}")
    assert await claim(records, other) is Reservation.CONFLICT


async def test_a_reservation_written_before_leases_has_the_old_lease(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    table = records.generations.table(records.generations.of(clock.now))
    tables.do_insert(table, KEY, Record("f" * 64, RecordState.RESERVED, clock.now))
    legacy_a = Content(A.fingerprint, lambda: "f" * 64)
    assert await claim(records, legacy_a) is Reservation.IN_FLIGHT
    clock.advance(LEGACY_LEASE_SECONDS)
    await held(records, legacy_a)


# -- identity --------------------------------------------------------------------------------------


def publisher(**claims: Any) -> Publisher:
    return Publisher(
        issuer="https://issuer/", subject=claims.pop("subject", None), scopes=frozenset(), **claims
    )


def test_the_org_code_is_compared_in_lower_case() -> None:
    assert publisher(org="TTD").identity == publisher(org="ttd").identity
    assert record_key(publisher(org="TTD"), event()) == record_key(publisher(org="ttd"), event())


def test_two_publishers_never_share_a_key() -> None:
    keys = {
        record_key(publisher(org="ttd"), event()),
        record_key(publisher(org="skd"), event()),
        record_key(publisher(org_number="991825827"), event()),
        record_key(publisher(subject="a"), event()),
        record_key(publisher(subject="b"), event()),
    }
    assert len(keys) == 5


# -- maintenance -----------------------------------------------------------------------------------


async def test_old_generations_are_dropped_whole(
    records: IdempotentRecords, tables: MemoryTables, clock: ManualClock
) -> None:
    for day in range(4):
        if day:
            clock.advance(WINDOW)
        await records.commit(await held(records, A, key=f"{day:064x}"))
    dropped = await records.drop_expired_tables()
    assert len(dropped) == 2
    assert await claim(records, A, key=f"{3:064x}") is Reservation.REPLAY
    await held(records, A, key=f"{2:064x}")  # yesterday's commit expired with its window
