"""The event sink: one Azure Storage Queue message per accepted event.

The message body is the event's compact structured JSON, Base64-encoded, which is what Azure
Functions queue triggers read by default. A send either completes or fails with
``QueueUnavailable``; the caller answers 200 only after a completed send, and decides how long to
wait for one (shared/core/delivery.py).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from shared.adapters.common import environment_configures_http, service_endpoint
from shared.adapters.storage_http import (
    STORAGE_SCOPE,
    Answer,
    AnswerLost,
    Authorization,
    BearerToken,
    NoAuthorization,
    NotReached,
    QueueSharedKey,
    StorageHttp,
)
from shared.core.ports import QueueUnavailable
from shared.subscriber import queue_names

log = logging.getLogger("events.queue")

#: Azure Storage accepts a message of at most 64 KiB, measured after Base64 encoding.
QUEUE_MESSAGE_LIMIT = 64 * 1024
#: The largest event (compact JSON, UTF-8 bytes) whose Base64 form fits in one message.
MAX_EVENT_BYTES = QUEUE_MESSAGE_LIMIT // 4 * 3

#: The Queue service's REST API version these calls are written for (Put Message and Create
#: Queue have not changed since; bearer tokens need 2017-11-09 or later).
API_VERSION = "2021-12-02"

#: Error codes that mean the credential was refused (a 403 with them, too).
_AUTHENTICATION_CODES = frozenset({"AuthenticationFailed", "InvalidAuthenticationInfo"})
_MESSAGE_START = b"<?xml version='1.0' encoding='utf-8'?>\n<QueueMessage><MessageText>"
_MESSAGE_END = b"</MessageText></QueueMessage>"

#: Connections refused (or not opened in time) are tried this often, this far apart.
CONNECT_ATTEMPTS = 3
CONNECT_RETRY_PAUSE_SECONDS = 0.1
#: The queue's error answers that mean "busy" or "failed inside" (408, 429, 5xx) are asked
#: again this often, at a fixed pause of a tenth of the answer's budget (at most 0.2 s).
STATUS_RETRIES = 3

#: How long one attempt may wait for the queue's answer. Longer than any answer's budget: the
#: pipeline stops waiting at its deadline (a 503), but the send goes on until the queue answers,
#: so that a slow or briefly frozen queue still has a definite outcome (shared/core/delivery.py).
READ_TIMEOUT_SECONDS = 30.0


#: The queues of ``EVENTS_QUEUE_NAME`` and ``EVENTS_QUEUE_PARTITIONS``: the name itself for one
#: partition, else ``<name>-0`` to ``<name>-<N-1>`` (the subscriber's helper, so both agree).
partition_queues = queue_names


class StorageQueueSink:
    """Sends to one queue or to each of the partitions' queues, through one storage HTTP client
    (shared/adapters/storage_http.py) for the process. An ``EventSink`` (shared/core/ports.py).

    Each message is the REST call Put Message, its XML body written here: the Storage SDK's
    send_message built and parsed the same XML through its model layer and a dozen pipeline
    policies, which cost more CPU than the send itself (docs/performance.md). A queue that does
    not exist is created (Create Queue) on its first send."""

    max_message_bytes = MAX_EVENT_BYTES

    def __init__(
        self, http: StorageHttp, account_url: str, destinations: Sequence[str], query: str = ""
    ) -> None:
        self._http = http
        self.destinations: Sequence[str] = list(destinations)
        account = account_url.rstrip("/")
        self._queue_urls = [f"{account}/{quote(name)}" for name in self.destinations]
        self._query = f"?{query}" if query else ""

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
        """The sink of a connection string (an account key or a shared access signature), else
        of an account URL with ``credential`` (the managed identity's), to ``queue_name`` or its
        ``partitions`` (``partition_queues``). ``client_options`` go to the storage HTTP client
        (``connection_verify``, ``connection_timeout``, ``read_timeout``, ``trust_env``; tests
        pass ``connection_verify``)."""
        options: dict[str, Any] = {
            "connection_timeout": min(2.0, budget_seconds),
            "read_timeout": READ_TIMEOUT_SECONDS,
            "trust_env": environment_configures_http(),
            **client_options,
        }
        authorization: Authorization
        query = ""
        if connection_string is not None:
            account, key, endpoint, query = service_endpoint(connection_string, "queue")
            authorization = QueueSharedKey(account, key) if key else NoAuthorization()
        else:
            assert account_url is not None
            endpoint, _, query = account_url.partition("?")
            authorization = BearerToken(credential, STORAGE_SCOPE)
            if query:
                authorization = NoAuthorization()  # an account URL with a SAS
        http = StorageHttp(
            authorization,
            headers={"x-ms-version": API_VERSION},
            status_retries=STATUS_RETRIES,
            retry_pause=min(0.2, budget_seconds / 10),
            connect_attempts=CONNECT_ATTEMPTS,
            connect_pause=CONNECT_RETRY_PAUSE_SECONDS,
            **options,
        )
        return cls(http, endpoint, partition_queues(queue_name, partitions), query)

    async def send(self, message: bytes, partition: int = 0) -> None:
        """Store the message on the queue of ``partition``, or raise QueueUnavailable. No
        deadline of its own: the caller decides how long to wait for the outcome
        (shared/core/delivery.py).

        A connection that could not be opened is tried again (the message never left); one that
        broke after the message went out is not (the queue may have stored it:
        ``QueueUnavailable.maybe_stored``)."""
        body = _MESSAGE_START + base64.b64encode(message) + _MESSAGE_END  # no XML escaping
        try:
            answer = await self._put_message(body, partition)
            if answer.status_code == 404:
                await self._create_queue(partition)
                answer = await self._put_message(body, partition)
        except NotReached as error:
            raise QueueUnavailable(str(error), maybe_stored=False) from None
        except AnswerLost as error:
            raise QueueUnavailable(str(error), maybe_stored=True) from None
        if answer.status_code != 201:
            raise QueueUnavailable(_refusal(answer), maybe_stored=False)

    async def _put_message(self, body: bytes, partition: int) -> Answer:
        """Put Message: the event's bytes Base64-encoded (what a Functions queue trigger
        decodes), in the XML body the REST API takes; 201 is stored."""
        url = f"{self._queue_urls[partition]}/messages{self._query}"
        headers = {"Content-Type": "application/xml", "Accept": "application/xml"}
        return await self._http.request("POST", url, headers, body)

    async def _create_queue(self, partition: int) -> None:
        """Create Queue: 201 made, 204 or 409 made already (concurrently: fine)."""
        name = self.destinations[partition]
        log.info("queue %s does not exist; creating it", name)
        answer = await self._http.request("PUT", f"{self._queue_urls[partition]}{self._query}")
        if answer.status_code in (201, 204, 409):
            return
        if answer.status_code == 403:
            log.error(
                "queue %s does not exist and this identity may not create it; create it "
                "(infra/ does) or grant Storage Queue Data Contributor",
                name,
            )
        raise QueueUnavailable(_refusal(answer), maybe_stored=False)

    async def close(self) -> None:
        await self._http.close()


def _refusal(answer: Answer) -> str:
    """An error answer in a line: the queue refused the credential, or answered this."""
    code = answer.headers.get("x-ms-error-code") or ""
    if answer.status_code == 401 or code in _AUTHENTICATION_CODES:
        return f"the queue refused the credential: {answer.status_code} {code}".strip()
    return f"the queue answered {answer.status_code} {code}".strip()
