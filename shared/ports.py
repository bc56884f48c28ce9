"""The ports: what the core needs from the outside, as Protocols, and the errors they may raise.

Adapters (tokens.py, oidc.py, registry.py, queue.py, ...) implement these and import from here;
the core (authorization.py, publish.py) depends on nothing else of theirs.

Every "cannot reach a dependency" error is an ``Unavailable``: the pipeline maps all of them to a
503 with ``Retry-After`` by one rule, naming the dependency.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol

from shared.model import Lookup, PolicyRule, Publisher, Reservation, StoredData


class Unavailable(Exception):
    """A dependency gave no answer we can trust in time; nothing was published."""

    #: Which dependency: "issuer", "registry", "queue", ...
    dependency: ClassVar[str] = "dependency"


class KeysUnavailable(Unavailable):
    """The issuer's keys have never been fetched and cannot be fetched now."""

    dependency = "issuer"


class RegistryUnavailable(Unavailable):
    """The registry gave no answer we can trust (unreachable, slow, 5xx, not its contract)."""

    dependency = "registry"


class QueueUnavailable(Unavailable):
    """The message was not confirmed stored. ``maybe_stored``: the connection broke after the
    message went out, so the queue may have stored it (nobody can tell)."""

    dependency = "queue"

    def __init__(self, reason: str, *, maybe_stored: bool = False) -> None:
        super().__init__(reason)
        self.maybe_stored = maybe_stored


class MissingToken(Exception):
    """No bearer token was sent."""


class InvalidToken(Exception):
    """A token was sent but cannot be trusted. ``str()`` says why, in a publisher's terms."""


class TooManyLookups(Exception):
    """This publisher has made the endpoint ask the registry about too many new resources."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"lookup budget spent; next lookup in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Publisher:
        """The verified publisher of an ``Authorization`` header value.

        Raises MissingToken, InvalidToken, or KeysUnavailable (the issuer cannot be reached).
        """
        ...


class RuleSource(Protocol):
    async def rules_for(self, identifier: str) -> tuple[PolicyRule, ...] | None:
        """The resource's rules; None when the registry does not know the resource (404).

        Raises RegistryUnavailable for anything that is not a clean answer.
        """
        ...


class PolicyLookup(Protocol):
    async def lookup(self, identifier: str, *, requester: str | None = None) -> Lookup:
        """A resource's rules and how they were found.

        Raises RegistryUnavailable when unknowable, TooManyLookups when ``requester`` may not
        cause another registry call yet.
        """
        ...


class EventSink(Protocol):
    #: The largest message (UTF-8 bytes of the event's JSON) one ``send`` can store.
    max_message_bytes: int
    #: Where messages go (the queue's name), for telemetry.
    destination: str

    async def send(self, message: bytes) -> None:
        """Store one message durably, or raise QueueUnavailable."""
        ...

    async def close(self) -> None: ...


class RegistryCredentials(Protocol):
    async def headers(self) -> Mapping[str, str]:
        """Headers to add to a registry call; RegistryUnavailable when they cannot be had."""
        ...


class RecordsUnavailable(Unavailable):
    """The store of published events' identities (for de-duplication) could not be reached."""

    dependency = "records"


class BlobsUnavailable(Unavailable):
    """The store for large events' data could not be reached."""

    dependency = "blobs"


class PublishRecords(Protocol):
    """What was published under an event's identity lately (idempotent publish). Keys and
    fingerprints are opaque strings (hex digests) the core makes (shared/idempotency.py)."""

    async def reserve(self, key: str, fingerprint: str) -> Reservation:
        """Claim ``key`` for the content ``fingerprint``; raises RecordsUnavailable."""
        ...

    async def commit(self, key: str) -> None:
        """The event claimed under ``key`` is on the queue."""
        ...

    async def release(self, key: str) -> None:
        """The event claimed under ``key`` was not published: forget the claim."""
        ...

    async def close(self) -> None: ...


class BlobStore(Protocol):
    """Where the data of events too large for one queue message goes (the claim check)."""

    def new_name(self) -> str:
        """A name for one event's data that no other publish uses."""
        ...

    def url(self, name: str) -> str:
        """The URL the queued event's ``dataref`` gives for ``name``."""
        ...

    async def put(self, name: str, data: StoredData) -> None:
        """Store the data under ``name``; raises BlobsUnavailable."""
        ...

    async def delete(self, name: str) -> None:
        """Remove data whose event was not published (best effort, never raises)."""
        ...

    async def close(self) -> None: ...
