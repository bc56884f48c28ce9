"""What a storage connection string names for the queue and table adapters
(``service_endpoint`` in shared/adapters/common.py): the account, its key or its shared access
signature, and each service's endpoint."""

from __future__ import annotations

import pytest

from shared.adapters.common import service_endpoint, table_endpoint

KEY = "a2V5"  # base64 of "key"


def test_azurites_shorthand_names_its_well_known_account_and_ports() -> None:
    account, key, queue, signature = service_endpoint("UseDevelopmentStorage=true", "queue")
    assert (account, queue, signature) == (
        "devstoreaccount1",
        "http://127.0.0.1:10001/devstoreaccount1",
        "",
    )
    assert key is not None
    assert key.endswith("==")
    assert service_endpoint("UseDevelopmentStorage=true", "table")[2].endswith(
        ":10002/devstoreaccount1"
    )


def test_an_account_and_key_give_each_service_its_default_endpoint() -> None:
    connection = (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};"
        "EndpointSuffix=core.windows.net"
    )
    assert service_endpoint(connection, "queue") == (
        "acct",
        KEY,
        "https://acct.queue.core.windows.net",
        "",
    )
    assert table_endpoint(connection) == ("acct", KEY, "https://acct.table.core.windows.net")


def test_a_named_endpoint_wins_and_loses_its_trailing_slash() -> None:
    connection = f"AccountName=acct;AccountKey={KEY};QueueEndpoint=http://127.0.0.1:9/acct/"
    assert service_endpoint(connection, "queue")[2] == "http://127.0.0.1:9/acct"


def test_a_shared_access_signature_stands_instead_of_the_key() -> None:
    connection = (
        "QueueEndpoint=https://acct.queue.core.windows.net;SharedAccessSignature=?sv=2022&sig=a%2Bb"
    )
    assert service_endpoint(connection, "queue") == (
        "acct",
        None,
        "https://acct.queue.core.windows.net",
        "sv=2022&sig=a%2Bb",
    )


def test_a_key_is_required_without_a_signature() -> None:
    with pytest.raises(KeyError):
        service_endpoint("AccountName=acct", "queue")
