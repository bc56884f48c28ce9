"""The Azure path to the queue: EVENTS_QUEUE_ACCOUNT_URL and the managed identity, no key.

Azurite serves HTTPS and accepts only bearer tokens whose issuer looks like Entra ID's and whose
audience is Azure Storage ("--oauth basic"); the dev issuer stands in for App Service's managed
identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER, which azure-identity reads).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devtools.azurite import Azurite
from devtools.issuer import DevIssuer
from devtools.tls import LocalTls, make_local_tls
from shared.app.runtime import Runtime
from shared.app.settings import Settings
from shared.core.pipeline import PublishRequest, PublishResponse
from tests.support import VALID_EVENT, body_of

TENANT_ISSUER = "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"


@pytest.fixture
def tls(tmp_path: Path) -> LocalTls:
    return make_local_tls(tmp_path / "tls")


@pytest.fixture
def oauth_azurite(tls: LocalTls) -> Iterator[Azurite]:
    azurite = Azurite(oauth_tls=(tls.cert_file, tls.key_file), services=("queue", "table")).start()
    yield azurite
    azurite.stop()


@pytest.fixture
def identity_env(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    oauth_azurite: Azurite,
    issuer: DevIssuer,
) -> None:
    """The queue and the records table by account URL; the managed identity as App Service
    exposes it."""
    monkeypatch.delenv("EVENTS_QUEUE_CONNECTION")
    monkeypatch.setenv("EVENTS_QUEUE_ACCOUNT_URL", oauth_azurite.queue_endpoint)
    monkeypatch.setenv("EVENTS_TABLE_ACCOUNT_URL", oauth_azurite.endpoint("table"))
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{issuer.base_url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", issuer.identity_header)


async def publish(issuer: DevIssuer, tls: LocalTls, times: int) -> list[PublishResponse]:
    """Publish through a runtime built from the environment (trusting the test CA)."""
    trust = {"connection_verify": str(tls.ca_file)}
    built = Runtime.build(
        Settings(),  # type: ignore[call-arg]
        queue_client_options=trust,
        table_client_options=trust,
    )
    request = PublishRequest(
        "POST",
        "/events",
        {"authorization": f"Bearer {issuer.mint()}", "content-type": "application/json"},
        body_of(VALID_EVENT),
    )
    try:
        return [await built.pipeline.handle(request) for _ in range(times)]
    finally:
        await built.close()


@pytest.mark.usefixtures("identity_env")
async def test_publish_through_the_managed_identity(
    monkeypatch: pytest.MonkeyPatch,
    oauth_azurite: Azurite,
    issuer: DevIssuer,
    tls: LocalTls,
    queue_name: str,
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", "uami-client-id")
    monkeypatch.setattr(issuer, "managed_identity_issuer", TENANT_ISSUER)
    requests_before = issuer.identity_requests

    first, second = await publish(issuer, tls, times=2)
    assert (first.status, second.status) == (200, 200), first.body
    # the second is a replay: the records table, reached with the identity too, knew the event
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    # one token for the queue and the table, reused by the second publish
    assert issuer.identity_requests == requests_before + 1

    reader = QueueClient.from_connection_string(
        oauth_azurite.connection_string,
        queue_name,
        message_decode_policy=TextBase64DecodePolicy(),
        connection_verify=str(tls.ca_file),
    )
    with reader:
        stored = [message.content for message in reader.peek_messages(max_messages=5)]
    assert len(stored) == 1


@pytest.mark.usefixtures("identity_env")
async def test_a_token_storage_refuses_is_503(
    issuer: DevIssuer, tls: LocalTls, caplog: pytest.LogCaptureFixture
) -> None:
    # the identity's tokens come from the dev issuer, which Azure Storage does not accept
    with caplog.at_level(logging.INFO, logger="events.publish"):
        (response,) = await publish(issuer, tls, times=1)
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert "the queue refused the credential: 403 AuthenticationFailed" in caplog.text
