"""The ``$batch`` bodies shared/adapters/tables.py writes and reads by hand: written, as the
standard library's email parser (a full MIME implementation) reads them; read, as Azure's
answers look (the shape of the Table service's documentation, with its own headers). The same
code against Azurite: tests/integration/test_record_tables.py."""

from __future__ import annotations

import email
import email.policy

import orjson

from shared.adapters.tables import (
    _batch_body,
    _batch_parts,
    _entity,
    _failed_part,
    _parts_in_full,
)
from shared.core.model import Record, RecordState
from shared.core.ports import Write

ENDPOINT = "https://account.table.core.windows.net"
RECORD = Record("ce1:" + "0" * 64, RecordState.RESERVED, 10.0, 25.0, "owner")


def test_a_written_batch_is_one_changeset_of_each_write_request() -> None:
    writes = [Write("ab1-x", RECORD), Write("ab1-y", RECORD, etag="W/\"datetime'1'\"")]
    body = _batch_body(ENDPOINT, "ids7", writes, "batch_b", "changeset_c")
    message = email.message_from_bytes(
        b"Content-Type: multipart/mixed; boundary=batch_b\r\n\r\n" + body,
        policy=email.policy.HTTP,
    )
    (changeset,) = message.get_payload()
    assert changeset.get_content_type() == "multipart/mixed"
    requests = changeset.get_payload()
    assert [part.get_content_type() for part in requests] == ["application/http"] * 2
    first, second = (part.get_payload(decode=False) for part in requests)
    start, _, entity = first.partition("\r\n\r\n")
    assert start.splitlines()[0] == f"POST {ENDPOINT}/ids7 HTTP/1.1"
    assert "Prefer: return-no-content" in start
    assert orjson.loads(entity.strip()) == orjson.loads(_entity("ab1-x", RECORD))
    start, _, entity = second.partition("\r\n\r\n")
    assert start.splitlines()[0] == (
        f"PUT {ENDPOINT}/ids7(PartitionKey='ab1',RowKey='ab1-y') HTTP/1.1"
    )
    assert "If-Match: W/\"datetime'1'\"" in start
    assert orjson.loads(entity.strip())["RowKey"] == "ab1-y"


ANSWERED = (
    b"--batchresponse_e69b1c6c-0c1f-4d28-8e5d-1c7e6f2a9f3a\r\n"
    b"Content-Type: multipart/mixed; boundary=changesetresponse_8a28b620\r\n\r\n"
    b"--changesetresponse_8a28b620\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nContent-ID: 1\r\nX-Content-Type-Options: nosniff\r\n"
    b"Cache-Control: no-cache\r\nPreference-Applied: return-no-content\r\n"
    b"DataServiceVersion: 3.0;\r\n"
    b"Location: https://account.table.core.windows.net/ids7(PartitionKey='ab1',RowKey='ab1-x')\r\n"
    b"ETag: W/\"datetime'2026-12-07T10%3A00%3A00.1Z'\"\r\n\r\n\r\n"
    b"--changesetresponse_8a28b620\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nContent-ID: 2\r\nDataServiceVersion: 1.0;\r\n"
    b"ETag: W/\"datetime'2026-12-07T10%3A00%3A00.2Z'\"\r\n\r\n\r\n"
    b"--changesetresponse_8a28b620--\r\n"
    b"--batchresponse_e69b1c6c-0c1f-4d28-8e5d-1c7e6f2a9f3a--\r\n"
)

REFUSED = (
    b"--batchresponse_5ef0\r\n"
    b"Content-Type: multipart/mixed; boundary=changesetresponse_c1\r\n\r\n"
    b"--changesetresponse_c1\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 409 Conflict\r\nContent-ID: 2\r\nX-Content-Type-Options: nosniff\r\n"
    b"Cache-Control: no-cache\r\nDataServiceVersion: 3.0;\r\n"
    b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n"
    b'{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US",'
    b'"value":"1:The specified entity already exists.\\nRequestId:0f3e\\nTime:2026-12-07"}}}\r\n'
    b"--changesetresponse_c1--\r\n--batchresponse_5ef0--\r\n"
)


def test_an_answered_batch_gives_each_write_its_etag() -> None:
    parts = _batch_parts(ANSWERED)
    assert [part.status for part in parts] == [204, 204]
    assert [part.headers["etag"] for part in parts] == [
        "W/\"datetime'2026-12-07T10%3A00%3A00.1Z'\"",
        "W/\"datetime'2026-12-07T10%3A00%3A00.2Z'\"",
    ]
    assert _failed_part(parts) is None


def test_a_successful_answer_read_by_its_lines_is_what_reading_it_whole_gives() -> None:
    quick, whole = _batch_parts(ANSWERED), _parts_in_full(ANSWERED)
    assert [(p.status, p.headers["etag"]) for p in quick] == [
        (p.status, p.headers["etag"]) for p in whole
    ]
    # a success that names no etag is read whole (and then lacks it, as the service said)
    without = ANSWERED.replace(b"ETag:", b"X-Other:", 1)
    assert [("etag" in p.headers) for p in _batch_parts(without)] == [False, True]


def test_a_refused_batch_names_the_write_it_refused() -> None:
    parts = _batch_parts(REFUSED)
    assert [part.status for part in parts] == [409]
    assert _failed_part(parts) == (1, 409, "EntityAlreadyExists")


def test_an_answer_that_is_not_multipart_holds_no_part() -> None:
    assert _batch_parts(b'{"odata.error":{"code":"InvalidInput"}}') == []
