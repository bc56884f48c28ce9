"""Azure Table Storage as the store under idempotent publish: a ``RecordTables``
(shared/core/ports.py) that carries out storage operations and decides nothing
(shared/core/idempotency.py does).

Each record is one entity: PartitionKey the key's partition (``partition_of`` in
shared/core/idempotency.py), RowKey the key, and the record's fields (``fingerprint``, ``state``,
``at``, ``until``, ``owner``). A missing table is made on its first write.

The calls are the Table service's REST operations (Insert Entity, Get Entity, Update Entity with
``If-Match``, Delete Entity, Query Entities, an entity group transaction (``$batch``), Query
Tables, Create and Delete Table), sent through the storage HTTP client
(shared/adapters/storage_http.py: aiohttp, Shared Key from a connection string or the managed
identity's bearer token, two retries of a busy answer or an unopened connection). Neither the
Tables SDK's generated layer (its (de)serialisation cost about a third of each call's CPU) nor
azure-core's pipeline (another third) is used: a record needs none of it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import orjson

from shared.adapters.common import environment_configures_http, has_table_endpoint, table_endpoint
from shared.adapters.storage_http import (
    STORAGE_SCOPE,
    Answer,
    AnswerLost,
    Authorization,
    BearerToken,
    NotReached,
    StorageHttp,
    TableSharedKey,
    describe,
)
from shared.core.idempotency import partition_of
from shared.core.model import Record, RecordState, Stored
from shared.core.ports import (
    MAX_KEYS_PER_QUERY,
    RecordChanged,
    RecordExists,
    RecordsUnavailable,
    TransactionRefused,
    Write,
)

log = logging.getLogger("events.records")

#: The Table service's REST API version these calls are written for.
API_VERSION = "2019-02-02"
_JSON = "application/json;odata=nometadata"
_WITH_ETAGS = "application/json;odata=minimalmetadata"  # a query's entities carry their etags
_DOUBLE = "Edm.Double"


class TableStorage:
    """``RecordTables`` on Azure Table Storage; see the module docstring."""

    def __init__(self, http: StorageHttp, endpoint: str) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/")

    @classmethod
    def connect(
        cls,
        *,
        connection_string: str | None,
        account_url: str | None,
        credential: Any = None,
        **transport_options: Any,
    ) -> TableStorage:
        """The table service of a connection string (its ``TableEndpoint``), else of an account
        URL with ``credential`` (the managed identity's). ``transport_options`` go to the
        client (``connection_verify``, ``connection_timeout``, ``read_timeout``,
        ``trust_env``: shared/adapters/storage_http.py; tests pass ``connection_verify``).
        Call it inside the event loop that will use the store."""
        options: dict[str, Any] = {
            "connection_timeout": 2.0,
            "read_timeout": 10.0,
            # as the queue's (shared/adapters/queue.py): without proxy variables or a netrc
            # file, aiohttp's per-request lookup of both finds nothing: switched off
            "trust_env": environment_configures_http(),
            **transport_options,
        }
        authorization: Authorization
        if connection_string is not None and has_table_endpoint(connection_string):
            account, key, endpoint = table_endpoint(connection_string)
            authorization = TableSharedKey(account, key)
        else:
            assert account_url is not None
            endpoint = account_url
            authorization = BearerToken(credential, STORAGE_SCOPE)
        http = StorageHttp(
            authorization,
            headers={"x-ms-version": API_VERSION, "DataServiceVersion": "3.0"},
            # connections that could not be opened, and the service's busy answers: a
            # repeated write is recognised by its owner (shared/core/idempotency.py)
            status_retries=2,
            retry_pause=0.1,
            **options,
        )
        return cls(http, endpoint)

    # -- the port ---------------------------------------------------------------------------------

    async def insert(self, table: str, key: str, record: Record) -> str:
        body = _entity(key, record)
        response = await self._send("POST", f"/{table}", body, prefer=True)
        if response.status_code == 404:  # the generation's first record: its table is new
            await self._create_table(table)
            response = await self._send("POST", f"/{table}", body, prefer=True)
        if response.status_code in (201, 204):
            return str(response.headers["ETag"])
        if response.status_code == 409:
            raise RecordExists(key)
        raise _unavailable(response)

    async def read(self, table: str, key: str) -> Stored | None:
        response = await self._send("GET", _entity_path(table, key))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _unavailable(response)
        entity = orjson.loads(response.content)
        return Stored(_record(entity), str(response.headers["ETag"]))

    async def replace(self, table: str, key: str, record: Record, etag: str) -> str:
        response = await self._send(
            "PUT", _entity_path(table, key), _entity(key, record), if_match=etag
        )
        if response.status_code == 204:
            return str(response.headers["ETag"])
        if response.status_code in (404, 412):
            raise RecordChanged(key)
        raise _unavailable(response)

    async def delete(self, table: str, key: str, etag: str) -> None:
        response = await self._send("DELETE", _entity_path(table, key), if_match=etag)
        if response.status_code == 204:
            return
        if response.status_code in (404, 412):
            raise RecordChanged(key)
        raise _unavailable(response)

    async def transact(self, table: str, writes: Sequence[Write]) -> list[str]:
        parts = await self._transaction(table, writes)
        failed = _failed_part(parts)
        if failed is not None and failed[1] == 404 and failed[2] == "TableNotFound":
            await self._create_table(table)
            parts = await self._transaction(table, writes)
            failed = _failed_part(parts)
        if failed is None:
            if len(parts) != len(writes) or any("etag" not in part.headers for part in parts):
                raise RecordsUnavailable("a transaction's answer did not name every write's etag")
            return [part.headers["etag"] for part in parts]
        index, status, code = failed
        if status in (409, 412) or (status == 404 and code == "ResourceNotFound"):
            raise TransactionRefused(index)
        raise RecordsUnavailable(f"a transaction's write was answered {status} {code}".strip())

    async def read_many(self, table: str, keys: Sequence[str]) -> dict[str, Stored]:
        partitions: dict[str, list[str]] = {}
        for key in dict.fromkeys(keys):
            partitions.setdefault(partition_of(key), []).append(key)
        found: dict[str, Stored] = {}
        for partition, members in partitions.items():
            for start in range(0, len(members), MAX_KEYS_PER_QUERY):
                chosen = " or ".join(
                    f"RowKey eq '{key}'" for key in members[start : start + MAX_KEYS_PER_QUERY]
                )
                wanted = f"PartitionKey eq '{partition}' and ({chosen})"
                query = f"$filter={quote(wanted)}"
                while True:
                    response = await self._send("GET", f"/{table}()?{query}", accept=_WITH_ETAGS)
                    if response.status_code == 404:
                        return {}
                    if response.status_code != 200:
                        raise _unavailable(response)
                    for entity in orjson.loads(response.content)["value"]:
                        found[entity["RowKey"]] = Stored(_record(entity), entity["odata.etag"])
                    following = _continuation(response)
                    if following is None:
                        break
                    query = query.split("&", 1)[0] + following
        return found

    async def tables(self, prefix: str) -> list[str]:
        names: list[str] = []
        query = f"$filter=TableName ge '{prefix}' and TableName lt '{prefix}~'"
        while True:
            response = await self._send("GET", f"/Tables?{query}")
            if response.status_code != 200:
                raise _unavailable(response)
            names += [item["TableName"] for item in orjson.loads(response.content)["value"]]
            following = response.headers.get("x-ms-continuation-NextTableName")
            if not following:
                return names
            query = (
                f"$filter=TableName ge '{prefix}' and TableName lt '{prefix}~'"
                f"&NextTableName={following}"
            )

    async def drop(self, table: str) -> None:
        response = await self._send("DELETE", f"/Tables('{table}')")
        if response.status_code not in (204, 404):
            raise _unavailable(response)

    async def close(self) -> None:
        await self._http.close()

    # -- inside -----------------------------------------------------------------------------------

    async def _create_table(self, table: str) -> None:
        log.info("creating the records table %s", table)
        response = await self._send("POST", "/Tables", orjson.dumps({"TableName": table}))
        if response.status_code not in (201, 204, 409):  # 409: made concurrently, fine
            raise _unavailable(response)

    async def _transaction(self, table: str, writes: Sequence[Write]) -> list[_Part]:
        """One entity group transaction of ``writes`` (the Table service's ``$batch``: a
        multipart/mixed request holding one changeset of the writes' requests), and the parts
        of its answer. The multipart body is written and read here (``_batch_body``,
        ``_batch_parts``): azure-core's multipart helpers go through the standard library's
        email package, which cost about six times the CPU of the writes themselves."""
        boundary = f"batch_{uuid4()}"
        body = _batch_body(self._endpoint, table, writes, boundary, f"changeset_{uuid4()}")
        headers = {
            "Content-Type": f"multipart/mixed; boundary={boundary}",
            "MaxDataServiceVersion": "3.0",
            "Accept": _JSON,
        }
        try:
            response = await self._http.request("POST", f"{self._endpoint}/$batch", headers, body)
        except (NotReached, AnswerLost) as error:
            raise RecordsUnavailable(describe(error)) from None
        if response.status_code != 202:
            raise _unavailable(response)
        parts = _batch_parts(response.content)
        if not parts:
            raise RecordsUnavailable("a transaction's answer held no part")
        return parts

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        prefer: bool = False,
        if_match: str | None = None,
        accept: str | None = None,
    ) -> Answer:
        headers = {"Accept": accept or _JSON}
        if body is not None:
            headers["Content-Type"] = _JSON
        if prefer:
            headers["Prefer"] = "return-no-content"  # an insert: 204, the entity not echoed
        if if_match is not None:
            headers["If-Match"] = if_match
        try:
            return await self._http.request(method, self._endpoint + path, headers, body)
        except (NotReached, AnswerLost) as error:
            raise RecordsUnavailable(describe(error)) from None


def _entity_path(table: str, key: str) -> str:
    return f"/{table}(PartitionKey='{partition_of(key)}',RowKey='{key}')"


def _continuation(response: Answer) -> str | None:
    """The query string that asks for a query's next page, None when it was the last."""
    partition = response.headers.get("x-ms-continuation-NextPartitionKey")
    if not partition:
        return None
    row = response.headers.get("x-ms-continuation-NextRowKey")
    following = f"&NextPartitionKey={quote(partition)}"
    return following + (f"&NextRowKey={quote(row)}" if row else "")


@dataclass(frozen=True, slots=True)
class _Part:
    """One answer inside a transaction's answer: its status, headers (lower-case names) and
    body."""

    status: int
    headers: dict[str, str]
    body: bytes


def _batch_body(
    endpoint: str, table: str, writes: Sequence[Write], boundary: str, changeset: str
) -> bytes:
    """A ``$batch`` request's body: one changeset with each write's request in it (an insert
    that asks for no content back, or a replace with ``If-Match`` its etag)."""
    lines = [f"--{boundary}", f"Content-Type: multipart/mixed; boundary={changeset}", ""]
    pieces = ["\r\n".join(lines).encode()]
    for number, write in enumerate(writes):
        if write.etag is None:
            start = [f"POST {endpoint}/{table} HTTP/1.1", "Prefer: return-no-content"]
        else:
            start = [
                f"PUT {endpoint}{_entity_path(table, write.key)} HTTP/1.1",
                f"If-Match: {write.etag}",
            ]
        head = [
            f"\r\n--{changeset}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {number + 1}",
            "",
            *start,
            f"Content-Type: {_JSON}",
            f"Accept: {_JSON}",
            "DataServiceVersion: 3.0",
            "",
            "",
        ]
        pieces.append("\r\n".join(head).encode())
        pieces.append(_entity(write.key, write.record))
    pieces.append(f"\r\n--{changeset}--\r\n--{boundary}--\r\n".encode())
    return b"".join(pieces)


#: The start of each answer inside a transaction's answer: its status line.
_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})[^\r\n]*\r?\n", re.MULTILINE)
_BOUNDARY_LINE = re.compile(rb"\r?\n--[^\r\n]*\s*$")


