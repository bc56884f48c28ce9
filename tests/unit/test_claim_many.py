"""A batch's claims made together (``IdempotentRecords.claim_many``, shared/core/idempotency.py)
answer exactly what claiming each identity alone answers, and leave the records as claiming
alone leaves them, whatever was recorded before: checked by hypothesis over every state a
record of the current or the next generation can be in, against the in-memory store. And they
cost few calls: one transaction per partition for new identities; for a refused one, a read per
partition and 14 keys of each table that may answer, and the rest reserved together again."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.idempotency import (
    FINGERPRINT_MARK,
    PUBLISHER_PARTITIONS,
    Claim,
    Content,
    IdempotentRecords,
    Polls,
    UncertainClaim,
    partition_of,
)
from shared.core.model import Record, RecordState, Reservation, Stored
from tests.support.memory import Gate, MemoryTables, Operation
from tests.support.timing import ManualClock

WINDOW = 3600.0
BUDGET = 3.0
NOW = 100 * WINDOW + 600  # ten minutes into generation 100: far from either boundary
A = Content(FINGERPRINT_MARK + "a")
B = Content(FINGERPRINT_MARK + "b")

#: What may be recorded of an identity in one generation's table, before the claims.
STATES: dict[str, Record | None] = {
    "nothing": None,
    "committed, same content": Record(A.fingerprint, RecordState.COMMITTED, NOW - 60, None, "o"),
    "committed, other content": Record(B.fingerprint, RecordState.COMMITTED, NOW - 60, None, "o"),
    "committed, out of the window": Record(
        A.fingerprint, RecordState.COMMITTED, NOW - WINDOW - 1, None, "o"
    ),
    "reserved, in its lease": Record(A.fingerprint, RecordState.RESERVED, NOW - 1, NOW + 9, "o"),
    "reserved, other content": Record(B.fingerprint, RecordState.RESERVED, NOW - 1, NOW + 9, "o"),
    "reserved, lapsed": Record(A.fingerprint, RecordState.RESERVED, NOW - 30, NOW - 15, "o"),
}


def key(number: int) -> str:
    return f"abc123{number % PUBLISHER_PARTITIONS}-{number:064x}"


def records_on(tables: MemoryTables) -> IdempotentRecords:
    return IdempotentRecords(
        tables, prefix="ids", window_seconds=WINDOW, budget_seconds=BUDGET, clock=ManualClock(NOW)
    )


def seeded(prior: list[tuple[str, str]]) -> MemoryTables:
    tables = MemoryTables()
    for number, (current, following) in enumerate(prior):
        for table, state in (("ids100", current), ("ids101", following)):
            record = STATES[state]
            if record is not None:
                tables.data.setdefault(table, {})[key(number)] = Stored(record, f"e{number}")
    return tables


def outcome(answer: Claim | Reservation | UncertainClaim) -> str:
    if isinstance(answer, Claim):
        return "claimed"
    if isinstance(answer, UncertainClaim):
        return "uncertain"
    return answer.value


def shape(tables: MemoryTables, owners: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The records as the claims left them, new owners named by the identity they claimed."""
    return {
        table: {
            key: (
                stored.record.state,
                stored.record.fingerprint,
                owners.get(stored.record.owner or ""),
            )
            for key, stored in rows.items()
        }
        for table, rows in tables.data.items()
    }


#: A record that counts in the next generation's table (a commit, or a reservation in its lease)
#: is written by a claim of this generation, whose own record of the same content is in this
#: generation's table. (Only an instance whose clock is ahead can write the next table alone:
#: ``test_a_record_only_the_next_table_holds_answers_a_batch_claim``.)
SAME_CONTENT = {"committed, same content", "reserved, in its lease", "reserved, lapsed"}
OTHER_CONTENT = {"committed, other content", "reserved, other content"}
WITH_ITS_CLAIM = {
    "committed, same content": SAME_CONTENT,
    "reserved, in its lease": SAME_CONTENT,
    "committed, other content": OTHER_CONTENT,
    "reserved, other content": OTHER_CONTENT,
}


def reachable(pair: tuple[str, str]) -> bool:
    current, following = pair
    return following not in WITH_ITS_CLAIM or current in WITH_ITS_CLAIM[following]


