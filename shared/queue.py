"""The event sink: one Azure Storage Queue message per accepted event.

The message body is the event's compact structured JSON, Base64-encoded, which is what Azure
Functions queue triggers read by default. A send either completes within its time budget
(retries included) or fails with ``QueueUnavailable``; the caller answers 200 only after a
completed send.
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.request
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.ports import QueueUnavailable

if TYPE_CHECKING:
    from shared.settings import Settings

log = logging.getLogger("events.queue")

#: Azure Storage accepts a message of at most 64 KiB, measured after Base64 encoding.
QUEUE_MESSAGE_LIMIT = 64 * 1024
#: The largest event (compact JSON, UTF-8 bytes) whose Base64 form fits in one message.
MAX_EVENT_BYTES = QUEUE_MESSAGE_LIMIT // 4 * 3


def _retry_policy(budget_seconds: float) -> Any:
    """Three short retries at fixed intervals (no jitter) that fit the budget; the SDK's
    default can hold a call for a minute."""
    from azure.storage.queue._shared.policies_async import LinearRetry

    backoff = min(0.2, budget_seconds / 10)  # seconds; the SDK's annotation says int, floats work
    return LinearRetry(backoff=backoff, retry_total=3, random_jitter_range=0)  # type: ignore[arg-type]


def environment_configures_http() -> bool:
    """True when proxy variables or a netrc file could change how the queue client connects.

    The SDK's aiohttp session honours them (``trust_env``) by looking both up again, in a thread,
    on every request: about a quarter of the function's CPU per publish (docs/performance.md).
    Without any of them that lookup always finds nothing, so it is switched off; with one, the
    SDK's default behaviour is kept.
    """
    if urllib.request.getproxies():
        return True
    return os.path.exists(os.environ.get("NETRC") or os.path.expanduser("~/.netrc"))


class StorageQueueSink:
    """Sends through one ``azure.storage.queue.aio.QueueClient``, reused for the process.
    An ``EventSink`` (shared/ports.py)."""

    max_message_bytes = MAX_EVENT_BYTES

    def __init__(self, client: QueueClient, *, timeout_seconds: float, credential: Any = None):
        self._client = client
        self._timeout = timeout_seconds
        self._credential = credential

    @classmethod
    def from_settings(cls, settings: Settings, **client_options: Any) -> StorageQueueSink:
        """Build the client; call it inside the event loop that will use it.

        ``client_options`` go to the QueueClient as well (tests pass ``connection_verify``).
        """
        budget = settings.queue_timeout_seconds
        options: dict[str, Any] = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "retry_policy": _retry_policy(budget),
            "connection_timeout": min(2.0, budget),
            "read_timeout": budget,
            "use_env_settings": environment_configures_http(),
            **client_options,
        }
        if settings.queue_connection is not None:
            client = QueueClient.from_connection_string(
                settings.queue_connection.get_secret_value(), settings.queue_name, **options
            )
            return cls(client, timeout_seconds=budget)
        # Managed identity (AZURE_CLIENT_ID selects a user-assigned one); imported only here,
        # because azure-identity is slow to import and local runs never need it.
        from azure.identity.aio import DefaultAzureCredential

        assert settings.queue_account_url is not None
        credential = DefaultAzureCredential()
        client = QueueClient(
            settings.queue_account_url, settings.queue_name, credential=credential, **options
        )
        return cls(client, timeout_seconds=budget, credential=credential)

    async def send(self, message: bytes) -> None:
        text = message.decode("utf-8")
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    await self._client.send_message(text)
                except ResourceNotFoundError:
                    await self._create_queue()
                    await self._client.send_message(text)
        except TimeoutError:
            raise QueueUnavailable(f"no confirmation within {self._timeout:g} s") from None
        except (AzureError, OSError) as error:
            raise QueueUnavailable(f"{type(error).__name__}: {error}".splitlines()[0]) from None

    async def _create_queue(self) -> None:
        log.info("queue %s does not exist; creating it", self._client.queue_name)
        try:
            await self._client.create_queue()
        except ResourceExistsError:
            pass  # created concurrently: fine
        except HttpResponseError as error:
            if error.status_code == 403:
                log.error(
                    "queue %s does not exist and this identity may not create it; create it "
                    "(infra/ does) or grant Storage Queue Data Contributor",
                    self._client.queue_name,
                )
            raise

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()