#: A part's status line and its ETag header line, for reading a successful transaction's answer
#: quickly (found after a line break: far cheaper than anchoring each line with MULTILINE).
_QUICK_STATUS = re.compile(rb"\nHTTP/1\.[01] (\d{3})")
_QUICK_ETAG = re.compile(rb"\n[Ee][Tt][Aa][Gg]:[ \t]*([^\r\n]*)")


def _batch_parts(content: bytes) -> list[_Part]:
    """The answers inside a ``$batch`` answer, in order: one per write, or the one that failed.
    A transaction that succeeded is read from its status and ETag lines alone (each write's
    answer has one of each, and no body): the common case, at about a quarter of the CPU of
    reading every part whole (``_parts_in_full``), which anything else is."""
    statuses = _QUICK_STATUS.findall(content)
    if statuses and all(status.startswith(b"2") for status in statuses):
        etags = _QUICK_ETAG.findall(content)
        if len(etags) == len(statuses):
            return [
                _Part(int(status), {"etag": etag.strip().decode("latin-1")}, b"")
                for status, etag in zip(statuses, etags, strict=True)
            ]
    return _parts_in_full(content)


def _parts_in_full(content: bytes) -> list[_Part]:
    """Each part of a ``$batch`` answer, from its status line to the next part's boundary: its
    headers, a blank line and its body (a failed one's error in JSON)."""
    parts = []
    starts = list(_STATUS_LINE.finditer(content))
    for number, found in enumerate(starts):
        end = starts[number + 1].start() if number + 1 < len(starts) else len(content)
        block = content[found.end() : end]
        head, _, rest = block.replace(b"\r\n", b"\n").partition(b"\n\n")
        body = rest.split(b"\n--", 1)[0].strip()
        headers = {}
        for line in head.split(b"\n"):
            name, colon, value = line.partition(b":")
            if colon:
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        parts.append(_Part(int(found.group(1)), headers, body))
    return parts


