"""The Azure Table adapter's grouped operations (shared/adapters/tables.py) against Azurite's
table service: an entity group transaction writes all of its writes or none, and a multi-key
read finds exactly the keys that have records, over several partitions and queries."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

from devtools.azurite import Azurite
from shared.adapters.tables import TableStorage
from shared.core.idempotency import partition_of
from shared.core.model import Record, RecordState
from shared.core.ports import MAX_KEYS_PER_QUERY, RecordExists, TransactionRefused, Write


def record(owner: str, state: RecordState = RecordState.RESERVED) -> Record:
    return Record("ce1:" + "ab" * 32, state, 1_700_000_000.5, 1_700_000_015.5, owner)


def keys(partition: str, count: int) -> list[str]:
    return sorted(f"{partition}-{secrets.token_hex(32)}" for _ in range(count))


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[TableStorage]:
    tables = TableStorage.connect(connection_string=azurite.connection_string, account_url=None)
    yield tables
    await tables.close()


@pytest.fixture
def table() -> str:
    return f"grouped{secrets.token_hex(4)}"


async def test_a_transaction_writes_every_insert_and_makes_its_table(
    store: TableStorage, table: str
) -> None:
    chosen = keys("abc1230", 20)
    etags = await store.transact(table, [Write(key, record(key[-6:])) for key in chosen])
    assert len(etags) == 20
    found = await store.read_many(table, chosen)
    assert sorted(found) == chosen
    assert all(found[key].record == record(key[-6:]) for key in chosen)
    assert [found[key].etag for key in chosen] == etags


async def test_a_refused_write_leaves_the_whole_transaction_unwritten(
    store: TableStorage, table: str
) -> None:
    chosen = keys("abc1231", 5)
    await store.insert(table, chosen[3], record("first"))
    with pytest.raises(TransactionRefused) as refused:
        await store.transact(table, [Write(key, record("second")) for key in chosen])
    assert refused.value.index in (None, 3)
    found = await store.read_many(table, chosen)
    assert list(found) == [chosen[3]]
    assert found[chosen[3]].record.owner == "first"


async def test_a_transaction_replaces_by_etag_and_is_refused_for_a_stale_one(
    store: TableStorage, table: str
) -> None:
    chosen = keys("abc1232", 3)
    etags = await store.transact(table, [Write(key, record("a")) for key in chosen])
    committed = record("a", RecordState.COMMITTED)
    await store.transact(
        table, [Write(k, committed, e) for k, e in zip(chosen, etags, strict=True)]
    )
    found = await store.read_many(table, chosen)
    assert {stored.record.state for stored in found.values()} == {RecordState.COMMITTED}
    with pytest.raises(TransactionRefused):  # the etags are the old ones now
        await store.transact(table, [Write(chosen[0], record("b"), etags[0])])
    with pytest.raises(RecordExists):
        await store.insert(table, chosen[1], record("b"))


async def test_a_read_of_many_keys_spans_partitions_and_queries(
    store: TableStorage, table: str
) -> None:
    first, second = keys("abc1233", 2 * MAX_KEYS_PER_QUERY + 3), keys("abc1234", 4)
    for group in (first, second):
        await store.transact(table, [Write(key, record("x")) for key in group])
    absent = keys("abc1233", 5) + keys("abc1235", 2)
    wanted = first[::2] + second + absent
    found = await store.read_many(table, wanted)
    assert sorted(found) == sorted(first[::2] + second)
    assert {partition_of(key) for key in found} == {"abc1233", "abc1234"}


async def test_a_read_of_a_missing_table_finds_nothing(store: TableStorage) -> None:
    assert await store.read_many(f"missing{secrets.token_hex(4)}", keys("abc1236", 3)) == {}