prior_states = st.lists(
    st.tuples(st.sampled_from(sorted(STATES)), st.sampled_from(sorted(STATES))).filter(reachable),
    min_size=2,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(prior=prior_states, contents=st.data())
def test_claims_made_together_answer_as_claims_made_alone(
    prior: list[tuple[str, str]], contents: st.DataObject
) -> None:
    items = [(key(n), contents.draw(st.sampled_from([A, B]))) for n in range(len(prior))]
    together_tables, alone_tables = seeded(prior), seeded(prior)

    async def run() -> tuple[list[Any], list[Any]]:
        together = await records_on(together_tables).claim_many(items, Polls(0))
        records = records_on(alone_tables)
        alone = []
        for item_key, content in items:
            try:
                alone.append(await records.claim(item_key, content, Polls(0)))
            except UncertainClaim as error:  # pragma: no cover - the store always answers
                alone.append(error)
        return together, alone

    together, alone = asyncio.run(run())
    assert [outcome(a) for a in together] == [outcome(a) for a in alone], prior
    owners_together = {a.owner: a.key for a in together if isinstance(a, Claim)}
    owners_alone = {a.owner: a.key for a in alone if isinstance(a, Claim)}
    assert shape(together_tables, owners_together) == shape(alone_tables, owners_alone)


def test_a_batch_of_new_identities_costs_a_transaction_per_partition() -> None:
    tables = MemoryTables()
    items = [(key(n), A) for n in range(100)]

    async def run() -> list[Any]:
        return await records_on(tables).claim_many(items, Polls(0))

    answers = asyncio.run(run())
    assert all(isinstance(answer, Claim) and answer.certain for answer in answers)
    partitions = {partition_of(item_key) for item_key, _ in items}
    assert tables.transactions == tables.calls == len(partitions) == PUBLISHER_PARTITIONS


def test_a_replayed_batch_costs_a_refused_transaction_and_a_read_per_partition() -> None:
    tables = MemoryTables()
    items = [(key(n), A) for n in range(100)]

    async def run() -> list[Any]:
        records = records_on(tables)
        claims = await records.claim_many(items, Polls(0))
        await records.commit_many([c for c in claims if isinstance(c, Claim)])
        tables.calls = tables.transactions = 0
        return await records.claim_many(items, Polls(0))

    answers = asyncio.run(run())
    assert answers == [Reservation.REPLAY] * 100
    partitions = {partition_of(item_key) for item_key, _ in items}
    reads = sum(-(-sum(partition_of(k) == p for k, _ in items) // 14) for p in partitions)
    assert tables.transactions == len(partitions)  # each refused: its identities are recorded
    assert tables.calls == len(partitions) + reads  # the next table's commits answer them all


def test_a_refused_group_is_looked_at_and_the_unrecorded_reserved_together_again() -> None:
    prior = [("nothing", "nothing")] * 24
    prior[3] = ("committed, same content", "nothing")  # only the current table knows it
    tables = seeded(prior)
    items = [(key(n), A) for n in range(24)]

    async def run() -> list[Any]:
        return await records_on(tables).claim_many(items, Polls(0))

    answers = asyncio.run(run())
    assert answers[3] is Reservation.REPLAY
    assert all(isinstance(a, Claim) for n, a in enumerate(answers) if n != 3)
    refused = partition_of(key(3))
    assert sum(partition_of(k) == refused for k, _ in items) == 3
    # 8 first (one refused), then the refused group's other two together; its three read in
    # the next table (nothing), then in this one (the replay): no claim made alone
    assert tables.transactions == PUBLISHER_PARTITIONS + 1
    assert tables.calls == PUBLISHER_PARTITIONS + 1 + 2


def test_a_transaction_without_an_answer_leaves_uncertain_claims_that_settle_by_looking() -> None:
    def lose_transactions(gate: Gate, operation: Operation) -> None:
        (gate.lose if operation.kind == "transact" else gate.answer)(operation)

    tables = MemoryTables(Gate(policy=lose_transactions))
    items = [(key(n * PUBLISHER_PARTITIONS), A) for n in range(5)]  # one partition

    async def run() -> list[Any]:
        records = records_on(tables)
        answers = await records.claim_many(items, Polls(0))
        for answer in answers:  # each finds its own reservation, and takes it back
            await records.release(answer.claim)
        return answers

    answers = asyncio.run(run())
    assert [outcome(a) for a in answers] == ["uncertain"] * 5
    assert tables.data["ids100"] == {}


def test_a_record_only_the_next_table_holds_is_claimed_over_as_a_single_claim_does() -> None:
    """A commit in the next generation's table with nothing in this one, far from the
    generation's boundary (no clock within the margin writes that: a claim near the boundary
    reserves in both tables), does not stop a claim: the batch's transaction into this
    generation's table succeeds as each claim's insert alone does, and neither reads there."""
    prior = [("nothing", "committed, other content"), ("nothing", "committed, same content")]
    together_tables, alone_tables = seeded(prior), seeded(prior)
    items = [(key(0), A), (key(1), A)]

    async def run() -> tuple[list[Any], list[Any]]:
        together = await records_on(together_tables).claim_many(items, Polls(0))
        alone_records = records_on(alone_tables)
        alone = [await alone_records.claim(k, c, Polls(0)) for k, c in items]
        return together, alone

    together, alone = asyncio.run(run())
    assert [outcome(a) for a in together] == [outcome(a) for a in alone] == ["claimed", "claimed"]


def lingering(tables: MemoryTables, seconds: float) -> IdempotentRecords:
    return IdempotentRecords(
        tables,
        prefix="ids",
        window_seconds=WINDOW,
        budget_seconds=BUDGET,
        clock=ManualClock(NOW),
        commit_linger_seconds=seconds,
    )


def committed(tables: MemoryTables) -> set[str]:
    return {
        stored_key
        for stored_key, stored in tables.data.get("ids101", {}).items()
        if stored.record.state is RecordState.COMMITTED
    }


def test_commits_of_concurrent_publishes_linger_into_one_transaction_per_partition() -> None:
    tables = MemoryTables()
    keys = [key(n) for n in range(24)]  # 3 in each of the 8 partitions

    async def run() -> None:
        records = lingering(tables, 0.02)
        claims = [await records.claim(k, A, Polls(0)) for k in keys]
        tables.calls = tables.transactions = 0
        commits = []
        for claim in claims:  # one after another, a few turns of the loop apart
            commits.append(asyncio.ensure_future(records.commit(claim)))  # type: ignore[arg-type]
            for _ in range(3):
                await asyncio.sleep(0)
        await asyncio.gather(*commits)

    asyncio.run(run())
    assert committed(tables) == set(keys)
    assert tables.transactions == tables.calls == PUBLISHER_PARTITIONS


def test_a_full_group_is_written_at_once_and_the_rest_on_flush() -> None:
    """A group of 100 (a transaction's most) does not wait for its linger; what is left waiting
    is written when the records are flushed (as on shutdown), not an hour later."""
    tables = MemoryTables()
    keys = [key(n * PUBLISHER_PARTITIONS) for n in range(130)]  # one partition

    async def run() -> tuple[int, set[str]]:
        records = lingering(tables, 3600.0)
        claims = [await records.claim(k, A, Polls(0)) for k in keys]
        tables.transactions = 0
        commits = [asyncio.ensure_future(records.commit(c)) for c in claims]  # type: ignore[arg-type]
        await asyncio.wait_for(asyncio.gather(*commits[:100]), timeout=30)  # without a flush
        written_before_flush = committed(tables)
        records.flush()
        await asyncio.wait_for(asyncio.gather(*commits), timeout=30)
        return tables.transactions, written_before_flush

    transactions, before = asyncio.run(run())
    assert before == set(keys[:100])
    assert committed(tables) == set(keys)
    assert transactions == 2


def test_a_group_write_nobody_waits_for_is_given_up_at_the_budget() -> None:
    """Commits written together give up as a commit alone does: when the table does not
    answer within the budget, each commit learns it (and logs it), and the write itself is
    abandoned then too, not left to land at some later moment after a newer publish."""
    gate = Gate()
    tables = MemoryTables(gate)
    clock = ManualClock(NOW)
    records = IdempotentRecords(
        tables, prefix="ids", window_seconds=WINDOW, budget_seconds=BUDGET, clock=clock
    )
    keys = [key(0), key(PUBLISHER_PARTITIONS)]  # one partition: one transaction

    async def run() -> bool:
        gate.policy = lambda g, operation: g.answer(operation)  # the claims are answered
        claims = [await records.claim(k, A, Polls(0)) for k in keys]
        gate.policy = None  # the commits' transaction is not
        commits = asyncio.gather(*(records.commit(c) for c in claims))  # type: ignore[arg-type]
        for _ in range(5):
            await asyncio.sleep(0)
        waiting = list(gate.pending)
        assert [operation.kind for operation in waiting] == ["transact"]
        clock.advance(BUDGET + 0.01)
        await asyncio.wait_for(commits, timeout=30)  # both commits gave up, as logged
        for _ in range(5):
            await asyncio.sleep(0)
        return waiting[0].future.cancelled()  # nobody waits for its answer any more

    assert asyncio.run(run())
    assert committed(tables) == set()


def test_a_batchs_commits_are_one_transaction_per_partition() -> None:
    tables = MemoryTables()
    keys = [key(n) for n in range(40)]  # 5 in each of the 8 partitions

    async def run() -> None:
        records = records_on(tables)
        claims = await records.claim_many([(k, A) for k in keys], Polls(0))
        tables.calls = tables.transactions = 0
        await records.commit_many([c for c in claims if isinstance(c, Claim)])

    asyncio.run(run())
    assert committed(tables) == set(keys)
    assert tables.transactions == tables.calls == PUBLISHER_PARTITIONS


def test_a_refused_commit_transaction_commits_each_alone_and_leaves_anothers_record() -> None:
    """One identity of the partition is recorded in the next generation's table by another
    publish that counts: the partition's transaction is refused, the others are committed
    alone, and the other publish's record is left as it was."""
    tables = MemoryTables()
    keys = [key(n * PUBLISHER_PARTITIONS) for n in range(4)]  # one partition
    theirs = Record(B.fingerprint, RecordState.RESERVED, NOW, NOW + 15, "someone else")

    async def run() -> None:
        records = records_on(tables)
        claims = await records.claim_many([(k, A) for k in keys], Polls(0))
        tables.data.setdefault("ids101", {})[keys[2]] = Stored(theirs, "theirs")
        tables.calls = tables.transactions = 0
        await records.commit_many([c for c in claims if isinstance(c, Claim)])

    asyncio.run(run())
    assert committed(tables) == {keys[0], keys[1], keys[3]}
    assert tables.data["ids101"][keys[2]] == Stored(theirs, "theirs")
    assert tables.transactions == 1  # then alone: an insert each, and a read for the refused
