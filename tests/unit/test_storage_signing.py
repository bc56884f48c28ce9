"""The Shared Key signatures of shared/adapters/storage_http.py, against the Storage SDKs' own
signers as the oracle: for the same request, the same ``Authorization`` header."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.data.tables._authentication import (
    SharedKeyCredentialPolicy as TablesSigner,
)
from azure.storage.queue._shared.authentication import (
    SharedKeyCredentialPolicy as QueueSigner,
)

from shared.adapters.storage_http import QueueSharedKey, TableSharedKey

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DATE = "Mon, 07 Dec 2026 14:46:09 GMT"


def ours(signer: QueueSharedKey | TableSharedKey, method: str, url: str, headers: dict[str, str]):
    sent = dict(headers)
    asyncio.run(signer.apply(method, url, sent))
    return sent["Authorization"]


def theirs(signer: object, method: str, url: str, headers: dict[str, str]) -> str:
    request = HttpRequest(method, url, headers=dict(headers))
    signer.on_request(PipelineRequest(request, PipelineContext(None)))  # type: ignore[attr-defined]
    return str(request.headers["Authorization"])


QUEUE_REQUESTS = [
    (
        "POST",
        "http://127.0.0.1:10001/devstoreaccount1/events/messages",
        {
            "x-ms-version": "2021-12-02",
            "x-ms-date": DATE,
            "Content-Type": "application/xml",
            "Accept": "application/xml",
            "Content-Length": "187",
        },
    ),
    (
        "PUT",
        "https://acct.queue.core.windows.net/events-3",
        {"x-ms-version": "2021-12-02", "x-ms-date": DATE},
    ),
    (
        "GET",
        "https://acct.queue.core.windows.net/events/messages?peekonly=true&numofmessages=5",
        {"x-ms-version": "2021-12-02", "x-ms-date": DATE, "x-ms-client-request-id": "abc"},
    ),
    (
        "PUT",
        "https://acct.queue.core.windows.net/events?comp=metadata",
        {"x-ms-version": "2021-12-02", "x-ms-date": DATE, "Content-Length": "0"},
    ),
]


@pytest.mark.parametrize(("method", "url", "headers"), QUEUE_REQUESTS)
def test_a_queue_request_is_signed_as_the_queue_sdk_signs_it(
    method: str, url: str, headers: dict[str, str]
) -> None:
    account = "devstoreaccount1" if "127.0.0.1" in url else "acct"
    assert ours(QueueSharedKey(account, KEY), method, url, headers) == theirs(
        QueueSigner(account, KEY), method, url, headers
    )


TABLE_REQUESTS = [
    (
        "POST",
        "http://127.0.0.1:10002/devstoreaccount1/records20261207",
        {"x-ms-date": DATE, "Content-Type": "application/json;odata=nometadata"},
    ),
    (
        "GET",
        "https://acct.table.core.windows.net/records(PartitionKey='p',RowKey='k')",
        {"x-ms-date": DATE, "Accept": "application/json;odata=nometadata"},
    ),
    ("GET", "https://acct.table.core.windows.net/Tables?comp=list", {"x-ms-date": DATE}),
]


@pytest.mark.parametrize(("method", "url", "headers"), TABLE_REQUESTS)
def test_a_table_request_is_signed_as_the_tables_sdk_signs_it(
    method: str, url: str, headers: dict[str, str]
) -> None:
    account = "devstoreaccount1" if "127.0.0.1" in url else "acct"
    signer = TablesSigner(AzureNamedKeyCredential(account, KEY))
    assert ours(TableSharedKey(account, KEY), method, url, headers) == theirs(
        signer, method, url, headers
    )


def test_a_signature_covers_what_it_signs() -> None:
    # a changed body length, date or path each give another signature
    method, url, headers = QUEUE_REQUESTS[0]
    signer = QueueSharedKey(ACCOUNT, KEY)
    base = ours(signer, method, url, headers)
    assert ours(signer, method, url, {**headers, "Content-Length": "188"}) != base
    assert (
        ours(signer, method, url, {**headers, "x-ms-date": "Tue, 08 Dec 2026 00:00:00 GMT"}) != base
    )
    assert ours(signer, method, url.replace("events", "other"), headers) != base