def _failed_part(parts: list[_Part]) -> tuple[int | None, int, str] | None:
    """The write that failed (its index when the service names it), its status and error code;
    None when every write was made."""
    for part in parts:
        if 200 <= part.status < 300:
            continue
        code, index = "", None
        try:
            error = orjson.loads(part.body)["odata.error"]
            code = str(error.get("code", ""))
            first, colon, _ = str(error.get("message", {}).get("value", "")).partition(":")
            index = int(first) if colon and first.isdigit() else None
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pass
        return index, part.status, code
    return None


def _entity(key: str, record: Record) -> bytes:
    entity: dict[str, Any] = {
        "PartitionKey": partition_of(key),
        "RowKey": key,
        "fingerprint": record.fingerprint,
        "state": record.state.value,
        "at": record.at,
        "at@odata.type": _DOUBLE,
    }
    if record.until is not None:
        entity["until"] = record.until
        entity["until@odata.type"] = _DOUBLE
    if record.owner is not None:
        entity["owner"] = record.owner
    return orjson.dumps(entity)


def _record(entity: dict[str, Any]) -> Record:
    """A record as read back; fields that records written before them lack are None."""
    until = entity.get("until")
    return Record(
        fingerprint=str(entity.get("fingerprint", "")),
        state=RecordState(entity.get("state", RecordState.RESERVED.value)),
        at=float(entity.get("at", 0.0)),
        until=float(until) if until is not None else None,
        owner=entity.get("owner"),
    )


def _unavailable(response: Answer) -> RecordsUnavailable:
    code = response.headers.get("x-ms-error-code") or ""
    return RecordsUnavailable(f"the table service answered {response.status_code} {code}".strip())
