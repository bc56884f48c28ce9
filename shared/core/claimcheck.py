"""The claim check's writing half: which events travel as a reference to their data, what their
blob holds, and why an event over one queue message cannot (each reason its own 413). The format
is the reading half's (shared/subscriber.py, which subscribers copy): its names are used here.

An event whose queue message would exceed the queue's limit, up to ``max_event_bytes``, has its
data stored as a blob and is queued without ``data``/``data_base64``, with ``dataref`` naming the
blob. It cannot be when there is no blob store, when it carries its own ``dataref`` as well as
data, or when its attributes alone do not fit in one message. A publisher's own ``dataref`` is an
``https`` URL or a relative reference, and must not point into this endpoint's container.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.cloudevents import DATA, DATA_BASE64, CloudEvent
from shared.cloudevents.attributes import is_json_media_type
from shared.core import problems
from shared.core.model import ClaimCheck, StoredData
from shared.core.ports import BlobStore
from shared.core.problems import Rejected
from shared.subscriber import DATAREF, FORM_METADATA, blob_in, has_data

__all__ = [
    "DATAREF",
    "FORM_METADATA",
    "check_dataref",
    "has_data",
    "plan",
    "stored_data",
    "with_reference",
]

#: Why an event over one queue message cannot have a claim check (the 413's detail goes on).
NO_BLOB_SERVICE = (
    "this deployment has no storage for larger events' data (no blob service configured). "
    "Make 'data' smaller, or publish a reference to the payload ('dataref') instead."
)
OWN_DATAREF = (
    "it carries its own 'dataref' as well as data: storing the data by reference would replace "
    "that 'dataref'. Send the data by reference only ('dataref' without data), or less data."
)
ATTRIBUTES_TOO_LARGE = (
    "its attributes alone do not fit in one message (only the data can be stored by "
    "reference). Make the attributes smaller."
)
DATAREF_SCHEMES = (
    "must be an https URL (or a reference relative to your own base, without a host): a "
    "subscriber follows it to your data, so other schemes (http, file, javascript, ...) are "
    "not accepted."
)
FOREIGN_DATAREF = (
    "must not point into this endpoint's own storage for large events' data; a 'dataref' of "
    "your own names where your data is."
)


def stored_data(members: Mapping[str, Any], encode_json: Callable[[Any], bytes]) -> StoredData:
    """The exact bytes of an event's data, and how to read them back. ``encode_json`` is the
    endpoint's compact JSON encoder (the one its queue messages use)."""
    content_type = members.get("datacontenttype")
    if DATA_BASE64 in members:
        content = base64.b64decode(members[DATA_BASE64], validate=True)
        return StoredData(content, content_type or "application/octet-stream", DATA_BASE64)
    data = members[DATA]
    if is_json_media_type(content_type):
        return StoredData(encode_json(data), content_type or "application/json", DATA)
    assert isinstance(data, str), "validation allows only strings with a non-JSON type"
    return StoredData(data.encode("utf-8"), content_type or "text/plain", DATA)


def with_reference(members: Mapping[str, Any], dataref: str) -> dict[str, Any]:
    """The event's members as queued: no data, and ``dataref`` naming the blob."""
    kept = {name: value for name, value in members.items() if name not in (DATA, DATA_BASE64)}
    kept[DATAREF] = dataref
    return kept


def check_dataref(event: CloudEvent, blobs: BlobStore | None) -> None:
    """A publisher's own ``dataref`` is an ``https`` URL or a relative reference without a host
    (the forms a subscriber can follow safely: no ``file:``, ``javascript:``, or cleartext
    ``http:``), and never points into this endpoint's container, however it is spelled
    (shared/subscriber.py, ``blob_in``): 400."""
    dataref = event.members.get(DATAREF)
    if not isinstance(dataref, str):
        return
    if blobs is not None and blob_in(dataref, blobs.url("")) is not None:
        raise Rejected(problems.invalid_event({DATAREF: (FOREIGN_DATAREF,)}))
    parts = urlsplit(dataref)
    if parts.scheme.lower() not in ("", "https") or (not parts.scheme and parts.netloc):
        raise Rejected(problems.invalid_event({DATAREF: (DATAREF_SCHEMES,)}))


def plan(
    event: CloudEvent,
    unadorned: bytes,
    *,
    blobs: BlobStore | None,
    message_limit: int,
    max_event_bytes: int,
    serialize: Callable[[CloudEvent], bytes],
    encode_json: Callable[[Any], bytes],
) -> tuple[bytes, ClaimCheck]:
    """An event over one queue message: its message with ``dataref`` (``serialize`` writes it,
    the trace context included) and the claim check that stores its data, or the 413 that says
    why it cannot be. ``unadorned`` is the event as sent (its compact JSON, without the trace
    context): what the limits measure."""
    size = len(unadorned)
    if size > max_event_bytes:
        raise Rejected(problems.event_too_large(max_event_bytes, size))
    members = event.members
    if blobs is None:
        raise Rejected(problems.event_too_large_for_queue(message_limit, size, NO_BLOB_SERVICE))
    if DATAREF in members:
        raise Rejected(problems.event_too_large_for_queue(message_limit, size, OWN_DATAREF))
    if not has_data(members):
        raise Rejected(
            problems.event_too_large_for_queue(message_limit, size, ATTRIBUTES_TOO_LARGE)
        )
    name = blobs.new_name()
    message = serialize(CloudEvent(with_reference(members, blobs.url(name))))
    if len(message) > message_limit:
        raise Rejected(
            problems.event_too_large_for_queue(message_limit, size, ATTRIBUTES_TOO_LARGE)
        )
    return message, ClaimCheck(name, stored_data(members, encode_json))
