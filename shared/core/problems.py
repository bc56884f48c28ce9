"""RFC 9457 problem details, and the catalog of every problem ``POST /events`` returns.

Each problem type has a stable ``type`` URN a client can switch on, a fixed ``title`` and a
``detail`` that names the fix. ``docs/errors.md`` lists the same catalog with example bodies; a
unit test keeps the two in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shared.cloudevents import InvalidEvent
from shared.cloudevents.attributes import ATTRIBUTE_NAME
from shared.cloudevents.http import BATCH_JSON, PLAIN_JSON, STRUCTURED_JSON
from shared.core.altinn import REQUEST_BODY, reference_errors
from shared.core.ports import (
    BlobsUnavailable,
    InvalidToken,
    KeysUnavailable,
    MissingToken,
    QueueUnavailable,
    RecordsUnavailable,
    RegistryUnavailable,
    Unavailable,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:altinn:events:problem:"
ACCEPTED_CONTENT_TYPES = (STRUCTURED_JSON, BATCH_JSON, PLAIN_JSON)

#: Retry-After for 503s, in seconds. Short: most outages we see are brief and publishers queue.
RETRY_AFTER_SECONDS = 5
#: A 400 lists at most this many attributes, names and messages cut to these lengths.
MAX_REPORTED_ATTRIBUTES = 50
MAX_REPORTED_NAME_CHARACTERS = 100
MAX_MESSAGE_CHARACTERS = 500
#: Longest ``error_description`` in a ``WWW-Authenticate`` header.
MAX_AUTH_PARAM_CHARACTERS = 200


class ProblemType(Enum):
    """Every kind of problem, with its HTTP status and fixed title."""

    METHOD_NOT_ALLOWED = (405, "Method not allowed")
    INVALID_PARAMETER = (400, "Invalid query parameter")
    MISSING_TOKEN = (401, "Authentication required")
    INVALID_TOKEN = (401, "Invalid token")
    INSUFFICIENT_SCOPE = (403, "Insufficient scope")
    UNSUPPORTED_MEDIA_TYPE = (415, "Unsupported media type")
    BODY_TOO_LARGE = (413, "Request body too large")
    BATCH_TOO_LARGE = (413, "Too many events in the batch")
    EVENT_TOO_LARGE = (413, "Event too large for the queue")
    INVALID_EVENT = (400, "One or more validation errors occurred.")
    NOT_AUTHORIZED_FOR_RESOURCE = (403, "Not authorized to publish on this resource")
    DUPLICATE_EVENT_ID = (409, "Event id already used for other content")
    PUBLISH_IN_PROGRESS = (409, "The same event is being published")
    TOO_MANY_RESOURCE_LOOKUPS = (429, "Too many new resources")
    REGISTRY_UNAVAILABLE = (503, "Resource Registry unavailable")
    ISSUER_UNAVAILABLE = (503, "Token issuer unavailable")
    QUEUE_UNAVAILABLE = (503, "Event queue unavailable")
    RECORDS_UNAVAILABLE = (503, "Event records unavailable")
    BLOBS_UNAVAILABLE = (503, "Event data storage unavailable")
    BATCH_TIMEOUT = (503, "The batch ran out of time")
    INTERNAL_ERROR = (500, "Internal error")

    def __init__(self, status: int, title: str) -> None:
        self.status = status
        self.title = title

    @property
    def slug(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem occurrence: what went wrong, and the response headers that go with it."""

    kind: ProblemType
    detail: str
    errors: Mapping[str, tuple[str, ...]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: How many attributes with problems ``errors`` leaves out (see ``invalid_event``).
    omitted_errors: int = 0

    @property
    def status(self) -> int:
        return self.kind.status

    def as_dict(
        self, *, instance: str | None = None, trace_id: str | None = None
    ) -> dict[str, Any]:
        """The problem document; without ``instance`` and ``traceId`` inside a batch's answer."""
        body: dict[str, Any] = {
            "type": self.kind.uri,
            "title": self.kind.title,
            "status": self.kind.status,
            "detail": self.detail,
        }
        if instance is not None:
            body["instance"] = instance
        if trace_id is not None:
            body["traceId"] = trace_id
        if self.errors is not None:
            body["errors"] = {name: list(messages) for name, messages in self.errors.items()}
        if self.omitted_errors:
            body["omittedErrors"] = self.omitted_errors
        return body

    def to_json(self, *, instance: str, trace_id: str) -> bytes:
        body = self.as_dict(instance=instance, trace_id=trace_id)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _quote_param(text: str) -> str:
    """A value for an auth-param quoted-string: RFC 6750 forbids '"' and '\\' in it. Cut to
    ``MAX_AUTH_PARAM_CHARACTERS``: a header is no place to echo what a caller sent at length."""
    allowed = "".join(ch for ch in text if ch not in '"\\' and 0x20 <= ord(ch) < 0x7F)
    if len(allowed) <= MAX_AUTH_PARAM_CHARACTERS:
        return allowed
    return allowed[: MAX_AUTH_PARAM_CHARACTERS - 3] + "..."


def method_not_allowed(method: str) -> Problem:
    return Problem(
        ProblemType.METHOD_NOT_ALLOWED,
        f"{method} is not supported on /events; publish an event with POST.",
        headers={"Allow": "POST"},
    )


def invalid_parameter(name: str) -> Problem:
    return Problem(
        ProblemType.INVALID_PARAMETER,
        f"The query parameter '{name}' takes the value true (a dry run: every check, nothing "
        f"published) or false (a publish), once, spelt '{name}'. Nothing was published.",
    )


def missing_token() -> Problem:
    return Problem(
        ProblemType.MISSING_TOKEN,
        "Send a bearer token in the Authorization header: 'Authorization: Bearer <JWT>'.",
        headers={"WWW-Authenticate": 'Bearer realm="events"'},
    )


def invalid_token(reason: str) -> Problem:
    return Problem(
        ProblemType.INVALID_TOKEN,
        f"The bearer token was rejected: {reason}",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="events", error="invalid_token", '
                f'error_description="{_quote_param(reason)}"'
            )
        },
    )


