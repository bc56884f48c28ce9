"""One small HTTP client for the storage REST calls the product makes (the records' Table service
and the events' queues): an aiohttp session, a way to authorize each request, and a short retry.

It replaces azure-core's pipeline under those two adapters. That pipeline (a dozen policies per
call, each a coroutine, request and response wrappers, and for the queue the Storage SDK's own
policy stack) cost more CPU per call than the HTTP exchange itself (docs/performance.md); what
these calls need is small and is all here:

- **Authorization**: Shared Key for the Table service (``TableSharedKey``) or for queues
  (``QueueSharedKey``), the managed identity's bearer token (``BearerToken``, kept until five
  minutes before it expires), or nothing when the URL carries a SAS (``NoAuthorization``).
- **Timeouts**: ``connection_timeout`` to open a new connection (not the wait for a free one of
  the pool's 100), and ``read_timeout`` between bytes of the answer.
- **Retries**: a connection that could not be opened is opened again (``connect_attempts``,
  ``connect_pause`` apart: nothing had left); an answer that says the service is busy or failed
  (``RETRIED_STATUSES``) is asked again ``status_retries`` times, ``retry_pause`` apart. A
  request that went out and got no answer is never sent again here: ``AnswerLost`` says the
  service may have carried it out, and the caller decides (shared/core/delivery.py,
  shared/core/idempotency.py).
- **Proxies and TLS**: ``trust_env`` (aiohttp's proxy and netrc lookup; see
  shared/adapters/common.py), and ``connection_verify`` (True, False, or a CA bundle's path).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

#: The answers asked again: the service timed the request out, is busy, or failed inside.
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: The scope of the managed identity's tokens for Azure Storage (tables, queues).
STORAGE_SCOPE = "https://storage.azure.com/.default"
#: A bearer token is renewed this long before it expires.
TOKEN_RENEWAL_SECONDS = 300.0


class NotReached(Exception):
    """The request never left: no connection could be opened (refused, unresolvable, TLS
    refused, none in time), or no credential to send it with."""


class AnswerLost(Exception):
    """The request went out, or may have, and no complete answer came back: the service may
    have carried it out."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A storage service's answer, read in full. ``headers`` match names case-insensitively."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class Authorization(Protocol):
    async def apply(self, method: str, url: str, headers: dict[str, str]) -> None:
        """Add what authorizes the request (its headers already final but for this)."""


class NoAuthorization:
    """The URLs carry a shared access signature: nothing to add."""

    async def apply(self, method: str, url: str, headers: dict[str, str]) -> None:
        return None


class TableSharedKey:
    """The Table service's Shared Key scheme (learn.microsoft.com/rest/api/storageservices/
    authorize-with-shared-key, "Table service"): HMAC-SHA256 of the verb, Content-MD5,
    Content-Type, date and canonical resource (the path, and ``comp`` when the query has it)."""

    def __init__(self, account: str, key: str) -> None:
        self._account = account
        self._key = base64.b64decode(key)

    def string_to_sign(self, method: str, url: str, headers: Mapping[str, str]) -> str:
        parts = urlsplit(url)
        resource = f"/{self._account}{parts.path}"
        if "comp=" in parts.query:
            comp = next(p for p in parts.query.split("&") if p.startswith("comp="))
            resource += "?" + comp
        return "\n".join(
            (
                method,
                headers.get("Content-MD5", ""),
                headers.get("Content-Type", ""),
                headers["x-ms-date"],
                resource,
            )
        )

    async def apply(self, method: str, url: str, headers: dict[str, str]) -> None:
        signature = _hmac(self._key, self.string_to_sign(method, url, headers))
        headers["Authorization"] = f"SharedKey {self._account}:{signature}"


#: The standard headers a queue request's Shared Key signs, in order (Content-Length and Date
#: included; the date travels as x-ms-date, which the canonical headers sign).
_QUEUE_SIGNED = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)


class QueueSharedKey:
    """The Blob and Queue services' Shared Key scheme (the same page, "Blob, Queue, and File
    services"): the verb, eleven standard headers (a Content-Length of 0 as empty), every
    ``x-ms-`` header in order, and the canonical resource with each query parameter."""

    def __init__(self, account: str, key: str) -> None:
        self._account = account
        self._key = base64.b64decode(key)

    def string_to_sign(self, method: str, url: str, headers: Mapping[str, str]) -> str:
        lower = {name.lower(): value for name, value in headers.items()}
        standard = [lower.get(name.lower(), "") for name in _QUEUE_SIGNED]
        if standard[2] == "0":
            standard[2] = ""
        canonical = "".join(
            f"{name}:{lower[name].strip()}\n" for name in sorted(lower) if name.startswith("x-ms-")
        )
        parts = urlsplit(url)
        resource = f"/{self._account}{parts.path}"
        query: dict[str, list[str]] = {}
        for pair in filter(None, parts.query.split("&")):
            name, _, value = pair.partition("=")
            query.setdefault(unquote(name).lower(), []).append(unquote(value))
        for name in sorted(query):
            resource += f"\n{name}:{','.join(sorted(query[name]))}"
        return "\n".join((method, *standard)) + "\n" + canonical + resource

    async def apply(self, method: str, url: str, headers: dict[str, str]) -> None:
        signature = _hmac(self._key, self.string_to_sign(method, url, headers))
        headers["Authorization"] = f"SharedKey {self._account}:{signature}"


