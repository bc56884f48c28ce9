"""The ports: what the core needs from the outside, as Protocols, and the errors they may raise.

Adapters (tokens.py, oidc.py, registry.py, queue.py, ...) implement these and import from here;
the core (authorization.py, publish.py) depends on nothing else of theirs.

Every "cannot reach a dependency" error is an ``Unavailable``: the pipeline maps all of them to a
503 with ``Retry-After`` by one rule, naming the dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

from shared.core.model import Lookup, PolicyRule, Publisher, Record, Stored, StoredData


class Unavailable(Exception):
    """A dependency gave no answer we can trust in time; nothing was published."""

    #: Which dependency: "issuer", "registry", "queue", ...
    dependency: ClassVar[str] = "dependency"


class KeysUnavailable(Unavailable):
    """The issuer's keys have never been fetched and cannot be fetched now."""

    dependency = "issuer"


class RegistryUnavailable(Unavailable):
    """The registry gave no answer we can trust (unreachable, slow, 5xx, not its contract)."""

    dependency = "registry"


class QueueUnavailable(Unavailable):
    """The message was not confirmed stored.

    - ``maybe_stored``: the queue may have stored it all the same: the connection broke after
      the message went out, or (``pending``) the answer stopped waiting for the queue, whose
      send goes on in the background;
    - ``recorded``: the send goes on under a claim of the event's identity, whose record follows
      its outcome (a retry after it is answered as a replay if the message was stored).
    """

    dependency = "queue"

    def __init__(
        self,
        reason: str,
        *,
        maybe_stored: bool = False,
        pending: bool = False,
        recorded: bool = False,
    ) -> None:
        super().__init__(reason)
        self.maybe_stored = maybe_stored or pending
        self.pending = pending
        self.recorded = recorded


class MissingToken(Exception):
    """No bearer token was sent."""


class InvalidToken(Exception):
    """A token was sent but cannot be trusted. ``str()`` says why, in a publisher's terms."""


class TooManyLookups(Exception):
    """This publisher has made the endpoint ask the registry about too many new resources."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"lookup budget spent; next lookup in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Publisher:
        """The verified publisher of an ``Authorization`` header value.

        Raises MissingToken, InvalidToken, or KeysUnavailable (the issuer cannot be reached).
        """
        ...


class RuleSource(Protocol):
    async def rules_for(self, identifier: str) -> tuple[PolicyRule, ...] | None:
        """The resource's rules; None when the registry does not know the resource (404).

        Raises RegistryUnavailable for anything that is not a clean answer.
        """
        ...


class PolicyLookup(Protocol):
    def cached(self, identifier: str) -> Lookup | None:
        """A resource's rules when memory answers them (a fresh entry, or a fresh "not
        registered"), without I/O; None when only ``lookup`` can. Counted as a hit."""
        ...

    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        """A resource's rules and how they were found.

        Raises RegistryUnavailable when unknowable, TooManyLookups when ``requester`` may not
        cause another registry call yet.
        """
        ...


class EventSink(Protocol):
    #: The largest message (UTF-8 bytes of the event's JSON) one ``send`` can store.
    max_message_bytes: int
    #: Where messages go: the queues' names, one per partition (one without partitions).
    destinations: Sequence[str]

    async def send(self, message: bytes, partition: int = 0) -> None:
        """Store one message durably on the queue of ``partition`` (an index into
        ``destinations``), or raise QueueUnavailable."""
        ...

    async def close(self) -> None: ...


class RegistryCredentials(Protocol):
    async def headers(self) -> Mapping[str, str]:
        """Headers to add to a registry call; RegistryUnavailable when they cannot be had."""
        ...


class RecordsUnavailable(Unavailable):
    """The store of published events' identities (for de-duplication) gave no answer we can
    trust in time. A write may or may not have been carried out."""

    dependency = "records"


class BlobsUnavailable(Unavailable):
    """The store for large events' data could not be reached."""

    dependency = "blobs"


