"""The event sink: one Azure Storage Queue message per accepted event.

The message body is the event's compact structured JSON, Base64-encoded, which is what Azure
Functions queue triggers read by default. A send either completes or fails with
``QueueUnavailable``; the caller answers 200 only after a completed send, and decides how long to
wait for one (shared/core/delivery.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.rest import HttpRequest
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.adapters.common import environment_configures_http
from shared.core.ports import QueueUnavailable
from shared.subscriber import queue_names

log = logging.getLogger("events.queue")

#: Azure Storage accepts a message of at most 64 KiB, measured after Base64 encoding.
QUEUE_MESSAGE_LIMIT = 64 * 1024
#: The largest event (compact JSON, UTF-8 bytes) whose Base64 form fits in one message.
MAX_EVENT_BYTES = QUEUE_MESSAGE_LIMIT // 4 * 3


#: Error codes the SDK raises as ClientAuthenticationError (a 403 with them, too).
_AUTHENTICATION_CODES = frozenset({"AuthenticationFailed", "InvalidAuthenticationInfo"})
_MESSAGE_START = b"<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>"
_MESSAGE_END = b"</MessageText></QueueMessage>"

#: Connections refused (or not opened in time) are tried this often, this far apart.
CONNECT_ATTEMPTS = 3
CONNECT_RETRY_PAUSE_SECONDS = 0.1


def _maybe_stored(error: BaseException) -> bool:
    """Whether the queue may have stored a message despite ``error``: true unless the request
    never reached it (the connection was not opened) or it answered with an error."""
    if isinstance(error, HttpResponseError):
        return False  # the queue answered: it says what happened
    if isinstance(error, ServiceRequestError):
        inner = getattr(error, "inner_exception", None) or error.__cause__
        return not isinstance(inner, aiohttp.ClientConnectorError | ConnectionRefusedError)
    return True


#: How long one attempt may wait for the queue's answer. Longer than any answer's budget: the
#: pipeline stops waiting at its deadline (a 503), but the send goes on until the queue answers,
#: so that a slow or briefly frozen queue still has a definite outcome (shared/core/delivery.py).
READ_TIMEOUT_SECONDS = 30.0


def _retry_policy(budget_seconds: float) -> Any:
    """Three short retries at fixed intervals (no jitter), for failures before the request
    reached the queue (connecting) and for the queue's own error answers. Never after a request
    went out unanswered: a second Put Message could store the event twice."""
    from azure.storage.queue._shared.policies_async import LinearRetry

    backoff = min(0.2, budget_seconds / 10)  # seconds; the SDK's annotation says int, floats work
    return LinearRetry(
        backoff=backoff,  # type: ignore[arg-type]
        retry_total=3,
        random_jitter_range=0,
        retry_read=0,
        retry_connect=0,  # azure-core counts a connection cut after sending as one: see send()
    )


#: The queues of ``EVENTS_QUEUE_NAME`` and ``EVENTS_QUEUE_PARTITIONS``: the name itself for one
#: partition, else ``<name>-0`` to ``<name>-<N-1>`` (the subscriber's helper, so both agree).
partition_queues = queue_names


class StorageQueueSink:
    """Sends through one ``azure.storage.queue.aio.QueueClient``, reused for the process, to
    one queue or to each of the partitions' queues. An ``EventSink`` (shared/core/ports.py).

    Each message is sent as the REST call Put Message through the client's own pipeline (its
    credential, retry, headers and tracing policies), its XML body written here: the SDK's
    generated operation built and parsed the same XML through its model layer, which cost about
    half of each send's CPU (docs/performance.md). A queue that does not exist is created
    (Create Queue) on its first send; the same pipeline reaches every partition's queue."""

    max_message_bytes = MAX_EVENT_BYTES

    def __init__(self, client: QueueClient, destinations: list[str] | None = None) -> None:
        self._client = client
        self.destinations: Sequence[str] = destinations or [client.queue_name]
        base, mark, query = client.url.partition("?")  # a SAS, when the client has one
        account = base.rsplit("/", 1)[0]
        self._queue_urls = [f"{account}/{quote(name)}" for name in self.destinations]
        self._query = f"{mark}{query}"
        self._headers = {
            "Content-Type": "application/xml",
            "Accept": "application/xml",
            "x-ms-version": client.api_version,
        }
        self._pipeline: Any = client._pipeline  # the client's own policies (a private name)

    @classmethod
    def connect(
        cls,
        *,
        connection_string: str | None,
        account_url: str | None,
        queue_name: str,
        budget_seconds: float,
        credential: Any = None,
        partitions: int = 1,
        **client_options: Any,
    ) -> StorageQueueSink:
        """The sink of a connection string, else of an account URL with ``credential`` (the
        managed identity's), to ``queue_name`` or its ``partitions`` (``partition_queues``).
        Call it inside the event loop that will use it. ``client_options`` go to the
        QueueClient as well (tests pass ``connection_verify``)."""
        options: dict[str, Any] = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "retry_policy": _retry_policy(budget_seconds),
            "connection_timeout": min(2.0, budget_seconds),
            "read_timeout": READ_TIMEOUT_SECONDS,
            "use_env_settings": environment_configures_http(),
            **client_options,
        }
        names = partition_queues(queue_name, partitions)
        if connection_string is not None:
            client = QueueClient.from_connection_string(connection_string, names[0], **options)
        else:
            assert account_url is not None
            client = QueueClient(account_url, names[0], credential=credential, **options)
        return cls(client, names)

    async def send(self, message: bytes, partition: int = 0) -> None:
        """Store the message on the queue of ``partition``, or raise QueueUnavailable. No
        deadline of its own: the caller decides how long to wait for the outcome
        (shared/core/delivery.py).

        A connection that could not be opened is tried again (the message never left); one that
        broke after the message went out is not (the queue may have stored it:
        ``QueueUnavailable.maybe_stored``)."""
        text = message.decode("utf-8")
        try:
            for attempt in range(CONNECT_ATTEMPTS):
                try:
                    await self._send(text, partition)
                    return
                except ServiceRequestError as error:
                    if _maybe_stored(error) or attempt == CONNECT_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(CONNECT_RETRY_PAUSE_SECONDS)
        except (AzureError, OSError) as error:
            raise QueueUnavailable(
                f"{type(error).__name__}: {error}".splitlines()[0],
                maybe_stored=_maybe_stored(error),
            ) from None

    async def _send(self, text: str, partition: int) -> None:
        try:
            await self._put_message(text, partition)
        except ResourceNotFoundError:
            await self._create_queue(partition)
            await self._put_message(text, partition)
        except (AzureError, OSError) as error:
            raise QueueUnavailable(
                f"{type(error).__name__}: {error}".splitlines()[0],
                maybe_stored=_maybe_stored(error),
            ) from None

    async def _put_message(self, text: str, partition: int) -> None:
        """Put Message: the text Base64-encoded (what a Functions queue trigger decodes), in the
        XML body the REST API takes; 201 is stored, anything else raises as the SDK would
        (ResourceNotFoundError for a missing queue, ClientAuthenticationError for a credential
        refused, else HttpResponseError, naming the status and the error code)."""
        encoded = base64.b64encode(text.encode("utf-8"))
        body = _MESSAGE_START + encoded + _MESSAGE_END  # Base64 needs no XML escaping
        url = f"{self._queue_urls[partition]}/messages{self._query}"
        request = HttpRequest("POST", url, headers=self._headers, content=body)
        answer = await self._pipeline.run(request)
        response = answer.http_response
        if response.status_code == 201:
            return
        _raise_for(response)

    async def _create_queue(self, partition: int) -> None:
        """Create Queue: 201 made, 204 or 409 made already (concurrently: fine)."""
        name = self.destinations[partition]
        log.info("queue %s does not exist; creating it", name)
        headers = {"x-ms-version": self._client.api_version}
        url = f"{self._queue_urls[partition]}{self._query}"
        answer = await self._pipeline.run(HttpRequest("PUT", url, headers=headers))
        response = answer.http_response
        if response.status_code in (201, 204, 409):
            return
        if response.status_code == 403:
            log.error(
                "queue %s does not exist and this identity may not create it; create it "
                "(infra/ does) or grant Storage Queue Data Contributor",
                name,
            )
        _raise_for(response)

    async def close(self) -> None:
        await self._client.close()


def _raise_for(response: Any) -> None:
    """An error answer, raised as the SDK raises it (see ``StorageQueueSink._put_message``)."""
    code = response.headers.get("x-ms-error-code") or ""
    error = HttpResponseError
    if response.status_code == 401 or code in _AUTHENTICATION_CODES:
        error = ClientAuthenticationError
    elif response.status_code == 404:
        error = ResourceNotFoundError
    raise error(message=f"the queue answered {response.status_code} {code}", response=response)