class BearerToken:
    """A token credential's bearer token for ``scope`` (the managed identity's, from
    azure-identity), fetched once and renewed ``TOKEN_RENEWAL_SECONDS`` before it expires; one
    fetch at a time. A credential that gives no token raises ``NotReached``: nothing was sent."""

    def __init__(self, credential: Any, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._token: Any = None
        self._lock: asyncio.Lock | None = None

    def _fresh(self) -> bool:
        token = self._token
        return token is not None and token.expires_on - time.time() > TOKEN_RENEWAL_SECONDS

    async def apply(self, method: str, url: str, headers: dict[str, str]) -> None:
        if not self._fresh():
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if not self._fresh():
                    try:
                        self._token = await self._credential.get_token(self._scope)
                    except Exception as error:  # azure-identity's errors, and its transport's
                        if self._token is None or self._token.expires_on <= time.time():
                            raise NotReached(f"no token for storage: {describe(error)}") from None
                        # the renewal failed, but the token still holds for now
        headers["Authorization"] = f"Bearer {self._token.token}"


def _hmac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _first_line(error: BaseException) -> str:
    return (str(error) or type(error).__name__).splitlines()[0][:200]


def describe(error: BaseException) -> str:
    """An exception as one short line: its type's name and its first line."""
    return f"{type(error).__name__}: {_first_line(error)}"


class StorageHttp:
    """Sends storage REST requests; see the module docstring. The aiohttp session is made on
    the first request, inside the event loop that uses it, and ``close`` closes it."""

    def __init__(
        self,
        authorization: Authorization,
        *,
        headers: Mapping[str, str],
        connection_timeout: float,
        read_timeout: float,
        status_retries: int,
        retry_pause: float,
        connect_attempts: int = 3,
        connect_pause: float = 0.1,
        trust_env: bool = False,
        connection_verify: bool | str = True,
    ) -> None:
        self._authorization = authorization
        self._headers = dict(headers)
        # a new connection's opening is timed, not the wait for a free one (the caller's deadline
        # bounds that, shared/core/delivery.py): a send queued behind others is not unreached
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connection_timeout, sock_read=read_timeout
        )
        self._status_retries = status_retries
        self._retry_pause = retry_pause
        self._connect_attempts = connect_attempts
        self._connect_pause = connect_pause
        self._trust_env = trust_env
        self._ssl: ssl.SSLContext | bool = True
        if isinstance(connection_verify, str):
            self._ssl = ssl.create_default_context(cafile=connection_verify)
        elif not connection_verify:
            self._ssl = False
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=self._timeout,
                trust_env=self._trust_env,
                # signed requests carry only the headers given: aiohttp's default Content-Type
                # (on a PUT without a body) would be sent unsigned; nothing is asked compressed
                skip_auto_headers=("Content-Type", "Accept-Encoding"),
                auto_decompress=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Answer:
        """The service's answer to one request (any status), or ``NotReached`` (no attempt
        left: nothing was sent) or ``AnswerLost`` (the service may have carried it out)."""
        answer = await self._connected(method, url, headers, body)
        for _ in range(self._status_retries):
            if answer.status_code not in RETRIED_STATUSES:
                break
            await asyncio.sleep(self._retry_pause)
            answer = await self._connected(method, url, headers, body)
        return answer

    async def _connected(
        self, method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> Answer:
        for attempt in range(self._connect_attempts):
            try:
                return await self._once(method, url, headers, body)
            except NotReached:
                if attempt == self._connect_attempts - 1:
                    raise
            await asyncio.sleep(self._connect_pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self, method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> Answer:
        sent = {**self._headers, **(headers or {})}
        sent["x-ms-date"] = formatdate(usegmt=True)
        if body:
            sent["Content-Length"] = str(len(body))
        await self._authorization.apply(method, url, sent)
        try:
            async with self._session_now().request(
                method, url, data=body, headers=sent, allow_redirects=False
            ) as response:
                content = await response.read()
                return Answer(response.status, response.headers, content)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
            raise NotReached(describe(error)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise AnswerLost(describe(error)) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