def insufficient_scope(required_scope: str) -> Problem:
    return Problem(
        ProblemType.INSUFFICIENT_SCOPE,
        f"The token is valid but does not carry the scope '{required_scope}' needed to publish.",
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="events", error="insufficient_scope", '
                f'scope="{_quote_param(required_scope)}"'
            )
        },
    )


def unsupported_media_type(reason: str) -> Problem:
    return Problem(
        ProblemType.UNSUPPORTED_MEDIA_TYPE,
        f"{reason} Send one event as application/cloudevents+json or application/json, a batch "
        "as application/cloudevents-batch+json (UTF-8), or one event in binary mode: the data "
        "as the body, with its Content-Type, and every attribute as a ce- header, ce-specversion "
        "included.",
        headers={"Accept-Post": ", ".join(ACCEPTED_CONTENT_TYPES)},
    )


def body_too_large(limit: int, size: int | None) -> Problem:
    seen = f" (got {size} bytes)" if size is not None else ""
    return Problem(
        ProblemType.BODY_TOO_LARGE,
        f"The request body is larger than the limit of {limit} bytes{seen}.",
    )


def batch_too_large(limit: int, count: int, *, more: bool = False) -> Problem:
    """``more``: ``count`` is what the batch's first part alone holds (it was not read whole)."""
    counted = f"more than {count - 1}" if more else f"{count}"
    return Problem(
        ProblemType.BATCH_TOO_LARGE,
        f"The batch has {counted} events; at most {limit} are accepted in one request. Nothing "
        f"was published; send them in batches of at most {limit}.",
    )


def event_too_large(limit: int, size: int) -> Problem:
    """Over the largest event accepted at all (EVENTS_MAX_EVENT_BYTES)."""
    return Problem(
        ProblemType.EVENT_TOO_LARGE,
        f"The event is {size} bytes as compact JSON; this endpoint accepts events of at most "
        f"{limit} bytes (EVENTS_MAX_EVENT_BYTES). Make 'data' smaller, or publish a reference "
        "to the payload (the 'dataref' attribute) instead of the payload itself.",
    )


