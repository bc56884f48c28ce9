"""In-memory stores on the same core as production: ``MemoryTables`` is a ``RecordTables``
(shared/core/ports.py) over dictionaries, ``MemoryQueue`` an ``EventSink``. Both can put every
operation through a ``Gate``, where it waits until the test decides what happens to it: carried
out and answered, carried out with its answer lost, or not carried out at all. With a
ManualClock (tests/support/timing.py) that makes every interleaving of claims, sends, lost
answers, timeouts and process deaths something a test can choose, step by step."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.core.idempotency import partition_of
from shared.core.model import Record, RecordState, Stored
from shared.core.ports import (
    MAX_KEYS_PER_QUERY,
    MAX_TRANSACTION,
    QueueUnavailable,
    RecordChanged,
    RecordExists,
    RecordsUnavailable,
    TransactionRefused,
    Write,
)


@dataclass
class Operation:
    """One storage call waiting at a gate."""

    kind: str
    #: Carries the call out on the store; its answer (or the store's own error, such as
    #: RecordExists).
    apply: Callable[[], Any]
    future: asyncio.Future[Any]
    #: Who made the call (a process's name), and what about (an identity), for the test.
    caller: str
    subject: str
    lost: Callable[[], BaseException]
    failed: Callable[[], BaseException]
    #: The record a table write writes, for a test that follows records (a transaction's first;
    #: ``records`` has them all).
    record: Record | None = None
    applied: bool = False
    records: tuple[Record, ...] = ()


#: Who is calling: a test sets it for the tasks of one process (they inherit it).
CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="-")


@dataclass
class Gate:
    """Where gated calls wait (``pending``) until ``answer``, ``lose`` or ``fail`` says."""

    pending: list[Operation] = field(default_factory=list)
    #: When set, decides each call as soon as it arrives (on the next turn of the loop), in
    #: place of a test that steps the gate by hand.
    policy: Callable[[Gate, Operation], None] | None = None

    async def through(
        self,
        kind: str,
        apply: Callable[[], Any],
        *,
        subject: str,
        lost: Callable[[], BaseException],
        failed: Callable[[], BaseException],
        record: Record | None = None,
        records: tuple[Record, ...] = (),
    ) -> Any:
        future = asyncio.get_running_loop().create_future()
        operation = Operation(
            kind, apply, future, CALLER.get(), subject, lost, failed, record, records=records
        )
        self.pending.append(operation)
        if self.policy is not None:
            asyncio.get_running_loop().call_soon(self.policy, self, operation)
        return await future

    def _take(self, operation: Operation) -> None:
        self.pending.remove(operation)

    def answer(self, operation: Operation) -> None:
        """Carried out, and the answer goes back (if anyone still waits for it)."""
        self._take(operation)
        try:
            result = operation.apply()
        except Exception as error:
            operation.applied = not isinstance(
                error, RecordExists | RecordChanged | TransactionRefused
            )
            if not operation.future.done():
                operation.future.set_exception(error)
            return
        operation.applied = True
        if not operation.future.done():
            operation.future.set_result(result)

    def lose(self, operation: Operation) -> None:
        """Carried out, but the answer is lost (the connection broke after the write)."""
        self._take(operation)
        try:
            operation.apply()
            operation.applied = True
        except Exception:  # noqa: S110 - the store refused it; the caller hears nothing either way
            pass
        if not operation.future.done():
            operation.future.set_exception(operation.lost())

    def fail(self, operation: Operation) -> None:
        """Not carried out: the call never reached the store."""
        self._take(operation)
        if not operation.future.done():
            operation.future.set_exception(operation.failed())


class MemoryTables:
    """Tables of records with etags, as Azure Table Storage keeps them (conditional writes)."""

    def __init__(self, gate: Gate | None = None) -> None:
        self.data: dict[str, dict[str, Stored]] = {}
        self.gate = gate
        self.calls = 0
        #: Of those calls, transactions.
        self.transactions = 0
        #: The owners of every committed record ever written.
        self.committed_owners: set[str] = set()
        self._etags = itertools.count(1)

    # -- what the store does ------------------------------------------------------------------
    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def _written(self, record: Record) -> None:
        if record.state is RecordState.COMMITTED and record.owner is not None:
            self.committed_owners.add(record.owner)

    def do_insert(self, table: str, key: str, record: Record) -> str:
        rows = self.data.setdefault(table, {})
        if key in rows:
            raise RecordExists(key)
        rows[key] = Stored(record, self._etag())
        self._written(record)
        return rows[key].etag

    def do_read(self, table: str, key: str) -> Stored | None:
        return self.data.get(table, {}).get(key)

    def do_replace(self, table: str, key: str, record: Record, etag: str) -> str:
        rows = self.data.get(table, {})
        if key not in rows or rows[key].etag != etag:
            raise RecordChanged(key)
        rows[key] = Stored(record, self._etag())
        self._written(record)
        return rows[key].etag

    def do_delete(self, table: str, key: str, etag: str) -> None:
        rows = self.data.get(table, {})
        if key not in rows or rows[key].etag != etag:
            raise RecordChanged(key)
        del rows[key]

    def do_transact(self, table: str, writes: Sequence[Write]) -> list[str]:
        """Every write or none: checked first, then made."""
        assert 0 < len(writes) <= MAX_TRANSACTION
        assert len({partition_of(write.key) for write in writes}) == 1, "one partition"
        assert len({write.key for write in writes}) == len(writes), "one write per key"
        rows = self.data.get(table, {})
        for index, write in enumerate(writes):
            current = rows.get(write.key)
            if (write.etag is None) != (current is None) or (
                current is not None and current.etag != write.etag
            ):
                raise TransactionRefused(index)
        etags = []
        for write in writes:
            rows = self.data.setdefault(table, {})
            rows[write.key] = Stored(write.record, self._etag())
            self._written(write.record)
            etags.append(rows[write.key].etag)
        return etags

    def do_read_many(self, table: str, keys: Sequence[str]) -> dict[str, Stored]:
        rows = self.data.get(table, {})
        return {key: rows[key] for key in keys if key in rows}

    # -- the port -----------------------------------------------------------------------------
    async def _call(
        self,
        kind: str,
        key: str,
        apply: Callable[[], Any],
        record: Record | None = None,
        records: tuple[Record, ...] = (),
    ) -> Any:
        self.calls += 1
        if self.gate is None:
            return apply()
        return await self.gate.through(
            kind,
            apply,
            subject=key,
            record=record,
            records=records,
            lost=lambda: RecordsUnavailable("the answer was lost"),
            failed=lambda: RecordsUnavailable("the table could not be reached"),
        )

    async def insert(self, table: str, key: str, record: Record) -> str:
        result: str = await self._call(
            "insert", key, lambda: self.do_insert(table, key, record), record
        )
        return result

    async def read(self, table: str, key: str) -> Stored | None:
        result: Stored | None = await self._call("read", key, lambda: self.do_read(table, key))
        return result

    async def replace(self, table: str, key: str, record: Record, etag: str) -> str:
        result: str = await self._call(
            "replace", key, lambda: self.do_replace(table, key, record, etag), record
        )
        return result

    async def delete(self, table: str, key: str, etag: str) -> None:
        await self._call("delete", key, lambda: self.do_delete(table, key, etag))

    async def transact(self, table: str, writes: Sequence[Write]) -> list[str]:
        self.transactions += 1
        result: list[str] = await self._call(
            "transact",
            writes[0].key,
            lambda: self.do_transact(table, writes),
            writes[0].record,
            tuple(write.record for write in writes),
        )
        return result

    async def read_many(self, table: str, keys: Sequence[str]) -> dict[str, Stored]:
        partitions: dict[str, int] = {}
        for key in keys:
            partitions[partition_of(key)] = partitions.get(partition_of(key), 0) + 1
        queries = sum(-(-n // MAX_KEYS_PER_QUERY) for n in partitions.values())
        self.calls += max(0, queries - 1)  # as many calls as the Table service's queries
        result: dict[str, Stored] = await self._call(
            "read_many", keys[0] if keys else "", lambda: self.do_read_many(table, keys)
        )
        return result

    async def tables(self, prefix: str) -> list[str]:
        return [name for name in self.data if name.startswith(prefix)]

    async def drop(self, table: str) -> None:
        self.data.pop(table, None)

    async def close(self) -> None:
        pass


class MemoryQueue:
    """An ``EventSink`` that keeps its messages in a list."""

    max_message_bytes = 48 * 1024
    destinations = ("memory",)

    def __init__(self, gate: Gate | None = None, clock: Callable[[], float] = lambda: 0.0) -> None:
        self.messages: list[bytes] = []
        #: When each message was stored (by ``clock``).
        self.stored_at: list[float] = []
        self.gate = gate
        self._clock = clock

    def _store(self, message: bytes) -> None:
        self.messages.append(message)
        self.stored_at.append(self._clock())

    async def send(self, message: bytes, partition: int = 0) -> None:
        if self.gate is None:
            self._store(message)
            return
        await self.gate.through(
            "send",
            lambda: self._store(message),
            subject=message.decode(),
            lost=lambda: QueueUnavailable("the answer was lost", maybe_stored=True),
            failed=lambda: QueueUnavailable("the queue could not be reached"),
        )

    async def close(self) -> None:
        pass
