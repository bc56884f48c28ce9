"""The record store of idempotent publish: Azure Table Storage, one table per time generation.

Each event identity the endpoint publishes is one entity (PartitionKey: the key's first two hex
digits, RowKey: the key), holding the content's fingerprint, its state (``reserved`` while the
publish is under way, ``committed`` once the message is on the queue) and when that state began.

Generations: time is cut into generations as long as the window (24 h by default), each with its
own table, ``<prefix><generation number>``. A claim is one insert into the current generation's
table: one round trip, whatever the answer. The commit is one upsert of the ``committed`` record
into the *next* generation's table (off the response path); the claim's own record stays
``reserved``. So a generation's table holds its own claims and the commits of the previous
generation's, and every committed record of the last window is in the current table or the next
one: a claim whose insert finds a record looks for its commit in the next table first (a replay
costs the refused insert and that read), and only then at the current table's record (a new
event costs the insert and the commit, two writes). A record older than the window is
treated as absent. Tables older than the previous generation hold nothing that counts any more
and are dropped whole (``drop_expired_tables``, run by the timer function in function_app.py): no
scan of any table.

A ``reserved`` record older than ``LEASE_SECONDS`` whose commit is not in the next table belongs
to a publish that never finished (its process died): it is taken over, as if absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from shared.identity import ManagedIdentity
from shared.model import Reservation
from shared.ports import RecordsUnavailable
from shared.queue import environment_configures_http
from shared.settings import Settings, has_table_endpoint

log = logging.getLogger("events.records")

#: A reservation older than this is abandoned (its publish would have ended long before).
LEASE_SECONDS = 120.0
#: A claim that finds the same content in flight waits for it, polling, for at most this share
#: of the time budget, pausing first this long, doubling up to the maximum.
IN_FLIGHT_WAIT_SHARE = 0.8
IN_FLIGHT_FIRST_PAUSE_SECONDS = 0.01
IN_FLIGHT_MAX_PAUSE_SECONDS = 0.2
RESERVED = "reserved"
COMMITTED = "committed"


class TableRecords:
    """``PublishRecords`` (shared/ports.py) on Azure Table Storage; see the module docstring."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        prefix: str,
        window_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._service = service
        self._prefix = prefix
        self._window = window_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._tables: dict[str, TableClient] = {}
        #: The records this process reserved and has not committed or released yet.
        self._claims: dict[str, _Claim] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, identity: ManagedIdentity, **client_options: Any
    ) -> TableRecords | None:
        """The store the settings name; None when de-duplication is off (a window of 0 hours).

        The table service is the ``TableEndpoint`` of ``EVENTS_QUEUE_CONNECTION``, else
        ``EVENTS_TABLE_ACCOUNT_URL`` with the managed identity. Call it inside the event loop
        that will use the store.
        """
        if settings.idempotency_window_hours == 0:
            return None
        options: dict[str, Any] = {
            "connection_timeout": 2.0,
            "read_timeout": 10.0,
            # as the queue's client (shared/queue.py): without proxy variables or a netrc file,
            # aiohttp's per-request lookup of both (two thread hand-offs per table call) finds
            # nothing, so it is switched off
            "use_env_settings": environment_configures_http(),
            **client_options,
        }
        connection = settings.queue_connection
        if connection is not None and has_table_endpoint(connection.get_secret_value()):
            service = TableServiceClient.from_connection_string(
                connection.get_secret_value(), **options
            )
        else:
            assert settings.table_account_url is not None  # Settings makes sure
            service = TableServiceClient(
                endpoint=settings.table_account_url, credential=identity.credential(), **options
            )
        return cls(
            service,
            prefix=settings.idempotency_table,
            window_seconds=settings.idempotency_window_hours * 3600,
            timeout_seconds=settings.queue_timeout_seconds,
        )

    # -- the port ------------------------------------------------------------------------------

    async def reserve(self, key: str, fingerprint: str) -> Reservation:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._reserve(key, fingerprint)
        except TimeoutError:
            raise RecordsUnavailable(f"no answer within {self._timeout:g} s") from None
        except AzureError as error:
            raise RecordsUnavailable(_first_line(error)) from None

    async def commit(self, key: str) -> None:
        claim = self._claims.pop(key, None)
        if claim is None:
            return
        now = self._clock()
        entity = {**_keys(key), "fingerprint": claim.fingerprint, "state": COMMITTED, "at": now}
        try:
            # into the next generation's table (each one from the claim's to now's, when the
            # publish crossed into a new generation): where this generation's claims look for a
            # reserved record's commit, and the next generation's inserts find it
            for generation in range(claim.generation + 1, self._generation(now) + 2):
                await self._upsert(self._table_name(generation), entity)
        except AzureError as error:
            log.warning("the record of a published event was not committed: %s", _first_line(error))

    async def release(self, key: str) -> None:
        claim = self._claims.pop(key, None)
        if claim is None:
            return
        try:
            await self._table(claim.table).delete_entity(
                _partition(key), key, etag=claim.etag, match_condition=MatchConditions.IfNotModified
            )
        except AzureError as error:
            log.warning(
                "the claim of an unpublished event was not released: %s", _first_line(error)
            )

    async def close(self) -> None:
        for table in self._tables.values():
            await table.close()
        await self._service.close()

    # -- maintenance ---------------------------------------------------------------------------

    async def drop_expired_tables(self) -> list[str]:
        """Drop every generation's table older than the previous generation; their names."""
        keep_from = self._generation(self._clock()) - 1
        pattern = re.compile(re.escape(self._prefix) + r"([0-9]+)")
        dropped = []
        async for table in self._service.list_tables():
            match = pattern.fullmatch(table.name)
            if match and int(match.group(1)) < keep_from:
                await self._service.delete_table(table.name)
                self._tables.pop(table.name, None)
                dropped.append(table.name)
        return dropped

    # -- inside --------------------------------------------------------------------------------

    def _generation(self, now: float) -> int:
        return int(now // self._window)

    def _table_name(self, generation: int) -> str:
        return f"{self._prefix}{generation}"

    def _table(self, name: str) -> TableClient:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self._service.get_table_client(name)
        return table

    async def _reserve(self, key: str, fingerprint: str) -> Reservation:
        """Claim the key; when a publish of the same content is under way, wait (polling the
        record, a few times) until it ends or the time is nearly up, and answer as it ended:
        a replay once it committed, a claim of its own once it released."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._timeout * IN_FLIGHT_WAIT_SHARE
        pause = IN_FLIGHT_FIRST_PAUSE_SECONDS
        while True:
            answer = await self._claim(key, fingerprint)
            if answer is not Reservation.IN_FLIGHT or loop.time() + pause > give_up_at:
                return answer
            await asyncio.sleep(pause)
            pause = min(pause * 2, IN_FLIGHT_MAX_PAUSE_SECONDS)

    async def _claim(self, key: str, fingerprint: str) -> Reservation:
        now = self._clock()
        generation = self._generation(now)
        table_name = self._table_name(generation)
        table = self._table(table_name)
        entity = {**_keys(key), "fingerprint": fingerprint, "state": RESERVED, "at": now}
        for _ in range(3):  # a claim taken over (or released) concurrently is tried again
            try:
                etag = await self._create(table, entity)
            except ResourceExistsError:
                # a repeat of an event published in this generation: its commit is in the next
                # generation's table, looked at first, so that a replay costs two calls
                commit = await self._commit_of(key, generation)
                if commit is not None:
                    decision = self._committed(commit, fingerprint, now)
                    if decision is not None:
                        return decision
                try:
                    existing = await table.get_entity(_partition(key), key)
                except ResourceNotFoundError:
                    continue  # released just now
                decision = self._decide(existing, fingerprint, now)
                if decision is not None:
                    return decision
                try:  # expired or abandoned: take it over, unless someone else just did
                    taken = await table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=existing.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
                etag = taken["etag"]
            self._claims[key] = _Claim(generation, table_name, etag, fingerprint)
            return Reservation.NEW
        return Reservation.IN_FLIGHT

    async def _commit_of(self, key: str, generation: int) -> Any | None:
        """The ``committed`` record of ``key`` in the table after ``generation``'s, if any."""
        try:
            record = await self._table(self._table_name(generation + 1)).get_entity(
                _partition(key), key
            )
        except ResourceNotFoundError:  # no such record (or no such table yet)
            return None
        return record if record.get("state") == COMMITTED else None

    def _decide(self, existing: Any, fingerprint: str, now: float) -> Reservation | None:
        """What a record found in the current table says when the next table holds no commit of
        it that counts; None when it no longer counts (expired or abandoned)."""
        if existing.get("state") == COMMITTED:
            return self._committed(existing, fingerprint, now)
        fresh = now - float(existing.get("at", 0.0)) < LEASE_SECONDS
        if fresh and existing.get("fingerprint") != fingerprint:
            return Reservation.CONFLICT  # other content: no need to know how the first ended
        return Reservation.IN_FLIGHT if fresh else None

    def _committed(self, record: Any, fingerprint: str, now: float) -> Reservation | None:
        if now - float(record.get("at", 0.0)) >= self._window:
            return None
        if record.get("fingerprint") != fingerprint:
            return Reservation.CONFLICT
        return Reservation.REPLAY

    async def _create(self, table: TableClient, entity: dict[str, Any]) -> str:
        """Insert the record; its etag."""
        try:
            return await _write(table, "POST", f"/{table.table_name}", entity)
        except ResourceNotFoundError:  # the generation's first record: its table is new
            await self._create_table(table.table_name)
            return await _write(table, "POST", f"/{table.table_name}", entity)

    async def _upsert(self, table_name: str, entity: dict[str, Any]) -> None:
        table = self._table(table_name)
        path = f"/{table_name}(PartitionKey='{entity['PartitionKey']}',RowKey='{entity['RowKey']}')"
        try:
            await _write(table, "PUT", path, entity)  # no If-Match: insert or replace
        except ResourceNotFoundError:
            await self._create_table(table_name)
            await _write(table, "PUT", path, entity)

    async def _create_table(self, name: str) -> None:
        log.info("creating the records table %s", name)
        with contextlib.suppress(ResourceExistsError):  # created concurrently: fine
            await self._service.create_table(name)


@dataclass(frozen=True, slots=True)
class _Claim:
    generation: int
    table: str
    etag: str
    fingerprint: str


#: The headers of a write of one record (the credential policy adds the date and the signature).
_WRITE_HEADERS = {
    "Content-Type": "application/json;odata=nometadata",
    "Accept": "application/json;odata=nometadata",
    "DataServiceVersion": "3.0",
    "Prefer": "return-no-content",  # for an insert: 204 without the entity echoed back
}
_ERRORS: dict[int, type[HttpResponseError]] = {
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    412: ResourceModifiedError,
}


async def _write(table: TableClient, method: str, path: str, entity: dict[str, Any]) -> str:
    """Insert (POST) or insert-or-replace (PUT) one record through the table client's own
    pipeline (its credential, retries, tracing and transport), but not through the SDK's
    generated operation layer, whose request and response (de)serialisation cost about a third
    of the call's CPU (about 100 of 380 us per call on the dev host). The record's new etag; the
    SDK's errors (404, 409 and 412 as their own types).

    It reaches three private attributes of azure-data-tables' ``TableClient`` (``_client``,
    ``_primary_hostname``, and the generated client's ``_client``): the lock pins the version,
    and every test of tests/integration/test_idempotency.py goes through here, so an upgrade
    that moves them fails there, not in production."""
    body = orjson.dumps({**entity, "at@odata.type": "Edm.Double"})
    headers = {**_WRITE_HEADERS, "x-ms-version": table.api_version}
    request = HttpRequest(
        method, f"{table.scheme}://{table._primary_hostname}{path}", headers=headers, content=body
    )
    response = await table._client._client.send_request(request)
    if response.status_code in (201, 204):
        return str(response.headers["ETag"])
    raise _ERRORS.get(response.status_code, HttpResponseError)(response=response)


def _partition(key: str) -> str:
    return key[:2]


def _keys(key: str) -> dict[str, str]:
    return {"PartitionKey": _partition(key), "RowKey": key}


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]
