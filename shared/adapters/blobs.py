"""The blob store of the claim check (shared/core/claimcheck.py): large events' data in Azure Blob
Storage, in the queue's storage account. A ``BlobStore`` (shared/core/ports.py).

The blob service is the ``BlobEndpoint`` of ``EVENTS_QUEUE_CONNECTION``, else
``EVENTS_BLOB_ACCOUNT_URL`` with the managed identity; the container is
``EVENTS_BLOB_CONTAINER``. Names are new for every publish (a date and a random UUID), so a
write never replaces data a queued event refers to. Writing the same bytes again is harmless,
so the SDK may retry a write; the caller bounds the whole of it by the publish's deadline.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient

from shared.adapters.common import environment_configures_http, has_blob_endpoint
from shared.core.claimcheck import FORM_METADATA
from shared.core.model import StoredData
from shared.core.ports import BlobsUnavailable

log = logging.getLogger("events.blobs")


def _retry_policy() -> Any:
    """Two quick retries at fixed intervals (the SDK's default waits 15 s before the first):
    writing the same bytes under the same name again is always safe, and the publish's deadline
    bounds the whole."""
    from azure.storage.blob._shared.policies_async import LinearRetry

    return LinearRetry(backoff=0.2, retry_total=2, random_jitter_range=0)  # type: ignore[arg-type]


class StorageBlobStore:
    """Writes through one ``azure.storage.blob.aio.ContainerClient``, reused for the process."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self.container_url: str = container.url.rstrip("/")

    @classmethod
    def connect(
        cls,
        *,
        connection_string: str | None,
        account_url: str | None,
        container: str,
        credential: Any = None,
        **client_options: Any,
    ) -> StorageBlobStore | None:
        """The store of a connection string that reaches a blob service, else of an account URL
        with ``credential``; None with neither (then events too large for one queue message are
        refused with 413). Call it inside the event loop that will use the store."""
        options: dict[str, Any] = {
            "connection_timeout": 2.0,
            "read_timeout": 30.0,
            "retry_policy": _retry_policy(),
            "max_single_put_size": 4 * 1024 * 1024,  # one Put Blob for anything we accept
            "use_env_settings": environment_configures_http(),
            **client_options,
        }
        if connection_string is not None and has_blob_endpoint(connection_string):
            client = ContainerClient.from_connection_string(connection_string, container, **options)
        elif account_url is not None:
            client = ContainerClient(account_url, container, credential=credential, **options)
        else:
            return None
        return cls(client)

    def new_name(self) -> str:
        """A name no other publish uses: ``yyyy/mm/dd/<uuid>`` (UTC)."""
        return f"{datetime.now(UTC):%Y/%m/%d}/{uuid.uuid4().hex}"

    def url(self, name: str) -> str:
        return f"{self.container_url}/{name}"

    async def put(self, name: str, data: StoredData) -> None:
        """Store the data under ``name``, or raise BlobsUnavailable. No deadline of its own."""
        try:
            try:
                await self._upload(name, data)
            except ResourceNotFoundError:
                await self._create_container()
                await self._upload(name, data)
        except (AzureError, OSError) as error:
            raise BlobsUnavailable(f"{type(error).__name__}: {error}".splitlines()[0]) from None

    async def _upload(self, name: str, data: StoredData) -> None:
        await self._container.upload_blob(
            name,
            data.content,
            overwrite=True,
            content_settings=ContentSettings(content_type=data.content_type),
            metadata={FORM_METADATA: data.form},
        )

    async def _create_container(self) -> None:
        log.info("container %s does not exist; creating it", self._container.container_name)
        try:
            await self._container.create_container()
        except ResourceExistsError:
            pass  # created concurrently: fine
        except HttpResponseError as error:
            if error.status_code == 403:
                log.error(
                    "container %s does not exist and this identity may not create it; create "
                    "it (infra/ does) or grant Storage Blob Data Contributor",
                    self._container.container_name,
                )
            raise

    async def delete(self, name: str) -> None:
        """Remove data whose event was not published (best effort: the lifecycle policy removes
        what this misses)."""
        try:
            await self._container.delete_blob(name)
        except (AzureError, OSError) as error:
            log.info("could not delete unpublished data %s: %s", name, type(error).__name__)

    async def close(self) -> None:
        await self._container.close()
