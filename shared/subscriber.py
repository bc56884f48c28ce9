"""What a subscriber needs to read a queued event back, with the data of a large one: a helper
subscribers may copy whole, for it needs only the standard library (and ``azure-storage-blob``
for ``blob_fetcher``, imported only there). It imports nothing else of this project, and is the
format's one description: the endpoint's writing half (shared/core/claimcheck.py) uses its names.

An event too large for one queue message travels as a reference to its data (the claim check).
The publish endpoint stores such an event's data as a blob and queues the event without
``data`` or ``data_base64``, with the CloudEvents ``dataref`` extension attribute (a URL)
naming the blob; ``datacontenttype`` stays. The blob holds exactly the data's bytes:

- ``data`` with a JSON ``datacontenttype`` (or none): the data's compact JSON;
- ``data`` with any other ``datacontenttype`` (then always a string): the string as UTF-8;
- ``data_base64``: the decoded bytes.

The blob's metadata ``cedataform`` says which member the bytes came from (``data`` or
``data_base64``), so that reading the event back gives exactly the event that was published.

**Reading an event back**::

    from shared.subscriber import blob_fetcher, restore_event

    fetch = blob_fetcher(DefaultAzureCredential())       # Storage Blob Data Reader on the container
    event = restore_event(message, fetch, container_url="https://<account>.blob.core.windows.net/events-data")

``restore_event`` returns the queued event as a dict, with its data back in place of our
``dataref`` when the event was claim-checked and unchanged when it was not (also when its
publisher sent a ``dataref`` of their own, which points elsewhere). ``restore_event_async`` is the
same with an async fetch.

**Queue partitions.** With ``EVENTS_QUEUE_PARTITIONS`` = N > 1 the events are spread over N
queues; ``queue_names`` names them, and a subscriber reads every one (docs/deploy.md, "Queue
partitions": one queue trigger per partition).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import posixpath
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

#: The JSON format's data members (as shared/cloudevents/event.py names them).
DATA = "data"
DATA_BASE64 = "data_base64"
DATAREF = "dataref"
#: The blob metadata naming the member the blob's bytes belong in: "data" or "data_base64".
FORM_METADATA = "cedataform"


def queue_names(queue_name: str, partitions: int = 1) -> list[str]:
    """The queues a subscriber reads: ``EVENTS_QUEUE_NAME`` itself, or with
    ``EVENTS_QUEUE_PARTITIONS`` = N > 1 each of ``<name>-0`` to ``<name>-<N-1>`` (every event is
    on exactly one of them; the order of events across queues is not kept)."""
    if partitions <= 1:
        return [queue_name]
    return [f"{queue_name}-{number}" for number in range(partitions)]


def is_json_media_type(media_type: str | None) -> bool:
    """JSON per the CloudEvents JSON format: absent, or ``*/json`` or ``*/*+json`` (the same rule
    as shared/cloudevents/attributes.py's, which tests/unit/test_claimcheck.py keeps in step)."""
    if media_type is None:
        return True
    essence = media_type.split(";", 1)[0].strip().lower()
    return essence.endswith("/json") or essence.endswith("+json")


def has_data(members: Mapping[str, Any]) -> bool:
    return DATA in members or DATA_BASE64 in members


def restored(event: Mapping[str, Any], content: bytes, form: str) -> dict[str, Any]:
    """The event with its data back from the blob's ``content``, and without our ``dataref``."""
    members = {name: value for name, value in event.items() if name != DATAREF}
    if form == DATA_BASE64:
        members[DATA_BASE64] = base64.b64encode(content).decode("ascii")
    elif form == DATA and is_json_media_type(event.get("datacontenttype")):
        members[DATA] = json.loads(content)
    elif form == DATA:
        members[DATA] = content.decode("utf-8")
    else:
        raise ValueError(f"unknown {FORM_METADATA} {form!r} on the event's data")
    return members


def read_message(message: str | bytes) -> dict[str, Any]:
    """A queue message's event: JSON, or Base64 of JSON (what the endpoint sends)."""
    text = message.decode("utf-8") if isinstance(message, bytes) else message
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        try:
            stripped = base64.b64decode(stripped, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as error:
            raise ValueError("the message is neither JSON nor Base64 of JSON") from error
    event = json.loads(stripped)
    if not isinstance(event, dict):
        raise ValueError("the message is not one event (a JSON object)")
    return event


def blob_in(reference: str, container_url: str) -> str | None:
    """Where ``reference`` points in the container at ``container_url``: that blob's URL,
    written from the container's own URL; None when it points anywhere else.

    Compared as the storage service will read it, not as spelled: the scheme and the host
    without regard to case, a host's trailing dot and user information ignored, a numeric host
    (``0x7f000001``, ``127.1``) as the address it names, the account's private-link name as the
    account's, the default port of the scheme,
    percent-escapes decoded, ``.`` and ``..`` segments resolved, repeated and back slashes as
    one slash, and the container's name without regard to case."""
    target, container = _location(reference), _location(container_url)
    if target is None or container is None or target[:2] != container[:2]:
        return None
    path, prefix = target[2], container[2].rstrip("/") + "/"
    if not path.lower().startswith(prefix.lower()) or len(path) == len(prefix):
        return None
    return container_url.rstrip("/") + "/" + quote(path[len(prefix) :], safe="/")


def _location(url: str) -> tuple[str, int | None, str] | None:
    """(host, port, path) of an absolute http(s) URL as a server reads it; None for others."""
    try:
        parts = urlsplit(url.strip().replace("\\", "/"))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = unquote(parts.hostname).rstrip(".")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    with contextlib.suppress(OSError):  # 0x7f000001, 2130706433, 127.1: the address they name
        host = socket.inet_ntoa(socket.inet_aton(host))
    host = _PRIVATE_LINK.sub(r"\1.", host)  # <account>.privatelink.blob...: the same account
    if port is None or port == _DEFAULT_PORTS[parts.scheme.lower()]:
        port = None
    path = posixpath.normpath("/" + re.sub("/+", "/", unquote(parts.path)))
    return host, port, re.sub("/+", "/", path)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_PRIVATE_LINK = re.compile(r"^([^.]+)\.privatelink\.")


def claim_checked(event: Mapping[str, Any], container_url: str) -> str | None:
    """Our blob's URL when the event's data was claim-checked into ``container_url``; None
    otherwise (no ``dataref``, data present, or a ``dataref`` that points anywhere else: a
    subscriber follows only references into its own container)."""
    reference = event.get(DATAREF)
    if not isinstance(reference, str) or has_data(event):
        return None
    return blob_in(reference, container_url)


#: Fetches a blob by URL: its content and its metadata.
Fetch = Callable[[str], tuple[bytes, Mapping[str, str]]]
AsyncFetch = Callable[[str], Awaitable[tuple[bytes, Mapping[str, str]]]]


def restore_event(message: str | bytes, fetch: Fetch, *, container_url: str) -> dict[str, Any]:
    """The queued event with its data restored, whether or not it was claim-checked."""
    event = read_message(message)
    url = claim_checked(event, container_url)
    if url is None:
        return event
    content, metadata = fetch(url)
    return restored(event, content, metadata.get(FORM_METADATA, DATA))


async def restore_event_async(
    message: str | bytes, fetch: AsyncFetch, *, container_url: str
) -> dict[str, Any]:
    """``restore_event`` with an async fetch."""
    event = read_message(message)
    url = claim_checked(event, container_url)
    if url is None:
        return event
    content, metadata = await fetch(url)
    return restored(event, content, metadata.get(FORM_METADATA, DATA))


def blob_fetcher(credential: Any = None, **client_options: Any) -> Fetch:
    """A fetch that downloads with azure-storage-blob (``credential``: a token credential such
    as ``DefaultAzureCredential()``, or an account key; None for a URL with a SAS)."""
    from azure.storage.blob import BlobClient

    def fetch(url: str) -> tuple[bytes, Mapping[str, str]]:
        with BlobClient.from_blob_url(url, credential=credential, **client_options) as blob:
            download = blob.download_blob()
            return download.readall(), download.properties.metadata or {}

    return fetch
