"""Idempotent publish: an event's identity and its content, as the record store keys them.

An event's identity is (publisher, ``source``, ``id``), where the publisher is the stable
identity of the token (its org code, else its organisation number, else its subject), so that no
publisher can block another's ids. Both are hashed: ids and sources are arbitrary strings, and
table keys forbid ``/ \\ # ?`` and control characters and are limited to 1 KiB.

"The same content" is the event as the endpoint parsed it, every attribute and the data,
whatever the content mode: its canonical queue message (shared/cloudevents/jsonformat.py writes
one member order for every mode) before the endpoint adds anything of its own.
"""

from __future__ import annotations

import hashlib

from shared.model import CloudEvent, Publisher

_SEPARATOR = "\x1f"  # a control character: never part of a valid source or id


def publisher_identity(publisher: Publisher) -> str:
    """The token's stable identity, with its issuer: the same org at two issuers is one."""
    return (
        publisher.org
        or publisher.org_number
        or publisher.consumer_org_number
        or (f"{publisher.issuer}{_SEPARATOR}{publisher.subject or ''}")
    )


def record_key(publisher: Publisher, event: CloudEvent) -> str:
    """The key of an event's identity: a SHA-256 hex digest (64 characters)."""
    identity = _SEPARATOR.join((publisher_identity(publisher), event.source, event.id))
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(message: bytes) -> str:
    """The content's digest: the canonical queue message, before trace context and dataref."""
    return hashlib.sha256(message).hexdigest()