class RecordExists(Exception):
    """An insert found a record under the key already."""


class RecordChanged(Exception):
    """A conditional write found the record changed (or gone) since the etag it was given."""


class TransactionRefused(Exception):
    """A transaction's write could not be made (its key recorded already, or changed since its
    etag): nothing of the transaction was written. ``index``: the write that failed, when known."""

    def __init__(self, index: int | None = None) -> None:
        super().__init__(f"write {index} of the transaction was refused")
        self.index = index


@dataclass(frozen=True, slots=True)
class Write:
    """One write of a transaction: an insert (``etag`` None), or a replace of the record that
    still has ``etag``."""

    key: str
    record: Record
    etag: str | None = None


#: The most writes one transaction holds (Azure Table Storage's entity group transaction).
MAX_TRANSACTION = 100
#: The most keys one query of ``read_many`` asks for: a Table filter holds at most 15
#: comparisons, one of them the partition's.
MAX_KEYS_PER_QUERY = 14


class RecordTables(Protocol):
    """The storage under idempotent publish: tables of records, each record under a key, with
    an etag for conditional writes. What the records mean, and which table holds which, is
    decided in shared/core/idempotency.py; a store only carries out these operations. Every one of
    them raises RecordsUnavailable when the store gives no answer."""

    async def insert(self, table: str, key: str, record: Record) -> str:
        """Add the record (making the table when it is missing); its etag. RecordExists when
        the key has a record already."""
        ...

    async def read(self, table: str, key: str) -> Stored | None:
        """The key's record and its etag; None when there is none (or no such table)."""
        ...

    async def replace(self, table: str, key: str, record: Record, etag: str) -> str:
        """Replace the record if it still has ``etag``; the new etag. RecordChanged otherwise."""
        ...

    async def delete(self, table: str, key: str, etag: str) -> None:
        """Delete the record if it still has ``etag``. RecordChanged otherwise (gone included)."""
        ...

    async def transact(self, table: str, writes: Sequence[Write]) -> list[str]:
        """Make every write, all on keys of one partition (``partition_of`` in
        shared/core/idempotency.py), at most ``MAX_TRANSACTION`` of them, together or not at all
        (making the table when it is missing): their new etags, in order. TransactionRefused
        when one of them cannot be made, and then nothing was written."""
        ...

    async def read_many(self, table: str, keys: Sequence[str]) -> dict[str, Stored]:
        """The records of those ``keys`` that have one, by key (none when there is no such
        table), with few calls: one per partition and ``MAX_KEYS_PER_QUERY`` keys."""
        ...

    async def tables(self, prefix: str) -> list[str]:
        """The names of the tables whose names start with ``prefix``."""
        ...

    async def drop(self, table: str) -> None:
        """Delete a whole table (gone already is fine)."""
        ...

    async def close(self) -> None: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time, for everything whose outcome depends on it (records' timestamps and leases, the
    time budgets of a publish): the system's in production (shared/core/timing.py), one a test moves
    by hand (tests/support/timing.py), so that clocks and timeouts can be tested exactly."""

    def time(self) -> float:
        """Seconds since the epoch (records written by several instances compare these)."""
        ...

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Cancellable:
        """Call ``callback`` once ``seconds`` have passed."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """A block that ends in TimeoutError once ``seconds`` have passed (asyncio.timeout)."""
        ...


class BlobStore(Protocol):
    """Where the data of events too large for one queue message goes (the claim check)."""

    def new_name(self) -> str:
        """A name for one event's data that no other publish uses."""
        ...

    def url(self, name: str) -> str:
        """The URL the queued event's ``dataref`` gives for ``name``."""
        ...

    async def put(self, name: str, data: StoredData) -> None:
        """Store the data under ``name``; raises BlobsUnavailable."""
        ...

    async def delete(self, name: str) -> None:
        """Remove data whose event was not published (best effort, never raises)."""
        ...

    async def close(self) -> None: ...