def event_too_large_for_queue(limit: int, size: int, reason: str) -> Problem:
    """Over one queue message, and not something the claim check can store (``reason``)."""
    return Problem(
        ProblemType.EVENT_TOO_LARGE,
        f"The event is {size} bytes as compact JSON; one queue message holds at most {limit} "
        f"bytes (64 KiB once Base64-encoded), and {reason}",
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_errors(
    errors: Mapping[str, tuple[str, ...]],
) -> tuple[dict[str, tuple[str, ...]], int]:
    """At most ``MAX_REPORTED_ATTRIBUTES`` attributes (``RequestBody`` first), names and messages
    cut short: a body of thousands of bad member names must not become a megabyte-sized answer.
    Returns the errors to report and how many attributes were left out."""
    # RequestBody first, then real attribute names (a missing 'id' matters more than the
    # thousandth misspelt name); sorted() is stable, so each group keeps the input order.
    names = sorted(
        errors,
        key=lambda name: (name != REQUEST_BODY, ATTRIBUTE_NAME.fullmatch(name) is None),
    )
    reported: dict[str, tuple[str, ...]] = {}
    for name in names[:MAX_REPORTED_ATTRIBUTES]:
        key = _cut(name, MAX_REPORTED_NAME_CHARACTERS)
        messages = tuple(_cut(message, MAX_MESSAGE_CHARACTERS) for message in errors[name])
        reported[key] = reported.get(key, ()) + messages
    return reported, max(0, len(names) - MAX_REPORTED_ATTRIBUTES)


def invalid_event(errors: Mapping[str, tuple[str, ...]]) -> Problem:
    reported, omitted = _bounded_errors(errors)
    attributes = [name for name in reported if name != REQUEST_BODY]
    if attributes:
        detail = (
            "The event is not a valid CloudEvent for this endpoint. Problems were found in: "
            + ", ".join(attributes)
            + ". 'errors' lists each one."
        )
        if omitted:
            detail += (
                f" {omitted} more attributes have problems too; they are not listed here "
                f"('omittedErrors'). Fix these and send the event again to see them."
            )
    else:
        detail = "The request body is not a CloudEvent: " + reported[REQUEST_BODY][0]
    return Problem(ProblemType.INVALID_EVENT, detail, errors=reported, omitted_errors=omitted)


def not_authorized_for_resource(resource: str) -> Problem:
    return Problem(
        ProblemType.NOT_AUTHORIZED_FOR_RESOURCE,
        f"The resource '{resource}' is not registered in the Resource Registry, or its policy "
        f"has no rule that grants 'publish' to you. Ask the resource owner to add one.",
    )


def duplicate_event_id(source: str, event_id: str) -> Problem:
    return Problem(
        ProblemType.DUPLICATE_EVENT_ID,
        f"An event with source '{_cut(source, 200)}' and id '{_cut(event_id, 200)}' was "
        "published by you lately with other content. An event's source and id identify it: "
        "nothing was published. Give a new event a new id; to publish this one again, send it "
        "exactly as before.",
    )


def publish_in_progress() -> Problem:
    return Problem(
        ProblemType.PUBLISH_IN_PROGRESS,
        "An event with this source and id is being published by another request right now. "
        "Nothing more was published; send it again after the indicated delay to learn how that "
        "publish ended (a repeat of a published event is answered 200, and queued only once).",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def too_many_resource_lookups(per_minute: int, retry_after_seconds: int) -> Problem:
    return Problem(
        ProblemType.TOO_MANY_RESOURCE_LOOKUPS,
        f"You have published on more resources that this service had not seen lately than it "
        f"looks up in the Resource Registry for one publisher ({per_minute} a minute). Nothing "
        f"was published; retry after the indicated delay. Resources already looked up are not "
        f"limited.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def _unavailable(kind: ProblemType, detail: str) -> Problem:
    return Problem(kind, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def registry_unavailable() -> Problem:
    return _unavailable(
        ProblemType.REGISTRY_UNAVAILABLE,
        "Your permission to publish on this resource could not be checked: the Resource "
        "Registry did not answer in time, answered with an error, or sent an answer that is not "
        "its contract. Nothing was published; retry after the indicated delay.",
    )


def issuer_unavailable() -> Problem:
    return _unavailable(
        ProblemType.ISSUER_UNAVAILABLE,
        "The token issuer's signing keys could not be fetched, so the token could not be "
        "checked. Nothing was published; retry after the indicated delay.",
    )


def queue_unavailable(
    *, maybe_stored: bool = False, pending: bool = False, recorded: bool = False
) -> Problem:
    """What a 503 of the queue may promise (docs/idempotency.md, "When one identity can be
    queued twice"): nothing was stored; or it may have been, and a retry may queue it again;
    or the send goes on and the record follows it, so a retry after a while is a replay."""
    maybe_stored = maybe_stored or pending
    if pending and recorded:
        detail = (
            "The queue did not confirm in time that it stored the event; it may have been stored "
            "all the same, and the send goes on. Send it again after the indicated delay, exactly "
            "as before (the same id and source): if it was stored by then, the repeat is "
            "answered 200 as a replay and not queued again; if the queue has still not "
            "answered, sending it again may queue it a second time."
        )
    elif maybe_stored:
        cause = (
            "did not confirm in time that it stored the event"
            if pending
            else "connection broke after the event was sent"
        )
        detail = (
            f"The queue {cause}, so it may have been stored all the same; nobody can tell. "
            "Sending it again may queue it a second time: send it again after the indicated "
            "delay, exactly as before (the same id and source), if a duplicate is better than a "
            "lost event (subscribers can tell the two apart by source and id)."
        )
    else:
        detail = (
            "The queue refused the event or could not be reached: nothing was published. Send "
            "it again after the indicated delay, exactly as before (the same id and source)."
        )
    return _unavailable(ProblemType.QUEUE_UNAVAILABLE, detail)


def records_unavailable() -> Problem:
    return _unavailable(
        ProblemType.RECORDS_UNAVAILABLE,
        "The record of published events could not be checked, and this service publishes only "
        "with de-duplication. Nothing was published; retry after the indicated delay.",
    )


def blobs_unavailable() -> Problem:
    return _unavailable(
        ProblemType.BLOBS_UNAVAILABLE,
        "The event is larger than one queue message, and the storage for such events' data did "
        "not confirm that it stored the data. Nothing was published; retry after the "
        "indicated delay.",
    )


_UNAVAILABLE: dict[str, Callable[[], Problem]] = {
    KeysUnavailable.dependency: issuer_unavailable,
    RegistryUnavailable.dependency: registry_unavailable,
    RecordsUnavailable.dependency: records_unavailable,
    BlobsUnavailable.dependency: blobs_unavailable,
}


def unavailable(error: Unavailable) -> Problem:
    """The 503 for a dependency that gave no answer we can trust: one rule for all of them."""
    if isinstance(error, QueueUnavailable):
        return queue_unavailable(
            maybe_stored=error.maybe_stored, pending=error.pending, recorded=error.recorded
        )
    return _UNAVAILABLE[error.dependency]()


def batch_timeout(seconds: float) -> Problem:
    """An element of a batch whose publish had not started when the batch's time was up."""
    return _unavailable(
        ProblemType.BATCH_TIMEOUT,
        f"The batch reached its time limit ({seconds:g} s, EVENTS_BATCH_TIMEOUT_SECONDS) before "
        "this event's publish started: nothing was published for it. Send it again after the "
        "indicated delay, exactly as before (in smaller batches, if this happens again).",
    )


def internal_error() -> Problem:
    return Problem(
        ProblemType.INTERNAL_ERROR,
        "An unexpected error occurred; the event was not published. The traceId identifies "
        "this request in the service's logs.",
    )


# -- one table from what went wrong to the problem that says so --------------------------------


class Rejected(Exception):
    """A step's refusal: the problem that ends the request (or the batch element)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.kind.slug)
        self.problem = problem


#: What each kind of error answers. Looked up by the error's type (and its bases, the most
#: specific first): once per request, and once per element of a batch.
_ANSWERS: dict[type[Exception], Callable[[Any], Problem]] = {
    Rejected: lambda error: error.problem,
    InvalidEvent: lambda error: invalid_event(reference_errors(error)),
    MissingToken: lambda _: missing_token(),
    InvalidToken: lambda error: invalid_token(str(error)),
    Unavailable: unavailable,
}


def problem_for(error: Exception) -> Problem | None:
    """The problem an error answers; None for an error no step raises (a bug: a 500)."""
    for kind in type(error).__mro__:
        answer = _ANSWERS.get(kind)
        if answer is not None:
            return answer(error)
    return None
